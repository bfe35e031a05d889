"""Scale benchmark (issue 14): one JSON line per row of the issue's table, with its reference.

Usage (from the repository root):

    .venv/bin/python bench/scale.py [--quick] [--only ROW,ROW] [--cache DIR]

Rows (`row` in each line), each with the goal and the same-run reference it is compared with:

  insync      a whole in-sync session (Noise, Hello, Interest, reconcile, Bye) between a member and
              a relay carrying the same L logs (2 entries each), over the in-memory pipe: bytes
              both ways and round trips; reference: the same session at L = 1 (bytes per extra
              log). L = 1,000 (--quick: 100).
  rss         RSS of a `waystation run` process on a store of N entries in 100 logs, then with 64
              members connected and in sync (each on a small log of its own: the bench process
              cannot hold 1M entries 64 times); references: the daemon on an empty store and a
              bare CPython + asyncio + sqlite3 process. N = 1,000,000 (--quick: 100,000).
  keys        in this process, open the large store and use every log's keys and IBLT (as
              reconciliations would): RSS after vs right after opening, the sets held within
              the key budget.
  start       `waystation run` spawned -> its "listening on" line, on that store; reference: the
              same on an empty data directory.
  first-reconcile   open a store of one log of n = 100,000 entries (--quick: 20,000) and run the
              first reconciliation against a peer lacking d = 10 scattered keys (wall ms of the
              store open and of the reconcile, sketch build included); reference: the second
              reconcile of the same sets.
  latency     accept -> deliver to an online member (bench/relay.py's latency case, 100 entries/s),
              with --load members (default 100, --quick: 20) syncing in a loop in another
              process; reference: the same case unloaded, in this run.
  gc          a full garbage collection in a started daemon (in-process, empty store): ms with
              start-up's objects frozen (gc.freeze, as the daemon does) vs unfrozen, same process.
  ingest      decode + verify + store (SQLiteStore, real Ed25519, a durable commit per 128
              entries) vs raw Ed25519 verify of the same entries' signed bytes, same run; beside
              it decode + verify alone (bench/ingest.py's ratio).
  scattered   reconciliation bytes for scattered differences (bench/sync.py's case), n = 10,000,
              d = 1 and 10, one- and two-sided; reference: d x 32 B (the IDs alone).
  behind      a member behind a relay by d entries (~1 KiB payloads) over the pipe: all session
              bytes vs the entry items' bytes alone; d = 1, 10, 100.

The large stores are built once (streamed, signatures by libsodium, no verification on insert)
and cached under build/scale/ (gitignored); delete it to rebuild. Not measured here: event-loop
iteration times inside the daemon (no probe in the daemon yet).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
for where in (ROOT, ROOT / "bench"):
    if str(where) not in sys.path:
        sys.path.insert(0, str(where))

import ingest as ingest_bench  # noqa: E402
import relay as relay_bench  # noqa: E402
import sync as sync_bench  # noqa: E402

from node.app.context import Committer, NodeContext  # noqa: E402
from node.pipe import Pipe  # noqa: E402
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY  # noqa: E402
from node.store.sqlite import SQLiteStore  # noqa: E402
from node.sync.entry import Entry, create_entry, decode_entry, signed_bytes  # noqa: E402
from node.sync.keyset import KeySet  # noqa: E402
from node.sync.store import MemoryStore, Store  # noqa: E402
from node.sync.wire import encode_item  # noqa: E402
from tests.sync_helpers import (  # noqa: E402
    SUITE,
    GroupLog,
    drive_pair,
    make_context,
    pair_device,
)

CONFIG = (
    "[store]\nmax_total_bytes = 8589934592\n"  # a 1M-entry store is larger than the default 1 GiB
    "[relay]\nmax_sessions = 256\n"  # the load members must not push the measured ones out
)
BIG_PAYLOAD = 256  # payload bytes of the cached stores' entries (index costs do not depend on it)


def emit(line: dict[str, object]) -> None:
    print(json.dumps({**line, "python": platform.python_version()}), flush=True)


# -- sessions over the pipe ------------------------------------------------------------------


HANDSHAKE_BYTES = 32 + 96 + 64  # Noise XX, empty payloads, as the pipe counts frames (no prefix)


async def pipe_session(
    member: Store,
    relay: Store,
    own: dict[str, tuple[bytes, bytes]],
    member_key: bytes | None = None,
    relay_ctx: NodeContext | None = None,
) -> dict[str, int]:
    """One member-initiated sync (with a fresh relay context unless given); the pipe's counts.
    `member_key`: the member's stable Noise static key (a paired device), else a fresh one."""
    pipe = Pipe("scale")
    member_ctx = make_context(member, ROLE_MEMBER, own=own)
    member_ctx.static_private = member_key
    if relay_ctx is None:
        relay_ctx = make_context(relay, ROLE_RELAY)
    relay_ctx.committer = Committer(relay, 0.0)  # one per event loop
    outcome, _ = await drive_pair(member_ctx, relay_ctx, *pipe.ends)
    assert outcome.in_sync, outcome
    stats = pipe.stats()
    stats["received"] = outcome.entries_received
    stats["summary"] = int(any(k.startswith("summary.") for k in member_ctx.stats))
    return stats


