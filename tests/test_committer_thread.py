"""The group commit runs off the event loop, with the same durability contract (issue 14 §3).

Real SQLite in a temp dir, the real Committer in a real event loop. The store's commit is wrapped
(a spy that calls the real commit) only to hold it until the test lets it go, so that what the
loop does meanwhile can be seen:

* the commit runs on another thread, and the loop keeps running while it is held (if it ran on
  the loop's thread the loop could not release it: the spy's wait would time out);
* nothing is acknowledged before the commit returned, and what is acknowledged is on disk (the
  store is closed, which rolls back anything uncommitted, and reopened);
* the generation rule of issue 9: a put that fails and rolls back after a link's put makes that
  link's callback False although the next commit succeeds, and its entries are not on disk;
* a put made while a commit is on its way waits for it and is acknowledged by the next one.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from node.app.context import Committer
from node.errors import StoreError
from node.store.sqlite import SQLiteStore
from node.sync.entry import Entry
from node.sync.store import MemoryStore
from tests.sync_helpers import SUITE, GroupLog

HOLD_S = 10.0  # how long the held commit waits for the loop to release it


class HeldCommits:
    """Wraps `store.commit`: each commit announces itself, then waits for `release`."""

    def __init__(self, store: SQLiteStore) -> None:
        self.real = store.commit
        self.started = asyncio.Event()
        self.release = threading.Event()
        self.threads: list[int] = []
        self.timed_out = False
        self.loop = asyncio.get_running_loop()
        store.commit = self.commit  # type: ignore[method-assign]

    def commit(self) -> list[object]:
        self.threads.append(threading.get_ident())
        self.loop.call_soon_threadsafe(self.started.set)
        if not self.release.wait(HOLD_S):
            self.timed_out = True
        return self.real()  # type: ignore[return-value]


def _setup(tmp_path: Path) -> tuple[SQLiteStore, GroupLog, list[Entry]]:
    group = GroupLog.make(120)
    entries = [group.append("c %d" % i) for i in range(12)]
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    store.add_log(group.address, group.sign_pub)
    store.commit()
    return store, group, entries


def _count_on_disk(tmp_path: Path, group: GroupLog) -> int:
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    try:
        return store.log_info(group.address).entry_count
    finally:
        store.close()


class Told:
    """A commit callback: what it was told, and an event for the test to wait on."""

    def __init__(self) -> None:
        self.values: list[bool] = []
        self.event = asyncio.Event()

    def __call__(self, durable: bool) -> None:
        self.values.append(durable)
        self.event.set()

    async def wait(self) -> list[bool]:
        async with asyncio.timeout(HOLD_S):
            await self.event.wait()
        return self.values


def test_the_commit_runs_off_the_loop_and_acks_only_what_is_on_disk(tmp_path: Path) -> None:
    store, group, entries = _setup(tmp_path)

    async def scenario() -> tuple[HeldCommits, list[bool], list[bool], int]:
        held = HeldCommits(store)
        committer = Committer(store, 0.0)
        first, later = Told(), Told()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(committer.run())
            store.put_entries(entries[:6], 1_000_000)
            committer.after_commit(first, store.generation)
            async with asyncio.timeout(HOLD_S):
                await held.started.wait()
            # The loop ran while the commit is held on its thread; nothing is acknowledged yet.
            assert first.values == []
            # A put now waits for the commit on its way (the store's lock), in another thread
            # so that this loop can still release the commit.
            put = asyncio.create_task(asyncio.to_thread(store.put_entries, entries[6:], 1_000_000))
            held.release.set()
            await put
            committer.after_commit(later, store.generation)
            await later.wait()
            task.cancel()
        return held, first.values, later.values, threading.get_ident()

    held, first, later, loop_thread = asyncio.run(scenario())
    store.close()
    assert not held.timed_out, "the commit waited for the loop: it ran on the loop's thread"
    assert held.threads and loop_thread not in held.threads
    assert first == [True] and later == [True]
    assert _count_on_disk(tmp_path, group) == 12


def test_a_rollback_after_a_put_is_never_acknowledged_by_the_threaded_commit(
    tmp_path: Path,
) -> None:
    store, group, entries = _setup(tmp_path)
    # A real SQLite error on one insert (clock time 12): the put fails and rolls back.
    store._db().execute(
        "CREATE TEMP TRIGGER scale_fail BEFORE INSERT ON entries WHEN NEW.clock_time = 12 "
        "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
    )

    async def scenario() -> list[bool]:
        committer = Committer(store, 0.0)
        told = Told()
        async with asyncio.TaskGroup() as tg:
            store.put_entries(entries[:11], 1_000_000)  # link B
            committer.after_commit(told, store.generation)
            with pytest.raises(StoreError, match="forced failure"):
                store.put_entries(entries[11:], 1_000_000)  # link A fails: all rolled back
            task = tg.create_task(committer.run())
            values = await told.wait()
            task.cancel()
        return values

    told = asyncio.run(scenario())
    store.close()
    assert told == [False]
    assert _count_on_disk(tmp_path, group) == 0


def test_a_store_that_is_not_thread_safe_is_committed_on_the_loop() -> None:
    group = GroupLog.make(121)
    store = MemoryStore(SUITE.ed25519_verify)
    store.add_log(group.address, group.sign_pub)
    threads: list[int] = []
    real = store.commit

    def commit() -> list[object]:
        threads.append(threading.get_ident())
        return real()  # type: ignore[return-value]

    store.commit = commit  # type: ignore[method-assign]

    async def scenario() -> tuple[list[bool], int]:
        committer = Committer(store, 0.0)
        told = Told()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(committer.run())
            store.put_entries([group.append("m")], 1_000_000)
            committer.after_commit(told, store.generation)
            values = await told.wait()
            task.cancel()
        return values, threading.get_ident()

    told, loop_thread = asyncio.run(scenario())
    assert told == [True]
    assert threads == [loop_thread]


def test_where_no_thread_can_start_the_commit_runs_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pyodide (the web member) has SQLite but no threads: the Committer commits on the loop."""
    import concurrent.futures

    def no_threads(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", no_threads)
    group = GroupLog.make(122)
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    store.add_log(group.address, group.sign_pub)
    store.commit()

    async def scenario() -> list[bool]:
        committer = Committer(store, 0.0)
        told = Told()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(committer.run())
            for n in range(2):  # the second commit takes the loop path at once
                told.event.clear()
                store.put_entries([group.append("m%d" % n)], 1_000_000)
                committer.after_commit(told, store.generation)
                await told.wait()
            task.cancel()
        return told.values

    assert asyncio.run(scenario()) == [True, True]
    assert not store.pending()
    store.close()
