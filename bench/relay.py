"""Relay benchmark: a real `waystation run` process, members over loopback TCP.

Usage (from the repository root):

    .venv/bin/python bench/relay.py [--quick] [--dir DIR] [--only latency,throughput,memory]

Prints one JSON line per measurement (the peer figure or the goal beside ours in the same line):

  latency     A relay daemon process (`waystation run --data D --listen 127.0.0.1:0
              --no-zeroconf`, default configuration: store.commit_interval_ms = 100). An "online"
              member keeps a session open (LinkDriver, until_synced=False); a writer member keeps
              another one open and offers one new entry at a time, paced at --rate entries/s (the
              G14 load: 100/s). Measured: writer offers the entry (stored locally, handed to its
              driver) -> the online member's driver has decoded, verified and stored it, wall
              clock in this process. The relay's share is reported beside it: the relay process's
              CPU time per relayed entry (psutil user+sys), and this process's CPU per entry (both
              members' work). The relay pushes to other links when it *stores* an entry, before
              the group commit; only the writer's ack waits for the commit (`ack_ms_*`).
  throughput  The writer uploads --entries pre-built entries (one log, ~1 KiB payloads) through the
              relay to an online member. Relay CPU (user+sys) from before the writer connects to
              when the member holds every entry: entries relayed per CPU second ("per core"),
              beside the raw PyNaCl Ed25519 verify rate (nacl.bindings.crypto_sign_open over the
              same entries' signed bytes) in this run, and their ratio (G9 asks >= 0.5 for ingest).
  memory      RSS of the daemon (psutil) with --stored entries (default 100k, ~1 KiB payloads,
              over --logs logs) written into its store before it starts, then with --sessions
              members connected and in sync (one per log, round robin), beside the goal (64 MB)
              and two baselines measured in this run: a bare CPython + asyncio + sqlite3 process,
              and the daemon on an empty store with no session.

--quick: 500 latency samples, 5k throughput entries (the memory case is unchanged: 100k, 16).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nacl.bindings  # noqa: E402
import psutil  # type: ignore[import-untyped]  # noqa: E402

from node.app.context import NodeContext  # noqa: E402
from node.app.peer import LinkDriver, SyncOutcome  # noqa: E402
from node.app.sync_client import MAX_FRAME, member_context  # noqa: E402
from node.crypto._nacl import NaclSuite  # noqa: E402
from node.crypto.address import MESSAGES_STORE, store_address  # noqa: E402
from node.crypto.keys import multi_member_group_from_seeds  # noqa: E402
from node.lan.tcp import connect  # noqa: E402
from node.proto.session import AckReceived  # noqa: E402
from node.store.sqlite import SQLiteStore  # noqa: E402
from node.sync.entry import Entry, create_entry, signed_bytes  # noqa: E402
from node.sync.store import Limits, MemoryStore  # noqa: E402

if TYPE_CHECKING:
    from node.sync.keyset import Key

SUITE = NaclSuite()
WAYSTATION = ROOT / ".venv" / "bin" / "waystation"
PAYLOAD_BYTES = 1024
GOAL_RSS_MB = 64
GOAL_P99_MS = 50  # G14, on a Zero 2 W at 100 entries/s
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
LOG_ENTRIES = 5000  # entries per log in the throughput case (~9.5 MB, under the 16 MiB quota)
BIG = Limits(max_log_bytes=1 << 40, max_total_bytes=1 << 40)


def no_verify(_pk: bytes, _msg: bytes, _sig: bytes) -> bool:
    """For stores filled with entries this program signed itself (the daemon never sees this)."""
    return True


class Group:
    """One group's messages log and its signing key (what every member device of it holds)."""

    def __init__(self, seed: int) -> None:
        group, _ = multi_member_group_from_seeds(
            SUITE, hashlib.sha256(b"relay bench %d" % seed).digest(), bytes([seed % 251 + 1]) * 32
        )
        self.sign_pub, self.sign_secret = group.signing_keypair(SUITE)
        self.address = store_address(SUITE, group.public_key, self.sign_pub, MESSAGES_STORE)
        self.identity_signature = SUITE.ed25519_sign(self.sign_secret, self.sign_pub.hex().encode())
        self.entries: list[Entry] = []

    def append(self) -> Entry:
        """A new ~1 KiB entry on the chain (next = the previous entry)."""
        n = len(self.entries)
        value = hashlib.sha256(b"%s %d" % (self.address.encode(), n)).hexdigest()
        payload = '{"op":"ADD","value":"%s"}' % (value * (PAYLOAD_BYTES // 64))
        parents = [self.entries[-1].cid] if self.entries else []
        entry = create_entry(
            self.address,
            payload,
            parents,
            [],
            n + 1,
            self.sign_pub,
            lambda m: SUITE.ed25519_sign(self.sign_secret, m),
        )
        self.entries.append(entry)
        return entry

    def own(self) -> dict[str, tuple[bytes, bytes]]:
        return {self.address: (self.sign_pub, self.identity_signature)}


def key_of(entry: Entry) -> Key:
    return (entry.clock_time, entry.cid.digest)


def cpu_seconds(proc: psutil.Process) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    times = proc.cpu_times()
    return float(times.user), float(times.system)


def cpu_since(proc: psutil.Process, before: tuple[float, float]) -> tuple[float, float]:
    user, system = cpu_seconds(proc)
    return user - before[0], system - before[1]


def rss_mb(proc: psutil.Process) -> float:
    return round(float(proc.memory_info().rss) / 2**20, 1)


def peak_rss_mb(pid: int) -> float | None:
    try:
        text = Path("/proc/%d/status" % pid).read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return round(int(match.group(1)) / 1024, 1) if match else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# -- the relay process -----------------------------------------------------------------------


class Relay:
    """A `waystation run` child process on a data directory."""

    def __init__(self, data: Path, config: Path | None = None) -> None:
        self.data = data
        self.config = config
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: psutil.Process | None = None
        self.log: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        config = ["--config", str(self.config)] if self.config is not None else []
        self.proc = await asyncio.create_subprocess_exec(
            str(WAYSTATION), "run", "--data", str(self.data), "--listen", "127.0.0.1:0",
            "--no-zeroconf", *config,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("relay exited: %s" % "".join(self.log[-20:]))
                self.log.append(line)
                match = LISTENING.search(line)
                if match:
                    self.port = int(match.group(1))
                    break
        self.ps = psutil.Process(self.proc.pid)
        self._drain = asyncio.create_task(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.log.append(line.decode(errors="replace"))
            del self.log[:-200]

    def status(self) -> dict[str, object]:
        try:
            return json.loads((self.data / "status.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            async with asyncio.timeout(20):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


@contextlib.asynccontextmanager
async def running_relay(data: Path, config: Path | None = None) -> AsyncIterator[Relay]:
    relay = Relay(data, config)
    try:
        await relay.start()
        yield relay
    finally:
        await relay.stop()


# -- members ---------------------------------------------------------------------------------


class Member:
    """A member device with one open session to the relay (its own committer and driver)."""

    def __init__(self, groups: list[Group], store: MemoryStore, until_synced: bool = False) -> None:
        self.group = groups[0]
        self.store = store
        own: dict[str, tuple[bytes, bytes]] = {}
        for group in groups:
            own.update(group.own())
        self.ctx: NodeContext = member_context(store, SUITE, own)
        self.until_synced = until_synced
        self.driver: LinkDriver | None = None
        self.task: asyncio.Task[SyncOutcome] | None = None
        self.received: dict[Key, float] = {}
        self.new_entry = asyncio.Event()
        self.ctx.hub.subscribe(self._on_stored)

    def _on_stored(self, _address: str, keys: list[Key], source: object) -> None:
        if source is None:
            return  # our own offer
        now = time.perf_counter()
        for key in keys:
            self.received.setdefault(key, now)
        self.new_entry.set()

    async def open(self, port: int) -> None:
        link = await connect("127.0.0.1", port, MAX_FRAME, 10.0)
        self.driver = LinkDriver(self.ctx, link, initiator=True, until_synced=self.until_synced)
        self.task = asyncio.create_task(self._run(self.driver))

    async def _run(self, driver: LinkDriver) -> SyncOutcome:
        committer = asyncio.create_task(self.ctx.committer.run())
        try:
            return await driver.run()
        finally:
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committer

    async def wait_in_sync(self, timeout: float = 60.0) -> None:
        """Wait (with a deadline) until a pass found every log in sync; LinkError if the
        session ended first."""
        assert self.driver is not None
        async with asyncio.timeout(timeout):
            await self.driver.wait_in_sync()

    async def wait_received(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.new_entry.clear()
                await self.new_entry.wait()

    def offer(self, entry: Entry) -> float:
        """Store a new entry locally and hand it to the open session; returns the time."""
        self.store.put_entries([entry], time.time())
        self.store.commit()
        offered = time.perf_counter()
        self.ctx.hub.published(self.group.address, [key_of(entry)], None)
        return offered

    async def close(self) -> SyncOutcome | None:
        if self.driver is None or self.task is None:
            return None
        if not self.task.done():
            self.driver.request_close("ok", "bench done")
        async with asyncio.timeout(20):
            return await self.task


def member_store(groups: list[Group], entries: list[Entry] | None = None) -> MemoryStore:
    store = MemoryStore(no_verify if entries else SUITE.ed25519_verify, BIG)
    for group in groups:
        store.add_log(group.address, group.sign_pub, pinned=True)
    if entries:
        store.put_entries(entries, time.time())
        store.commit()
        store.verify = SUITE.ed25519_verify  # later arrivals are verified as usual
    return store


# -- measurements ----------------------------------------------------------------------------


def time_acks(driver: LinkDriver, offered: list[float], acked: list[float]) -> None:
    """Time each relay ack of the writer's entries, from the session's AckReceived events.

    Wraps the driver's session.next_event (the driver exposes no ack hook). Acks come in send
    order and the writer sends in offer order, so the oldest unacknowledged offers are the ones
    just acknowledged.
    """
    session = driver.session
    next_event = session.next_event

    def timed_next_event() -> object | None:
        event = next_event()
        if isinstance(event, AckReceived):
            now = time.perf_counter()
            for _ in range(event.stored):
                acked.append(now - offered[len(acked)])
        return event

    session.next_event = timed_next_event  # type: ignore[method-assign]


async def load_worker(port: int, count: int) -> None:
    """`count` members, each syncing its own small log with the relay at `port` in a loop,
    until killed; prints "ready" once all are in sync, then one "." per 100 syncs."""
    groups = [Group(9000 + i) for i in range(count)]
    for group in groups:
        for _ in range(4):
            group.append()
    syncs = 0
    ready = asyncio.Event()

    async def loop(group: Group) -> None:
        nonlocal syncs
        store = member_store([group], group.entries)
        while True:
            member = Member([group], store, until_synced=True)
            await member.open(port)
            assert member.task is not None
            async with asyncio.timeout(60):
                outcome = await member.task
            if not outcome.in_sync:
                raise RuntimeError("load member: %r" % outcome)
            syncs += 1
            if syncs == count:
                ready.set()
                print("ready", flush=True)
            elif syncs % 100 == 0:
                print(".", flush=True)

    async with asyncio.TaskGroup() as tg:
        for group in groups:
            tg.create_task(loop(group))


@contextlib.asynccontextmanager
async def loaded(port: int, count: int) -> AsyncIterator[list[int]]:
    """`count` members syncing in a loop with the relay, in a child process (so their CPU is
    not this process's event loop); yields [syncs so far], counted on exit."""
    if count == 0:
        yield [0]
        return
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__)), "--load-worker", str(port), str(count),
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    syncs = [0]
    try:
        async with asyncio.timeout(120):
            line = await proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError("load worker did not start: %r" % line)
        yield syncs
    finally:
        proc.kill()
        rest = await proc.stdout.read()
        await proc.wait()
        syncs[0] = count + 100 * rest.count(b".")


async def bench_latency(workdir: Path, count: int, rate: float, load: int = 0) -> dict[str, object]:
    group = Group(1)
    for _ in range(count):
        group.append()
    data = Path(tempfile.mkdtemp(prefix="latency-", dir=workdir))
    config = data.parent / (data.name + ".toml")
    config.write_text("[relay]\nmax_sessions = %d\n" % max(64, 2 * load + 8))
    async with running_relay(data, config) as relay, loaded(relay.port, load) as load_syncs:
        assert relay.ps is not None
        online = Member([group], member_store([group]))
        writer = Member([group], member_store([group]))
        await online.open(relay.port)
        await online.wait_in_sync()
        await writer.open(relay.port)
        await writer.wait_in_sync()
        assert writer.driver is not None
        offered: list[float] = []
        acked: list[float] = []
        time_acks(writer.driver, offered, acked)
        relay_before = cpu_seconds(relay.ps)
        own_cpu = time.process_time()
        start = time.perf_counter()
        for i, entry in enumerate(group.entries):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            offered.append(writer.offer(entry))
        await online.wait_received(count, 60)
        async with asyncio.timeout(30):
            while len(acked) < count:
                await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        relay_user, relay_sys = cpu_since(relay.ps, relay_before)
        own_cpu = time.process_time() - own_cpu
        await writer.close()
        await online.close()
    status = relay.status()  # written by the daemon at exit
    shutil.rmtree(data, ignore_errors=True)
    lat = [online.received[key_of(e)] - t for e, t in zip(group.entries, offered, strict=True)]
    return {
        "bench": "relay",
        "case": "latency",
        "entries": count,
        "rate_per_s": rate,
        "achieved_rate_per_s": round(count / elapsed, 1),
        "p50_ms": ms(statistics.median(lat)),
        "p99_ms": ms(percentile(lat, 0.99)),
        "max_ms": ms(max(lat)),
        "goal_p99_ms": GOAL_P99_MS,
        "ack_p50_ms": ms(statistics.median(acked)),
        "ack_p99_ms": ms(percentile(acked, 0.99)),
        "load_members": load,
        "load_syncs": load_syncs[0],
        "commit_interval_ms": 100,
        "relay_commits": status.get("commits"),
        "relay_cpu_us_per_entry": round((relay_user + relay_sys) / count * 1e6, 1),
        "relay_sys_us_per_entry": round(relay_sys / count * 1e6, 1),
        "members_cpu_us_per_entry": round(own_cpu / count * 1e6, 1),
    }


def raw_verify_rate(entries: list[Entry], sign_pub: bytes, repeat: int = 3) -> float:
    """PyNaCl's crypto_sign_open over the entries' signed bytes: verifications per second."""
    messages = [entry.sig + signed_bytes(entry) for entry in entries[:5000]]
    sign_open = nacl.bindings.crypto_sign_open
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for message in messages:
            sign_open(message, sign_pub)
        best = min(best, time.perf_counter() - start)
    return len(messages) / best


async def bench_throughput(workdir: Path, count: int) -> dict[str, object]:
    # The daemon gives each community log a 16 MiB quota (relay.community_log_bytes); at the
    # quota every new entry evicts another. Spread the batch so no log reaches it.
    groups = [Group(2 + i) for i in range(max(1, -(-count // LOG_ENTRIES)))]
    for i in range(count):
        groups[i % len(groups)].append()
    entries = [e for g in groups for e in g.entries]
    group = groups[0]
    raw = raw_verify_rate(group.entries, group.sign_pub)
    data = Path(tempfile.mkdtemp(prefix="throughput-", dir=workdir))
    async with running_relay(data) as relay:
        assert relay.ps is not None
        online = Member(groups, member_store(groups))
        writer = Member(groups, member_store(groups, entries), until_synced=True)
        await online.open(relay.port)
        await online.wait_in_sync()
        relay_before = cpu_seconds(relay.ps)
        start = time.perf_counter()
        await writer.open(relay.port)
        await online.wait_received(count, 600)
        elapsed = time.perf_counter() - start
        relay_user, relay_sys = cpu_since(relay.ps, relay_before)
        relay_cpu = relay_user + relay_sys
        outcome = await writer.close()
        await online.close()
    shutil.rmtree(data, ignore_errors=True)
    per_core = count / relay_cpu
    block_bytes = statistics.fmean(len(e.block) for e in entries)
    return {
        "bench": "relay",
        "case": "throughput",
        "entries": count,
        "logs": len(groups),
        "entry_bytes": round(block_bytes),
        "relayed_per_cpu_s": round(per_core),
        "relay_cpu_s": round(relay_cpu, 3),
        "relay_sys_s": round(relay_sys, 3),
        "wall_s": round(elapsed, 3),
        "relayed_per_wall_s": round(count / elapsed),
        "raw_verify_per_s": round(raw),
        "ratio": round(per_core / raw, 3),
        "writer_in_sync": outcome.in_sync if outcome else None,
    }


def fill_store(data: Path, groups: list[Group]) -> int:
    """Write every group's entries into a fresh store in `data` (as the daemon would keep them)."""
    store = SQLiteStore.open_in(data, no_verify, BIG)
    try:
        now = time.time()
        for group in groups:
            store.add_log(group.address, group.sign_pub)
            for i in range(0, len(group.entries), 2000):
                store.put_entries(group.entries[i : i + 2000], now)
                store.commit()
        return store.stats()["entries"]
    finally:
        store.close()


BASELINE = (
    "import asyncio, sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1]); conn.execute('PRAGMA journal_mode=WAL')\n"
    "conn.execute('CREATE TABLE IF NOT EXISTS t (x)'); conn.commit()\n"
    "async def main():\n"
    "    print('ready', flush=True)\n"
    "    await asyncio.sleep(3600)\n"
    "asyncio.run(main())\n"
)


async def baseline_rss(workdir: Path) -> float:
    """RSS of a bare CPython + asyncio + sqlite3 process idling in its event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BASELINE, str(workdir / "baseline.sqlite3"),
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            await proc.stdout.readline()
        return rss_mb(psutil.Process(proc.pid))
    finally:
        proc.kill()
        await proc.wait()


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)  # let the relay finish the sessions' bookkeeping before reading


async def bench_memory(workdir: Path, stored: int, logs: int, sessions: int) -> dict[str, object]:
    groups = [Group(100 + i) for i in range(logs)]
    for i in range(stored):
        groups[i % logs].append()
    baseline = await baseline_rss(workdir)
    empty_dir = Path(tempfile.mkdtemp(prefix="memory-empty-", dir=workdir))
    async with running_relay(empty_dir) as relay:
        assert relay.ps is not None
        await settle(1.0)
        empty_rss = rss_mb(relay.ps)
    shutil.rmtree(empty_dir, ignore_errors=True)
    data = Path(tempfile.mkdtemp(prefix="memory-", dir=workdir))
    fill_store(data, groups)
    db_mb = round(sum(p.stat().st_size for p in data.iterdir()) / 2**20, 1)
    async with running_relay(data) as relay:
        assert relay.ps is not None
        await settle(1.0)
        loaded_rss = rss_mb(relay.ps)
        members = [
            Member([groups[i % logs]], member_store([groups[i % logs]], groups[i % logs].entries))
            for i in range(sessions)
        ]
        for member in members:
            await member.open(relay.port)
        for member in members:
            await member.wait_in_sync()
        await settle(1.0)
        sessions_rss = rss_mb(relay.ps)
        peak = peak_rss_mb(relay.ps.pid)
        for member in members:
            await member.close()
    shutil.rmtree(data, ignore_errors=True)
    return {
        "bench": "relay",
        "case": "memory",
        "stored_entries": stored,
        "logs": logs,
        "sessions": sessions,
        "store_file_mb": db_mb,
        "rss_mb": sessions_rss,
        "goal_rss_mb": GOAL_RSS_MB,
        "rss_no_sessions_mb": loaded_rss,
        "rss_empty_store_mb": empty_rss,
        "baseline_python_asyncio_sqlite_mb": baseline,
        "per_session_kb": round((sessions_rss - loaded_rss) * 1024 / sessions, 1),
        "per_stored_entry_bytes": round((loaded_rss - empty_rss) * 2**20 / stored, 1),
        "peak_rss_mb": peak,
    }


def profile_store_memory(workdir: Path, stored: int, logs: int, top: int = 8) -> dict[str, object]:
    """tracemalloc of opening a store of `stored` entries in this process (what the daemon does
    at start): total traced bytes per entry and the top allocation sites."""
    import tracemalloc

    groups = [Group(100 + i) for i in range(logs)]
    for i in range(stored):
        groups[i % logs].append()
    data = Path(tempfile.mkdtemp(prefix="memory-profile-", dir=workdir))
    fill_store(data, groups)
    del groups
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    store = SQLiteStore.open_in(data, no_verify, BIG)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    sites = [
        {"site": "%s:%d" % (Path(s.traceback[0].filename).name, s.traceback[0].lineno),
         "bytes_per_entry": round(s.size_diff / stored, 1)}
        for s in stats[:top]
    ]  # fmt: skip
    store.close()
    shutil.rmtree(data, ignore_errors=True)
    return {
        "bench": "relay",
        "case": "memory-profile",
        "stored_entries": stored,
        "logs": logs,
        "traced_bytes_per_entry": round(total / stored, 1),
        "top_sites": sites,
    }


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-", dir=args.dir))
    only = set(args.only.split(","))
    try:
        if "latency" in only:
            line = await bench_latency(workdir, args.latency_entries, args.rate)
            print(json.dumps({**line, "python": platform.python_version()}), flush=True)
        if "throughput" in only:
            line = await bench_throughput(workdir, args.entries)
            print(json.dumps({**line, "python": platform.python_version()}), flush=True)
        if "memory" in only:
            line = await bench_memory(workdir, args.stored, args.logs, args.sessions)
            print(json.dumps({**line, "python": platform.python_version()}), flush=True)
        if "profile" in only:
            line = profile_store_memory(workdir, args.stored, args.logs)
            print(json.dumps({**line, "python": platform.python_version()}), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency-entries", type=int, default=None)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--only", default="latency,throughput,memory")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data dirs")
    parser.add_argument("--load-worker", nargs=2, type=int, metavar=("PORT", "COUNT"))
    args = parser.parse_args()
    if args.load_worker:
        asyncio.run(load_worker(*args.load_worker))
        return
    if args.latency_entries is None:
        args.latency_entries = 500 if args.quick else 2000
    if args.entries is None:
        args.entries = 5000 if args.quick else 20000
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
