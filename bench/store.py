"""Durable ingest into the SQLite store: entries/s, fsyncs per entry, bytes written per byte stored.

Usage:
    python bench/store.py [--entries N] [--batches 1,16,128] [--no-strace] [--dir DIR]

For every (batch size, synchronous mode) case the same N pre-built entries (one log, a chain, ~1 KiB
payloads, Ed25519-signed with PyNaCl) are put into a fresh store `batch` at a time, each batch
followed by commit(): an entry counts only once commit() has acknowledged it, i.e. under the
store's durability rule (synchronous=FULL: the WAL is fsynced before commit returns). The
"normal" mode (synchronous=NORMAL, not durable at acknowledgement) is measured beside it for
comparison only. Each case prints one JSON line:

    entries_per_s       acknowledged entries per second, wall clock, verification included
    verify_per_s        raw PyNaCl Ed25519 verifications per second in the same run
    fsyncs_per_entry    fsync + fdatasync calls per entry, counted by strace -f -c in a child
                        process that runs the same case (minus the calls of a run with no entries);
                        null with --no-strace or when strace is missing
    write_syscall_bytes_per_byte   bytes passed to write()/pwrite() (/proc/self/io wchar) per block
                        byte stored: what SQLite hands the kernel (WAL frames + checkpoints)
    block_write_bytes_per_byte     /proc/self/io write_bytes per block byte: what the kernel
                        accounted for the storage device during the run (writeback may lag)
    file_bytes_per_byte (db + wal file sizes) per block byte after the run
    has_per_s, get_block_per_s, miss_per_s   lookups by CID after the run (not in the child):
                        has() and get_block() of 2,000 stored entries in random order, and has()
                        of 2,000 CIDs that are not stored
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.crypto._nacl import NaclSuite  # noqa: E402
from node.store.sqlite import FILENAME, SQLiteStore  # noqa: E402
from node.sync.cid import CID  # noqa: E402
from node.sync.entry import Entry, create_entry  # noqa: E402
from node.sync.store import Limits  # noqa: E402

SUITE = NaclSuite()
LOG_ID = "/orbitdb/bafyreibench/00_berty_group_messages"
PAYLOAD_BYTES = 1024


def build_entries(count: int) -> tuple[bytes, list[Entry]]:
    public, secret = SUITE.ed25519_keypair(b"\x07" * 32)

    def sign(message: bytes) -> bytes:
        return SUITE.ed25519_sign(secret, message)

    entries: list[Entry] = []
    for i in range(count):
        payload = '{"op":"ADD","value":"%s"}' % (("%06d" % i) * (PAYLOAD_BYTES // 6))
        parents = [entries[-1].cid] if entries else []
        entries.append(create_entry(LOG_ID, payload, parents, [], i + 1, public, sign))
    return public, entries


def proc_io() -> dict[str, int]:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def verify_rate(entries: list[Entry], public: bytes) -> float:
    from node.sync.entry import signed_bytes

    sample = entries[: min(len(entries), 2000)]
    messages = [(signed_bytes(e), e.sig) for e in sample]
    start = time.perf_counter()
    for message, sig in messages:
        SUITE.ed25519_verify(public, message, sig)
    return len(messages) / (time.perf_counter() - start)


def ingest(directory: Path, entries: list[Entry], public: bytes, batch: int, sync: str) -> dict:
    limits = Limits(max_log_bytes=1 << 40, max_total_bytes=1 << 40)
    store = SQLiteStore.open_in(directory, SUITE.ed25519_verify, limits)
    if sync == "normal":
        store._db().execute("PRAGMA synchronous = NORMAL")
    store.add_log(LOG_ID, public)
    store.commit()
    io_before = proc_io()
    acknowledged = 0
    start = time.perf_counter()
    for i in range(0, len(entries), batch):
        store.put_entries(entries[i : i + batch], 1_000_000 + i)
        acknowledged += len(store.commit())
    elapsed = time.perf_counter() - start
    io_after = proc_io()
    lookups = lookup_rates(store, entries)
    stored = sum(len(e.block) for e in entries)
    files = sum(
        p.stat().st_size
        for p in (directory / FILENAME, directory / (FILENAME + "-wal"))
        if p.exists()
    )
    result = {
        "acknowledged": acknowledged,
        "seconds": round(elapsed, 4),
        "entries_per_s": round(acknowledged / elapsed, 1) if elapsed else None,
        "block_bytes": stored,
        "file_bytes_per_byte": round(files / stored, 3) if stored else None,
        **lookups,
    }
    if io_before and stored:
        result["write_syscall_bytes_per_byte"] = round(
            (io_after["wchar"] - io_before["wchar"]) / stored, 3
        )
        result["block_write_bytes_per_byte"] = round(
            (io_after["write_bytes"] - io_before["write_bytes"]) / stored, 3
        )
    return result


def lookup_rates(store: SQLiteStore, entries: list[Entry]) -> dict[str, float]:
    """has/get_block per second for stored CIDs (random order) and has for missing ones."""
    if not entries:
        return {}
    rng = random.Random(7)
    stored = [e.cid for e in rng.sample(entries, min(len(entries), 2000))]
    missing = [CID.from_block(b"missing %d" % i) for i in range(len(stored))]
    rates: dict[str, float] = {}
    for name, call, cids in (
        ("has_per_s", store.has, stored),
        ("get_block_per_s", store.get_block, stored),
        ("miss_per_s", store.has, missing),
    ):
        start = time.perf_counter()
        for cid in cids:
            call(cid)
        rates[name] = round(len(cids) / (time.perf_counter() - start), 1)
    return rates


def child(case: str, count: int, directory: Path) -> None:
    """Run one case and exit at once (no close, no final checkpoint): for strace counting."""
    batch, sync = case.split(",")
    public, entries = build_entries(count)
    ingest(directory, entries, public, int(batch), sync)
    sys.stdout.flush()
    os._exit(0)


def strace_fsyncs(case: str, count: int, workdir: Path) -> int | None:
    """fsync + fdatasync calls of a child running `case` with `count` entries."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    directory = Path(tempfile.mkdtemp(dir=workdir))
    out = directory / "strace.txt"
    subprocess.run(
        [strace, "-f", "-c", "-o", str(out), "-e", "trace=fsync,fdatasync", sys.executable,
         __file__, "--child", case, "--entries", str(count), "--dir", str(directory)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    calls = fsync_calls(out)
    shutil.rmtree(directory, ignore_errors=True)
    return calls


def fsync_calls(strace_summary: Path) -> int:
    """fsync + fdatasync calls in an `strace -c` summary file."""
    calls = 0
    for line in strace_summary.read_text().splitlines():
        match = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)$", line)
        if match:
            calls += int(match.group(1))
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=4000)
    parser.add_argument("--batches", default="1,16,128")
    parser.add_argument("--modes", default="full,normal")
    parser.add_argument("--no-strace", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.entries, args.dir)
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    try:
        public, entries = build_entries(args.entries)
        verify = verify_rate(entries, public)
        for sync in args.modes.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                directory = Path(tempfile.mkdtemp(dir=workdir))
                result = ingest(directory, entries, public, batch, sync)
                fsyncs = None
                if not args.no_strace:
                    total = strace_fsyncs("%d,%s" % (batch, sync), args.entries, workdir)
                    base = strace_fsyncs("%d,%s" % (batch, sync), 0, workdir)
                    if total is not None and base is not None:
                        fsyncs = round((total - base) / args.entries, 4)
                line = {
                    "case": "ingest",
                    "synchronous": sync,
                    "durable_ack": sync == "full",
                    "batch": batch,
                    "entries": args.entries,
                    "payload_bytes": PAYLOAD_BYTES,
                    "entries_per_s": result["entries_per_s"],
                    "verify_per_s": round(verify, 1),
                    "fsyncs_per_entry": fsyncs,
                    **{k: v for k, v in result.items() if k != "entries_per_s"},
                }
                print(json.dumps(line), flush=True)
                shutil.rmtree(directory, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
