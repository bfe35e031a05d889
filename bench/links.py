"""Frame hints benchmark: one member <-> relay sync over the in-memory pipe at each frame hint.

Usage: python bench/links.py [--quick]

A member and a relay (real NodeContexts over real SQLite stores, the real LinkDriver) sync one
group log: the member holds M entries the relay lacks, the relay R the member lacks (compact
items of ~110-230 bytes, and one 3,000-byte entry). One JSON line per case:

  hint, mtu        the link's frame hint; the ATT MTU when frames go through node/proto/fragment.py
  frames           session frames both ways (handshake included)
  frame_bytes      their bytes (Noise messages; no TCP length prefix, no ATT header)
  units, unit_bytes  what the link carried: = frames for whole frames, fragments (1-byte header
                   each) when fragmenting
  largest          the largest frame sent
  half_rounds, rtt one-way trips on the critical path (each frame is one deeper than the deepest
                   frame its sender had read), and round trips = ceil(half_rounds / 2)
  wall_ms          wall time over a modelled link: 10 ms one way, 100 kB/s each way
  bytes_vs_tcp, rtt_vs_tcp   ratios to the hint-65,535 case of the same run (the reference)

Then lost-link cases: a 400-entry upload cut at a fraction of its bytes, then synced again:
  resent           entries that crossed twice (sent before the cut, not stored by the relay)
  wasted_bytes     cut sync + resumed sync - one uncut sync (unit bytes)
  in_flight, cap   the member's unacknowledged Entries bytes at the cut, and the rule's cap
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.app.peer import LinkDriver, SyncOutcome  # noqa: E402
from node.pipe import Pipe  # noqa: E402
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY  # noqa: E402
from node.store.sqlite import SQLiteStore  # noqa: E402
from node.sync.entry import Entry  # noqa: E402
from tests.sync_helpers import SUITE, GroupLog, drive_pair, make_context  # noqa: E402

LATENCY = 0.010
RATE = 100_000.0
HINTS = [23, 185, 244, 512, 4096, 65535]
MTUS = [23, 185, 247]


def _store(path: Path, group: GroupLog, entries: list[Entry], pinned: bool) -> SQLiteStore:
    path.mkdir(parents=True)
    store = SQLiteStore.open_in(path, SUITE.ed25519_verify)
    store.add_log(group.address, group.sign_pub, pinned=pinned)
    store.put_entries(entries, 1_000_000)
    store.commit()
    return store


class Case:
    """A member and a relay, fresh stores under `root`."""

    def __init__(self, root: Path, group: GroupLog, member: list[Entry], relay: list[Entry]):
        self.group = group
        self.member_store = _store(root / "member", group, member, True)
        self.relay_store = _store(root / "relay", group, relay, False)
        own = {group.address: (group.sign_pub, group.identity_signature)}
        self.member = make_context(self.member_store, ROLE_MEMBER, own=own)
        self.relay = make_context(self.relay_store, ROLE_RELAY)
        self.relay.identity_signatures[group.address] = group.identity_signature
        self.drivers: list[LinkDriver] = []

    async def sync(self, pipe: Pipe) -> tuple[SyncOutcome, SyncOutcome]:
        self.drivers = []
        return await drive_pair(self.member, self.relay, pipe.a, pipe.b, drivers=self.drivers)

    def close(self) -> None:
        self.member_store.close()
        self.relay_store.close()


def make_log(seed: int, member: int, relay: int) -> tuple[GroupLog, list[Entry], list[Entry]]:
    group = GroupLog.make(seed)
    base = [group.append("base %d" % i) for i in range(8)]
    theirs = [group.append("relay %d" % i, [base[-1]] if i == 0 else None) for i in range(relay)]
    ours = [group.append("member %d" % i, [base[-1]] if i == 0 else None) for i in range(member)]
    ours.append(group.append("big " + "z" * 3000))
    return group, base + ours, base + theirs


def one_sync(
    root: Path, log: tuple[GroupLog, list[Entry], list[Entry]], pipe: Pipe
) -> dict[str, object]:
    case = Case(root, *log)
    try:
        started = time.perf_counter()
        outcome, _ = asyncio.run(case.sync(pipe))
        wall = (time.perf_counter() - started) * 1000
    finally:
        case.close()
    assert outcome.in_sync, outcome
    stats = pipe.stats()
    return {
        **stats,
        "rtt": math.ceil(stats["half_rounds"] / 2),
        "entries": outcome.entries_sent + outcome.entries_received,
        "wall_ms": round(wall, 1),
    }


def hints(root: Path, quick: bool) -> None:
    log = make_log(90, 60 if quick else 200, 20 if quick else 50)
    rows = []
    for hint in HINTS:
        pipe = Pipe("h%d" % hint, frame_hint=hint, latency=LATENCY, rate=RATE)
        rows.append({"hint": hint, "mtu": None, **one_sync(root / ("h%d" % hint), log, pipe)})
    for mtu in MTUS:
        hint = max(23, mtu - 3)
        pipe = Pipe("m%d" % mtu, frame_hint=hint, latency=LATENCY, rate=RATE, fragment_size=mtu - 3)
        rows.append({"hint": hint, "mtu": mtu, **one_sync(root / ("m%d" % mtu), log, pipe)})
    tcp = next(r for r in rows if r["hint"] == 65535 and r["mtu"] is None)
    for row in rows:
        row["bytes_vs_tcp"] = round(int(row["unit_bytes"]) / int(tcp["unit_bytes"]), 3)  # type: ignore[call-overload]
        row["rtt_vs_tcp"] = round(int(row["rtt"]) / int(tcp["rtt"]), 2)  # type: ignore[call-overload]
        print(json.dumps({"bench": "links", **row}), flush=True)


def lost_link(
    root: Path, hint: int, fraction: float, log: tuple[GroupLog, list[Entry], list[Entry]]
) -> None:
    whole = Pipe("whole", frame_hint=hint, latency=LATENCY / 5, rate=RATE * 4)
    base = one_sync(root / "whole", log, whole)
    case = Case(root / "cut", *log)
    cut = Pipe(
        "cut",
        frame_hint=hint,
        latency=LATENCY / 5,
        rate=RATE * 4,
        cut_after=int(int(base["unit_bytes"]) * fraction),
    )  # type: ignore[call-overload]
    resume = Pipe("resume", frame_hint=hint, latency=LATENCY / 5, rate=RATE * 4)

    async def scenario() -> tuple[int, int, int]:
        first, _ = await case.sync(cut)
        session = case.drivers[0].session
        in_flight, cap = session.in_flight, session.send_cap
        second, _ = await case.sync(resume)
        assert second.in_sync, second
        uploaded = len(log[1]) - 8
        return first.entries_sent + second.entries_sent - uploaded, in_flight, cap

    try:
        resent, in_flight, cap = asyncio.run(scenario())
    finally:
        case.close()
    wasted = cut.stats()["unit_bytes"] + resume.stats()["unit_bytes"] - int(base["unit_bytes"])  # type: ignore[call-overload]
    print(json.dumps({
        "bench": "links-lost", "hint": hint, "cut_at": fraction, "upload_entries": len(log[1]) - 8,
        "whole_bytes": base["unit_bytes"], "resent": resent, "wasted_bytes": wasted,
        "in_flight": in_flight, "cap": cap,
    }), flush=True)  # fmt: skip


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="bench-links-") as tmp:
        root = Path(tmp)
        hints(root / "hints", quick)
        upload = make_log(91, 400, 0)
        for hint in (185, 512, 65535):
            for fraction in (0.3, 0.7):
                lost_link(root / ("lost%d-%s" % (hint, fraction)), hint, fraction, upload)


if __name__ == "__main__":
    main()
