"""Acknowledgement = on disk, tested on a real full filesystem (a 400 KB tmpfs the test mounts).

One open SQLite transaction is shared by every link between group commits; these tests fill a
real filesystem and check that no link is told its entries are durable when they are not, that a
new log's registration survives another link's failure, and that a full disk is a state the store
leaves by itself (issue 9 §1).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app.context import Committer
from node.errors import StoreError
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.store.sqlite import SQLiteStore
from node.sync.store import DUPLICATE, REFUSED, REFUSED_DISK_FULL, STORED
from tests.store_helpers import SUITE, Writer, mounted_tmpfs
from tests.sync_helpers import GroupLog, make_context, member_store, sync_over_tcp

VERIFY = SUITE.ed25519_verify
FS_BYTES = 400 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 400 KB tmpfs mounted under the test's temp dir (we are root on the test machines)."""
    with mounted_tmpfs(tmp_path / "fs", "size=400k") as mount_point:
        yield mount_point


@pytest.fixture(params=["wal", "rollback"])
def journal(request: pytest.FixtureRequest) -> str:
    """Both values of `store.journal` (docs/store.md "Why WAL") keep the contract."""
    return str(request.param)


def fill(directory: Path, leave: int) -> Path:
    """Write a file that leaves about `leave` bytes free on `directory`'s filesystem."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    filler = directory / "filler"
    with open(filler, "wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


def big_entries(writer: Writer, count: int, size: int, start: int = 1) -> list:  # type: ignore[type-arg]
    return [writer.entry(start + i, payload="%d:" % i + "x" * size) for i in range(count)]


def member_with_entries(seed: int, count: int):  # type: ignore[no-untyped-def]
    """A member context whose group log holds `count` entries of about 3 KB."""
    group = GroupLog.make(seed)
    for i in range(count):
        group.append("m%d " % i + "y" * 3000)
    return make_context(
        member_store(group),
        ROLE_MEMBER,
        own={group.address: (group.sign_pub, group.identity_signature)},
    )


def reopen_count(path: Path, log_id: str, journal: str = "wal") -> int:
    store = SQLiteStore(path, VERIFY, min_free_bytes=1, journal=journal)
    try:
        return store.log_info(log_id).entry_count if store.has_log(log_id) else -1
    finally:
        store.close()


def test_a_failed_put_never_becomes_another_links_acknowledgement(
    small_fs: Path, journal: str
) -> None:
    path = small_fs / "store.sqlite3"
    store = SQLiteStore(path, VERIFY, min_free_bytes=1, journal=journal)
    committer = Committer(store, 0)
    a, b, c = Writer(1, "log-a"), Writer(2, "log-b"), Writer(3, "log-c")
    store.add_log(a.log_id, a.sign_pub)
    store.add_log(b.log_id, b.sign_pub)
    store.commit()
    told: dict[str, bool] = {}
    # Link B stores 20 entries and waits for the group commit.
    results = store.put_entries([b.entry(t) for t in range(1, 21)], 100)
    assert [r.status for r in results] == [STORED] * 20
    committer.after_commit(lambda durable: told.__setitem__("b", durable))
    # Link C registers a new log in the same window.
    store.add_log(c.log_id, c.sign_pub)
    # Link A's batch is larger than the page cache and the disk: SQLite fails inside the put.
    store.space.min_free_bytes = 0
    store.space.room = lambda window, size: ""  # type: ignore[method-assign]  # let SQLite fail
    with pytest.raises(StoreError, match="full"):
        store.put_entries(big_entries(a, 12, 200_000), 100)
    committer.commit_now()
    if told["b"]:
        store.close()
        lost = "link B was acknowledged, its entries are gone"
        assert reopen_count(path, b.log_id, journal) == 20, lost
    assert told == {"b": False}
    assert store.disk_full
    assert store.has_log(c.log_id), "a new log's registration was undone by another link's failure"
    committer.commit_now()
    store.close()
    assert reopen_count(path, c.log_id, journal) == 0  # registered, and on disk


def test_a_full_disk_is_a_state_left_by_itself(
    small_fs: Path, caplog: pytest.LogCaptureFixture, journal: str
) -> None:
    path = small_fs / "store.sqlite3"
    store = SQLiteStore(path, VERIFY, min_free_bytes=32 * 1024, journal=journal)
    writer = Writer(4, "log-d")
    store.add_log(writer.log_id, writer.sign_pub)
    first = big_entries(writer, 5, 2000)
    store.put_entries(first, 100)
    store.commit()
    filler = fill(small_fs, 20 * 1024)
    caplog.set_level(logging.INFO, "waystation.store")
    later = big_entries(writer, 30, 2000, start=100)
    for batch in range(3):  # three batches: refused, with a reason, logged once
        results = store.put_entries(later[batch * 10 : batch * 10 + 10], 100 + batch)
        assert {r.status for r in results} == {REFUSED}
        assert {r.reason for r in results} == {REFUSED_DISK_FULL}
        assert "bytes free" in results[0].detail
    assert store.disk_full
    assert sum("not taking entries" in r.message for r in caplog.records) == 1
    # It keeps serving what it holds, and duplicates are still acknowledged.
    assert all(store.get_block(e.cid) == e.block for e in first)
    assert [r.status for r in store.put_entries(first[:1], 104)] == [DUPLICATE]
    assert store.commit() == [first[0].cid]
    filler.unlink()  # space returns
    results = store.put_entries(later[:10], 105)
    assert [r.status for r in results] == [STORED] * 10
    assert not store.disk_full
    assert sum("room again" in r.message for r in caplog.records) == 1
    assert len(store.commit()) == 10
    store.close()
    assert reopen_count(path, writer.log_id, journal) == 15


def test_a_window_bigger_than_the_free_space_still_makes_progress(
    small_fs: Path, journal: str
) -> None:
    path = small_fs / "store.sqlite3"
    store = SQLiteStore(path, VERIFY, min_free_bytes=16 * 1024, journal=journal)
    committer = Committer(store, 0)
    writer = Writer(5, "log-e")
    store.add_log(writer.log_id, writer.sign_pub)
    store.commit()
    fill(small_fs, 120 * 1024)
    entries = big_entries(writer, 40, 4000)  # 160 KB of blocks, more than the free space
    outcomes: list[tuple[list[str], bool]] = []
    for i in range(0, 40, 4):  # ten links' batches in one commit window
        statuses = [r.status for r in store.put_entries(entries[i : i + 4], 100)]
        outcomes.append((statuses, False))
        slot = len(outcomes) - 1
        committer.after_commit(
            lambda durable, slot=slot: outcomes.__setitem__(slot, (outcomes[slot][0], durable))
        )
    committer.commit_now()
    assert committer.failures == 0
    stored = sum(statuses.count(STORED) for statuses, _ in outcomes)
    assert 0 < stored < 40
    assert all(durable for _, durable in outcomes)
    store.close()
    assert reopen_count(path, writer.log_id, journal) == stored


def test_a_put_time_failure_ends_the_link_with_store_error(small_fs: Path) -> None:
    member = member_with_entries(41, 30)
    relay_store = SQLiteStore(small_fs / "store.sqlite3", VERIFY, min_free_bytes=16 * 1024)
    relay = make_context(relay_store, ROLE_RELAY)
    fill(small_fs, 60 * 1024)
    outcome, relay_outcome = asyncio.run(sync_over_tcp(member, relay, timeout=20))
    assert relay_outcome.reason == "store-error", relay_outcome
    assert outcome.reason == "store-error" and outcome.by_peer and not outcome.in_sync
    assert "disk is full" in outcome.text
    assert relay.stats.get("links.closed.internal-error", 0) == 0
    relay_store.close()


def test_a_failing_put_ends_the_link_with_store_error_not_internal_error(small_fs: Path) -> None:
    member = member_with_entries(42, 30)
    relay_store = SQLiteStore(small_fs / "store.sqlite3", VERIFY, min_free_bytes=1)
    relay_store.space.room = lambda window, size: ""  # type: ignore[method-assign]  # let SQLite fail
    relay_store._db().execute("PRAGMA cache_size = 2")  # spill to the WAL inside the put
    relay = make_context(relay_store, ROLE_RELAY)
    fill(small_fs, 30 * 1024)
    outcome, relay_outcome = asyncio.run(sync_over_tcp(member, relay, timeout=20))
    assert relay_outcome.reason == "store-error", relay_outcome
    assert outcome.reason == "store-error" and outcome.by_peer and not outcome.in_sync
    assert relay.stats.get("links.closed.internal-error", 0) == 0
    relay_store.close()
