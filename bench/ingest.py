"""Ingest benchmark: decode + verify ipfs-log entries vs. the raw PyNaCl Ed25519 verify rate.

Usage (from the repository root):

    .venv/bin/python bench/ingest.py [--entries N] [--logs L] [--repeat R]

Builds N entries (default 20000) spread over L logs (default 4) of two groups with go-orbit-db's
append rules (chains with refs, 1 KiB-ish orbit-db payloads), plus the committed vectors in
tests/vectors/entries.json. Then, in the same process, times

  * ingest: node.sync.entry.decode_entry(block) + verify_entry(entry, suite.ed25519_verify,
    sign_pub) for every block (fresh decode each time; nothing cached between repetitions
    except what verify_entry caches by design: the per-group identity signature and base58
    renderings of CIDs);
  * raw: nacl.bindings.crypto_sign_open(sig + signed_bytes, sign_pub) over the same messages.

Each is the best of R repetitions. Prints one JSON line:
{"bench":"ingest","entries":N,"entries_per_s":..,"raw_verify_per_s":..,"ratio":..,"python":..}
The goal is ratio >= 0.5.
"""

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nacl.bindings  # noqa: E402

from node.crypto._nacl import NaclSuite  # noqa: E402
from node.crypto.address import MESSAGES_STORE, METADATA_STORE, store_address  # noqa: E402
from node.sync.entry import create_entry, decode_entry, signed_bytes, verify_entry  # noqa: E402
from node.sync.log import append_plan  # noqa: E402


def build(n: int, logs: int) -> list[tuple[bytes, bytes]]:
    """(block, sign_pub) pairs: n generated entries, then the committed vectors."""
    suite = NaclSuite()
    writers = []
    for i in range(logs):
        group = hashlib.sha256(b"bench group %d" % (i // 2)).digest()
        group_pk, _ = suite.ed25519_keypair(group)
        sign_pub, sign_sk = suite.ed25519_keypair(hashlib.sha256(group).digest())
        store = MESSAGES_STORE if i % 2 else METADATA_STORE
        log_id = store_address(suite, group_pk, sign_pub, store)
        writers.append((log_id, sign_pub, sign_sk, {}, [0]))
    out = []
    for k in range(n):
        log_id, sign_pub, sign_sk, view, clock = writers[k % logs]
        next_cids, refs, t = append_plan(view, clock[0])
        value = hashlib.sha256(b"%d" % k).hexdigest() * 12
        payload = '{"op":"ADD","value":"%s"}' % value
        entry = create_entry(
            log_id,
            payload,
            next_cids,
            refs,
            t,
            sign_pub,
            lambda m, sk=sign_sk: suite.ed25519_sign(sk, m),
        )
        # keep only the newest 64 entries of each view: enough for append_plan's traversal
        view[entry.cid] = entry
        clock[0] = t
        if len(view) > 128:
            for old in sorted(view.values(), key=lambda e: e.clock_time)[:64]:
                del view[old.cid]
        out.append((entry.block, sign_pub))
    vectors = json.loads((ROOT / "tests" / "vectors" / "entries.json").read_text())
    for v in vectors:
        out.append((bytes.fromhex(v["block"]), bytes.fromhex(v["sign_pub"])))
    return out


def time_ingest(items: list[tuple[bytes, bytes]], verify: object) -> float:
    memo: dict[tuple[bytes, bytes], bool] = {}  # as a store keeps it (identity once per group)
    start = time.perf_counter()
    for block, sign_pub in items:
        verify_entry(decode_entry(block), verify, sign_pub, memo)  # type: ignore[arg-type]
    return time.perf_counter() - start


def time_raw(messages: list[tuple[bytes, bytes]]) -> float:
    sign_open = nacl.bindings.crypto_sign_open
    start = time.perf_counter()
    for signed, pk in messages:
        sign_open(signed, pk)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--logs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    items = build(args.entries, args.logs)
    suite = NaclSuite()
    messages = []
    for block, sign_pub in items:
        entry = decode_entry(block)
        messages.append((entry.sig + signed_bytes(entry), sign_pub))

    ingest = min(time_ingest(items, suite.ed25519_verify) for _ in range(args.repeat))
    raw = min(time_raw(messages) for _ in range(args.repeat))
    n = len(items)
    result = {
        "bench": "ingest",
        "entries": n,
        "entries_per_s": round(n / ingest),
        "raw_verify_per_s": round(n / raw),
        "ratio": round(raw / ingest, 3),
        "python": platform.python_version(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