def stores_for(
    logs: list[GroupLog], member_lacks: int = 0, relay_dir: Path | None = None
) -> tuple[MemoryStore, Store]:
    """The member's store and the relay's (SQLite in `relay_dir` if given: pairing needs it)."""
    member = MemoryStore(SUITE.ed25519_verify)
    relay: Store = MemoryStore(SUITE.ed25519_verify)
    if relay_dir is not None:
        relay = SQLiteStore.open_in(relay_dir, SUITE.ed25519_verify)
    for log in logs:
        member.add_log(log.address, log.sign_pub, pinned=True)
        relay.add_log(log.address, log.sign_pub)
        relay.put_entries(log.entries, 1_000_000)
        member.put_entries(log.entries[: len(log.entries) - member_lacks], 1_000_000)
    member.commit()
    relay.commit()
    return member, relay


async def paired_session(
    logs: list[GroupLog], own: dict[str, tuple[bytes, bytes]], member_lacks: int = 0
) -> dict[str, int]:
    """A paired member's second session (the first declares and is remembered; entries the
    member lacks are taken from its store before the measured one)."""
    with tempfile.TemporaryDirectory(prefix="scale-paired-") as tmp:
        member, relay = stores_for(logs, 0, Path(tmp))
        relay_ctx = make_context(relay, ROLE_RELAY)
        device = make_context(member, ROLE_MEMBER, own=own)
        pair_device(relay_ctx, device, quota=1 << 30)  # gives it a stable key
        key = device.static_private
        await pipe_session(member, relay, own, key, relay_ctx)  # declares; remembered
        if member_lacks:
            member = stores_for(logs, member_lacks)[0]
        stats = await pipe_session(member, relay, own, key, relay_ctx)
        assert stats["summary"], "the measured session did not use the Summary"
        assert isinstance(relay, SQLiteStore)
        relay.close()
    return stats


async def row_insync(count: int) -> None:
    logs = [GroupLog.make_indexed(i) for i in range(count)]
    for log in logs:
        log.append("a")
        log.append("b")
    own = {log.address: (log.sign_pub, log.identity_signature) for log in logs}
    one_own = {logs[0].address: own[logs[0].address]}
    for kind in ("paired", "fresh-key"):
        if kind == "paired":
            one = await paired_session(logs[:1], one_own)
            many = await paired_session(logs, own)
        else:
            one = await pipe_session(*stores_for(logs[:1]), one_own)
            many = await pipe_session(*stores_for(logs), own)
        emit({
            "row": "insync", "member": kind, "logs": count, "bytes": many["frame_bytes"],
            "rtt": math.ceil(many["half_rounds"] / 2), "frames": many["frames"],
            "ref_bytes_one_log": one["frame_bytes"],
            "ref_rtt_one_log": math.ceil(one["half_rounds"] / 2),
            "bytes_per_extra_log": round(
                (many["frame_bytes"] - one["frame_bytes"]) / (count - 1), 1
            ),
            "ref_v1_bytes": round(V1_INSYNC_ONE_LOG + V1_INSYNC_PER_LOG * (count - 1)),
            "goal": "<= 1 KB in total at L = 1,000, 1 RTT after the handshake",
        })  # fmt: skip


# Version 1 (before issue 14's interest work), measured by this bench on the same machine:
# 974 B at L = 1, 531.1 B per extra log (docs/performance.md, "Scale", before).
V1_INSYNC_ONE_LOG = 974
V1_INSYNC_PER_LOG = 531.1


