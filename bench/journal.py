"""WAL (the store's mode) against a rollback journal: write amplification vs commit cost.

Usage:
    python bench/journal.py [--variants wal-4096,persist-2048] [--rounds 8] [--relay-rounds 4]

Issue 9 §2 asks that a sync of a log larger than its quota write at most 2x the quota to disk. In
WAL mode every page is written twice (WAL, then checkpoint), so the store cannot get under 2x; a
rollback journal writes new pages once (only pages that existed before the transaction are
copied to the journal) but costs ~4 fsyncs per commit instead of 1. This bench measures both
sides in one run, each variant a set of pragmas (journal mode, page size of a new store; always
synchronous=FULL and an exclusive lock) patched into the store's `configure`:

  over_quota    bench/over_quota.py's case (1 MiB quota, logs of 2x and 10x): disk bytes written
                for the sync and the store's close, per quota (goal <= 2)
  store_ingest  2,048 pre-built entries put and committed 16 or 128 at a time, alternating the
                variants for --rounds rounds: median entries/s and median commit() time
  fsyncs        fsync + fdatasync per commit (strace -f -c of a child doing 100 commits, minus
                one doing none); null without strace
  relay         bench/relay.py's latency (500 entries at 100/s: offer -> delivered to an online
                member, and the writer's ack) and throughput (5,000 entries) cases against a real
                daemon process whose store runs the variant, alternating, medians

The reference is the first variant (the store's mode today), measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
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
import store as store_bench  # noqa: E402

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


def configure_for(variant: str) -> Callable[[sqlite3.Connection], None]:
    """The store's `configure` with `variant` ("wal-4096", "persist-2048", ...)."""
    journal, page = variant.split("-")

    def configure(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA page_size = %d" % int(page))
        mode = conn.execute("PRAGMA journal_mode = %s" % journal.upper()).fetchone()
        assert str(mode[0]).lower() == journal, mode
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = OFF")

    return configure


def install(variant: str) -> None:
    sqlite_store.configure = configure_for(variant)  # type: ignore[assignment]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="wal-4096,persist-2048")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--relay-rounds", type=int, default=4)
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
