"""WAL (the store's default) against a rollback journal: write amplification vs commit cost.

Usage:
    python bench/journal.py [--variants wal,rollback] [--rounds 8] [--relay-rounds 3]

Issue 9 §2 asks that a sync of a log larger than its quota write at most 2x the quota to disk. In
WAL mode every page is written twice (WAL, then checkpoint), so a store cannot get under 2x; a
rollback journal writes new pages once (only pages that existed before the transaction are
copied to the journal) but costs ~4 fsyncs per commit instead of 1. This bench measures both
sides in one run, each variant a value of `store.journal` forced into node/store/schema.py's
`configure` ("wal": 4 KiB pages; "rollback": PERSIST, 2 KiB pages for a new store; always
synchronous=FULL and an exclusive lock):

  over_quota    bench/over_quota.py's case (1 MiB quota, logs of 2x and 10x): disk bytes written
                for the sync and the store's close, per quota (goal <= 2)
  store_ingest  2,048 pre-built entries put and committed 16 or 128 at a time, alternating the
                variants for --rounds rounds: median entries/s and median commit() time
  fsyncs        fsync + fdatasync per commit (strace -f -c of a child doing 100 commits, minus
                one doing none); null without strace
  relay         bench/relay.py's latency (500 entries at 100/s: offer -> delivered to an online
                member, and the writer's ack) and throughput (5,000 entries) cases against a real
                daemon process whose store runs the variant, alternating, medians
  loop_calls    the daemon's arrangement in this process: the Committer commits on its thread
                (interval 100 ms) while the event loop puts 8 entries every 10 ms and asks
                `has()` every 2 ms; how long those store calls take on the loop (a call made
                while a commit runs waits for the store's lock), and commit() durations
  scale_ingest  bench/scale.py's ingest row (decode + verify + store, a durable commit per 128
                entries, vs raw verify; beside it bench/ingest.py's decode + verify ratio)
  scale_latency bench/scale.py's latency row (accept -> deliver, 100 entries/s, with --load
                members syncing in a loop in another process; reference: unloaded)

The reference is the first variant (the store's default), measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import over_quota  # noqa: E402
import relay as relay_bench  # noqa: E402
import scale as scale_bench  # noqa: E402
import store as store_bench  # noqa: E402

from node.app.context import Committer  # noqa: E402
from node.store import schema  # noqa: E402
from node.store import sqlite as sqlite_store  # noqa: E402
from node.store.sqlite import SQLiteStore  # noqa: E402
from node.sync.store import Limits  # noqa: E402

ENV = "WAYSTATION_BENCH_JOURNAL"
# The daemon for the relay case: the real CLI with the variant's pragmas patched in.
DAEMON = """#!{python}
import os, sys
sys.path.insert(0, {bench!r})
import journal
from node.app.cli import main
journal.install(os.environ[{env!r}])
sys.exit(main())
"""


def install(variant: str) -> None:
    """Make every store opened from now on use journal `variant` ("wal" or "rollback")."""
    sqlite_store.configure = (  # type: ignore[assignment]
        lambda conn, journal="wal": schema.configure(conn, variant)
    )


def fresh(workdir: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=workdir))


def new_store(directory: Path) -> SQLiteStore:
    limits = Limits(max_log_bytes=1 << 40, max_total_bytes=1 << 40)
    return SQLiteStore.open_in(directory, store_bench.SUITE.ed25519_verify, limits)


def ingest(workdir: Path, entries: list, public: bytes, batch: int) -> tuple[float, float]:
    """(entries/s, median commit ms) of one fresh store."""
    directory = fresh(workdir)
    store = new_store(directory)
    store.add_log(store_bench.LOG_ID, public)
    store.commit()
    commits: list[float] = []
    start = time.perf_counter()
    for i in range(0, len(entries), batch):
        store.put_entries(entries[i : i + batch], 1_000_000 + i)
        before = time.perf_counter()
        store.commit()
        commits.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - start
    store.close()
    shutil.rmtree(directory, ignore_errors=True)
    return len(entries) / elapsed, statistics.median(commits) * 1000


def fsync_child(variant: str, commits: int, directory: Path) -> None:
    install(variant)
    public, entries = store_bench.build_entries(16 * commits)
    store = new_store(directory)
    store.add_log(store_bench.LOG_ID, public)
    store.commit()
    for i in range(0, len(entries), 16):
        store.put_entries(entries[i : i + 16], 1_000_000 + i)
        store.commit()
    os._exit(0)


def fsyncs_per_commit(variant: str, workdir: Path) -> float | None:
    strace = shutil.which("strace")
    if strace is None:
        return None
    counts = []
    for commits in (0, 100):
        directory = fresh(workdir)
        out = directory / "strace.txt"
        subprocess.run(
            [strace, "-f", "-c", "-o", str(out), "-e", "trace=fsync,fdatasync", sys.executable,
             __file__, "--child", "%s,%d" % (variant, commits), "--dir", str(directory)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        counts.append(store_bench.fsync_calls(out))
        shutil.rmtree(directory, ignore_errors=True)
    return (counts[1] - counts[0]) / 100


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def loop_calls(workdir: Path, entries: list, public: bytes, seconds: float) -> dict:
    """Store calls on the event loop while the Committer commits on its thread (see docstring)."""
    directory = fresh(workdir)
    store = new_store(directory)
    store.add_log(store_bench.LOG_ID, public)
    store.commit()
    commits: list[float] = []
    real = store.commit

    def timed_commit() -> list:
        before = time.perf_counter()
        try:
            return real()
        finally:
            commits.append(time.perf_counter() - before)

    store.commit = timed_commit  # type: ignore[method-assign]
    committer = Committer(store, 0.1)
    running = asyncio.create_task(committer.run())
    puts: list[float] = []
    reads: list[float] = []
    acked = [0]
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        for i in range(0, len(entries), 8):
            if time.perf_counter() > deadline:
                return
            before = time.perf_counter()
            store.put_entries(entries[i : i + 8], 1_000_000 + i)
            puts.append(time.perf_counter() - before)
            committer.after_commit(lambda ok: acked.__setitem__(0, acked[0] + ok))
            await asyncio.sleep(0.01)

    async def reader() -> None:
        while time.perf_counter() < deadline:
            before = time.perf_counter()
            store.has(entries[0].cid)
            reads.append(time.perf_counter() - before)
            await asyncio.sleep(0.002)

    await asyncio.gather(writer(), reader())
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    store.close()
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "has_p50_ms": percentile_ms(reads, 0.5), "has_p99_ms": percentile_ms(reads, 0.99),
        "has_max_ms": percentile_ms(reads, 1.0), "put_p50_ms": percentile_ms(puts, 0.5),
        "put_p99_ms": percentile_ms(puts, 0.99), "put_max_ms": percentile_ms(puts, 1.0),
        "commit_p50_ms": percentile_ms(commits, 0.5), "commit_p99_ms": percentile_ms(commits, 0.99),
        "commits": len(commits), "batches_acked": acked[0],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="wal,rollback")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--relay-rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=20, help="load members of scale_latency")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, commits = args.child.split(",")
        fsync_child(variant, int(commits), args.dir)
    variants = args.variants.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    try:
        run(args, variants, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, variants: list[str], workdir: Path) -> None:
    def emit(line: dict[str, object]) -> None:
        print(json.dumps({"reference": variants[0], **line}), flush=True)

    for variant in variants:
        install(variant)
        for times in (2, 10):
            directory = fresh(workdir)
            case = over_quota.case(directory, 1024 * 1024, times)
            shutil.rmtree(directory, ignore_errors=True)
            keep = ("times", "disk_write_bytes", "disk_per_quota", "kept_entries", "of", "passes")
            emit({"case": "over_quota", "variant": variant, **{k: case[k] for k in keep}})
        emit(
            {
                "case": "fsyncs",
                "variant": variant,
                "per_commit": fsyncs_per_commit(variant, workdir),
            }
        )
    public, entries = store_bench.build_entries(2048)
    ingests: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for variant in variants:
            install(variant)
            for batch in (16, 128):
                ingests.setdefault((variant, batch), []).append(
                    ingest(workdir, entries, public, batch)
                )
    for (variant, batch), runs in ingests.items():
        emit({
            "case": "store_ingest", "variant": variant, "batch": batch, "rounds": len(runs),
            "entries_per_s": round(statistics.median(r[0] for r in runs)),
            "commit_ms": round(statistics.median(r[1] for r in runs), 2),
        })  # fmt: skip
    calls: dict[str, list[dict]] = {}
    public, entries = store_bench.build_entries(3072)
    for _ in range(args.rounds // 2):
        for variant in variants:
            install(variant)
            calls.setdefault(variant, []).append(
                asyncio.run(loop_calls(workdir, entries, public, 3.0))
            )
    for variant, runs in calls.items():
        emit({
            "case": "loop_calls", "variant": variant, "rounds": len(runs),
            **{k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]},
        })  # fmt: skip
    for _ in range(2):
        for variant in variants:
            install(variant)
            scale_bench.emit = lambda line, v=variant: emit(
                {"case": "scale_ingest", "variant": v, **line}
            )
            scale_bench.row_ingest(4000)
    daemon = workdir / "waystation"
    daemon.write_text(DAEMON.format(python=sys.executable, bench=str(ROOT / "bench"), env=ENV))
    daemon.chmod(0o755)
    relay_bench.WAYSTATION = daemon
    relays: dict[str, list[tuple[dict, dict]]] = {}
    for _ in range(args.relay_rounds):
        for variant in variants:
            os.environ[ENV] = variant
            latency = asyncio.run(relay_bench.bench_latency(fresh(workdir), 500, 100.0))
            throughput = asyncio.run(relay_bench.bench_throughput(fresh(workdir), 5000))
            relays.setdefault(variant, []).append((latency, throughput))
    for variant in variants:
        os.environ[ENV] = variant
        scale_bench.emit = lambda line, v=variant: emit(
            {"case": "scale_latency", "variant": v, **line}
        )
        asyncio.run(scale_bench.row_latency(fresh(workdir), 300, args.load))
    for variant, runs in relays.items():

        def median(pick: Callable[[tuple[dict, dict]], float], runs=runs) -> float:
            return round(statistics.median(pick(r) for r in runs), 2)

        emit({
            "case": "relay", "variant": variant, "rounds": len(runs),
            "deliver_p50_ms": median(lambda r: r[0]["p50_ms"]),
            "deliver_p99_ms": median(lambda r: r[0]["p99_ms"]),
            "ack_p50_ms": median(lambda r: r[0]["ack_p50_ms"]),
            "ack_p99_ms": median(lambda r: r[0]["ack_p99_ms"]),
            "relayed_per_wall_s": median(lambda r: r[1]["relayed_per_wall_s"]),
            "relayed_per_cpu_s": median(lambda r: r[1]["relayed_per_cpu_s"]),
        })  # fmt: skip


if __name__ == "__main__":
    main()