async def row_behind(ds: list[int]) -> None:
    group = relay_bench.Group(7)
    for _ in range(max(ds) + 20):
        group.append()
    log = GroupLog(group.address, group.sign_pub, group.sign_secret, group.entries)
    own = {log.address: (log.sign_pub, log.identity_signature)}
    for kind in ("paired", "fresh-key"):
        for d in ds:
            missing = group.entries[-d:]
            items = sum(len(encode_item(e, log.sign_pub, log.identity_signature)) for e in missing)
            if kind == "paired":
                stats = await paired_session([log], own, member_lacks=d)
            else:
                stats = await pipe_session(*stores_for([log], member_lacks=d), own)
            assert stats["received"] == d, stats
            total = stats["frame_bytes"]
            beyond = total - HANDSHAKE_BYTES - items
            emit({
                "row": "behind", "member": kind, "d": d, "bytes": total, "ref_item_bytes": items,
                "item_bytes_each": round(items / d), "block_bytes_each": len(missing[0].block),
                "handshake_bytes": HANDSHAKE_BYTES, "beyond_handshake_bytes": beyond,
                "beyond_handshake_pct": round(100 * beyond / items, 2),
                "fixed_bytes": total - items,
                "overhead_pct": round(100 * (total - items) / items, 1),
                "rtt": math.ceil(stats["half_rounds"] / 2),
                "goal": "beyond the 204-B Noise handshake, <= 2 % from d = 10",
            })  # fmt: skip


# -- reconciliation and ingest, in process ---------------------------------------------------


def row_scattered(n: int) -> None:
    for d in (1, 10):
        for sides in (1, 2):
            result = sync_bench.case(n, d, "scattered", sides, seed=n + d)
            emit({
                "row": "scattered", "n": n, "d": d, "sides": sides,
                "bytes": result["overhead_bytes"], "bytes_per_diff": result["bytes_per_diff"],
                "rtt": result["rtt"], "ref_lower_bound_bytes": result["lower_bound_bytes"],
                "goal": "<= 100 B per difference, d = 1 <= 300 B",
            })  # fmt: skip


def row_ingest(count: int) -> None:
    items = ingest_bench.build(count, 4)[:count]  # the generated entries, not the vectors
    entries = [decode_entry(block) for block, _ in items]
    signed = [(e.sig + signed_bytes(e), pk) for e, (_, pk) in zip(entries, items, strict=True)]
    raw = min(ingest_bench.time_raw(signed) for _ in range(3))
    verify_only = min(ingest_bench.time_ingest(items, SUITE.ed25519_verify) for _ in range(3))
    best = math.inf
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="scale-ingest-") as tmp:
            store = SQLiteStore.open_in(Path(tmp), SUITE.ed25519_verify)
            for entry, (_, sign_pub) in zip(entries, items, strict=True):
                if not store.has_log(entry.log_id):
                    store.add_log(entry.log_id, sign_pub)
            store.commit()
            start = time.perf_counter()
            for i in range(0, count, 128):
                batch = [decode_entry(block) for block, _ in items[i : i + 128]]
                store.put_entries(batch, 1_000_000)
                store.commit()
            best = min(best, time.perf_counter() - start)
            assert store.stats()["entries"] == count
            store.close()
    emit({
        "row": "ingest", "entries": count, "entries_per_s": round(count / best),
        "ref_raw_verify_per_s": round(count / raw), "ratio": round(raw / best, 3),
        "decode_verify_ratio": round(raw / verify_only, 3),
        "goal": ">= 0.8",
    })  # fmt: skip


# -- cached stores ---------------------------------------------------------------------------


