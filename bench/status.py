"""Cost of `waystation status` on the daemon's event loop, against the number of logs carried.

Usage:
    python bench/status.py [--logs 0,1000,10000] [--repeat 20]

The part of the status report that grows with the store is `log_usage` (one `log_info` per log,
to find the fullest log against its quota); the rest reads counters. For each log count a fresh
SQLite store (real file, WAL) gets that many registered logs, then this prints one JSON line:

    log_usage_ms      median time of node.app.status.log_usage (what the control handler adds)
    stats_ms          median time of store.stats() in the same run: the reference, which the
                      daemon already paid for status.json before the control endpoint existed
    reply_bytes       size of the encoded reply line of a report holding these figures

Both run synchronously on the event loop in the daemon, so they are the time a status request
holds up every link.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from node.app.control import encode_reply
from node.app.status import log_usage
from node.crypto._nacl import NaclSuite
from node.store.sqlite import SQLiteStore


def median_ms(fn: object, repeat: int) -> float:
    assert callable(fn)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def case(logs: int, repeat: int) -> dict[str, object]:
    suite = NaclSuite()
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        store = SQLiteStore.open_in(Path(tmp), suite.ed25519_verify)
        try:
            for i in range(logs):
                store.add_log("/orbitdb/bench-log-%d/messages" % i, suite.random_bytes(32))
            store.commit()
            usage = log_usage(store, 16 * 1024 * 1024)
            result = {
                "bench": "status",
                "logs": logs,
                "log_usage_ms": median_ms(lambda: log_usage(store, 16 * 1024 * 1024), repeat),
                "stats_ms": median_ms(store.stats, repeat),
                "reply_bytes": len(encode_reply({"ok": True, "result": {"log_usage": usage}})),
            }
        finally:
            store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", default="0,1000,10000")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for logs in (int(n) for n in args.logs.split(",")):
        print(json.dumps(case(logs, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