def chain(group: relay_bench.Group, count: int) -> Iterator[Entry]:
    """`count` entries of a linear chain on `group`, streamed (nothing kept)."""
    last = None
    for n in range(count):
        value = hashlib.sha256(b"%s %d" % (group.address.encode(), n)).hexdigest()
        payload = '{"op":"ADD","value":"%s"}' % (value * (BIG_PAYLOAD // 64))
        last = create_entry(
            group.address,
            payload,
            [last.cid] if last is not None else [],
            [],
            n + 1,
            group.sign_pub,
            lambda m: SUITE.ed25519_sign(group.sign_secret, m),
        )
        yield last


def cached_store(cache: Path, name: str, logs: int, per_log: int) -> Path:
    """A data directory holding `logs` logs of `per_log` entries, built once under `cache`."""
    data = cache / name
    if (data / "complete").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    store = SQLiteStore.open_in(data, relay_bench.no_verify, relay_bench.BIG)
    try:
        for index in range(logs):
            group = relay_bench.Group(1000 + index)
            store.add_log(group.address, group.sign_pub)
            batch: list[Entry] = []
            for entry in chain(group, per_log):
                batch.append(entry)
                if len(batch) == 2000:
                    store.put_entries(batch, time.time())
                    store.commit()
                    batch = []
            store.put_entries(batch, time.time())
            store.commit()
    finally:
        store.close()
    (data / "complete").write_text("%d logs x %d entries\n" % (logs, per_log))
    return data


def working_copy(cached: Path, workdir: Path) -> Path:
    """A data directory to run a daemon on, with a copy of the cached store (the daemon writes
    to its store, so the cache is never run on)."""
    data = workdir / cached.name
    data.mkdir()
    subprocess.run(
        ["cp", "--reflink=auto", str(cached / "store.sqlite3"), str(data / "store.sqlite3")],
        check=True,
    )
    return data


def row_first_reconcile(cache: Path, n: int) -> None:
    cached = cached_store(cache, "one-log-%d" % n, 1, n)
    with tempfile.TemporaryDirectory(prefix="scale-reconcile-") as tmp:
        data = working_copy(cached, Path(tmp))
        start = time.perf_counter()
        store = SQLiteStore.open_in(data, SUITE.ed25519_verify, relay_bench.BIG)
        open_ms = (time.perf_counter() - start) * 1000
        (address,) = store.logs()
        keys = list(store.keyset(address))
        lacking = set(random.Random(n).sample(range(n), 10))
        peer = KeySet.from_sorted([k for i, k in enumerate(keys) if i not in lacking])
        peer.build_sketch()  # the member's side is warm; the relay's is the one just opened
        start = time.perf_counter()
        first = sync_bench.run_exchange([peer], [store.keyset(address)])
        first_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        second = sync_bench.run_exchange([peer], [store.keyset(address)])
        second_ms = (time.perf_counter() - start) * 1000
        store.close()
    emit({
        "row": "first-reconcile", "n": n, "d": 10, "open_ms": round(open_ms, 1),
        "first_reconcile_ms": round(first_ms, 1), "from_open_ms": round(open_ms + first_ms, 1),
        "bytes": first[1], "ref_second_reconcile_ms": round(second_ms, 1),
        "ref_second_bytes": second[1], "goal": "<= 50 ms from open",
    })  # fmt: skip


def row_keys(cache: Path, workdir: Path, stored: int) -> None:
    """RSS of this process around using every log's keys (and IBLT) of the large store: what the
    key budget (node/store/keycache.py) bounds; reference: the RSS right after opening."""
    logs = 100
    cached = cached_store(cache, "store-%d-in-%d" % (stored, logs), logs, stored // logs)
    data = working_copy(cached, workdir)
    me = psutil.Process()
    store = SQLiteStore.open_in(data, relay_bench.no_verify)  # the first open migrates, if due
    store.close()
    start = time.perf_counter()
    store = SQLiteStore.open_in(data, relay_bench.no_verify)
    open_ms = (time.perf_counter() - start) * 1000
    opened = relay_bench.rss_mb(me)
    start = time.perf_counter()
    for log_id in store.logs():
        store.keyset(log_id).sketch(720)
    used_ms = (time.perf_counter() - start) * 1000
    emit({
        "row": "keys", "entries": stored, "logs": logs, "open_ms": round(open_ms, 1),
        "every_log_used_ms": round(used_ms), "rss_every_log_used_mb": relay_bench.rss_mb(me),
        "ref_rss_opened_mb": opened, "held_logs": len(store.keys),
        "held_estimate_mb": round(store.keys.total / 2**20, 1),
        "key_budget_mb": round(store.keys.budget / 2**20, 1),
        "goal": "bounded by the key budget, whatever the entries",
    })  # fmt: skip
    store.close()
    shutil.rmtree(data)


# -- the daemon ------------------------------------------------------------------------------


async def time_start(data: Path, config: Path) -> float:
    start = time.perf_counter()
    async with relay_bench.running_relay(data, config):
        return (time.perf_counter() - start) * 1000


async def rows_daemon(cache: Path, workdir: Path, stored: int, sessions: int) -> None:
    logs = 100
    cached = cached_store(cache, "store-%d-in-%d" % (stored, logs), logs, stored // logs)
    config = workdir / "scale.toml"
    config.write_text(CONFIG)
    empty = workdir / "empty"
    empty.mkdir()
    empty_ms = await time_start(empty, config)
    data = working_copy(cached, workdir)
    loaded_ms = await time_start(data, config)  # first start after the copy
    loaded_ms = min(loaded_ms, await time_start(data, config))
    emit({
        "row": "start", "entries": stored, "logs": logs, "start_to_listening_ms": round(loaded_ms),
        "ref_empty_store_ms": round(empty_ms), "goal": "<= 1000 ms at 1M entries",
    })  # fmt: skip
    baseline = await relay_bench.baseline_rss(workdir)
    async with relay_bench.running_relay(empty, config) as relay:
        assert relay.ps is not None
        await relay_bench.settle(1.0)
        empty_rss = relay_bench.rss_mb(relay.ps)
    async with relay_bench.running_relay(data, config) as relay:
        assert relay.ps is not None
        await relay_bench.settle(1.0)
        loaded_rss = relay_bench.rss_mb(relay.ps)
        groups = [relay_bench.Group(5000 + i) for i in range(sessions)]
        members = []
        for group in groups:
            for _ in range(4):
                group.append()
            members.append(
                relay_bench.Member([group], relay_bench.member_store([group], group.entries))
            )
        for member in members:
            await member.open(relay.port)
        for member in members:
            await member.wait_in_sync(120)
        await relay_bench.settle(1.0)
        sessions_rss = relay_bench.rss_mb(relay.ps)
        for member in members:
            await member.close()
    emit({
        "row": "rss", "entries": stored, "logs": logs, "sessions": sessions,
        "rss_mb": sessions_rss, "rss_no_sessions_mb": loaded_rss,
        "ref_rss_empty_store_mb": empty_rss, "ref_bare_python_mb": baseline,
        "bytes_per_stored_entry": round((loaded_rss - empty_rss) * 2**20 / stored, 1),
        "goal": "<= 48 MB, flat in the number of entries",
    })  # fmt: skip


GC_MEASURE = r"""
import asyncio, gc, json, statistics, sys, tempfile, time
from pathlib import Path

import psutil
from node.app.config import parse_config
from node.app.daemon import Daemon
from node.crypto._nacl import NaclSuite

def full_collection_ms():
    runs = []
    for _ in range(9):
        start = time.perf_counter()
        gc.collect()
        runs.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(runs), 3)

async def main():
    with tempfile.TemporaryDirectory(prefix="scale-gc-") as tmp:
        config = parse_config('[lan]\nlisten = ["127.0.0.1:0"]\nzeroconf = false\n')
        daemon = Daemon(config, NaclSuite(), Path(tmp))
        running = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.started.wait(), 60)
        frozen = gc.get_freeze_count()
        settled = full_collection_ms()
        gc.unfreeze()
        unfrozen = full_collection_ms()
        tracked = len(gc.get_objects())
        daemon.stop()
        await running
    print(json.dumps({"frozen_objects": frozen, "tracked_objects": tracked,
                      "full_gc_ms": settled, "ref_full_gc_ms_unfrozen": unfrozen}))

asyncio.run(main())
"""


def row_gc() -> None:
    """A full collection in a started daemon (in a fresh interpreter, nothing else in it): with
    start-up's objects frozen as the daemon does, and the same process unfrozen (reference)."""
    out = subprocess.run(
        [sys.executable, "-c", GC_MEASURE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    line = json.loads(out.stdout.strip().splitlines()[-1])
    emit({"row": "gc", **line, "goal": "full collections no longer walk start-up's objects"})


async def row_latency(workdir: Path, entries: int, load: int) -> None:
    unloaded = await relay_bench.bench_latency(workdir, entries, 100.0)
    loaded = await relay_bench.bench_latency(workdir, entries, 100.0, load=load)
    emit({
        "row": "latency", "entries": entries, "load_members": load,
        "p50_ms": loaded["p50_ms"], "p99_ms": loaded["p99_ms"], "max_ms": loaded["max_ms"],
        "relay_cpu_us_per_entry": loaded["relay_cpu_us_per_entry"],
        "load_syncs": loaded["load_syncs"],
        "ref_unloaded_p50_ms": unloaded["p50_ms"], "ref_unloaded_p99_ms": unloaded["p99_ms"],
        "goal": "<= 10 ms p99",
    })  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    only = set(args.only.split(","))
    cache = args.cache
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        if "insync" in only:
            await row_insync(100 if args.quick else 1000)
        if "scattered" in only:
            row_scattered(10_000)
        if "behind" in only:
            await row_behind([1, 10, 100])
        if "ingest" in only:
            row_ingest(4000 if args.quick else 20_000)
        if "first-reconcile" in only:
            row_first_reconcile(cache, 20_000 if args.quick else 100_000)
        if "gc" in only:
            row_gc()
        if "latency" in only:
            await row_latency(workdir, 300 if args.quick else 2000, 20 if args.quick else 100)
        if "keys" in only:
            row_keys(cache, workdir, 100_000 if args.quick else 1_000_000)
        if only & {"rss", "start"}:
            stored = 100_000 if args.quick else 1_000_000
            await rows_daemon(cache, workdir, stored, 64)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


ROWS = "insync,scattered,behind,ingest,first-reconcile,gc,latency,keys,rss,start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (minutes, not tens)")
    parser.add_argument("--only", default=ROWS)
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "scale")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
