"""A log bigger than its quota (issue 9 §2): the relay keeps the newest, writes about the quota,
tells the sender once with the numbers, and logs it once a day; real SQLite, real TCP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.store.sqlite import SQLiteStore
from node.sync.store import MemoryStore
from tests.store_helpers import SUITE
from tests.sync_helpers import GroupLog, make_context, member_store, sync_over_tcp

QUOTA = 64 * 1024


def group_of(seed: int, total_bytes: int) -> GroupLog:
    group = GroupLog.make(seed)
    while sum(len(e.block) for e in group.entries) < total_bytes:
        group.append("m%d " % len(group.entries) + "q" * 1500)
    return group


def member_of(group: GroupLog):  # type: ignore[no-untyped-def]
    return make_context(
        member_store(group),
        ROLE_MEMBER,
        own={group.address: (group.sign_pub, group.identity_signature)},
    )


@pytest.mark.parametrize("times", [2, 10])
def test_a_relay_keeps_the_newest_within_the_quota_and_says_so_once(
    tmp_path: Path, times: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "waystation.store")
    group = group_of(50 + times, times * QUOTA)
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    relay = make_context(store, ROLE_RELAY)
    relay.policy.community_quota = QUOTA
    outcome, relay_outcome = asyncio.run(sync_over_tcp(member_of(group), relay, timeout=60))
    info = store.log_info(group.address)
    total = len(group.entries)
    assert relay_outcome.reason == "quota"
    assert outcome.reason == "quota" and outcome.by_peer
    assert "relay keeps the newest %d of %d entries of log" % (info.entry_count, total) in (
        outcome.text
    ), outcome.text
    assert "quota 65536 bytes" in outcome.text
    # The newest by (lamport time, digest), and within the quota.
    newest = sorted(((e.clock_time, e.cid.digest) for e in group.entries), reverse=True)
    assert sorted(store.keyset(group.address), reverse=True) == newest[: info.entry_count]
    assert QUOTA - 2 * max(len(e.block) for e in group.entries) < info.byte_count <= QUOTA
    # A reader of the relay's copy hits a hole and is told so; SQLite and memory agree.
    kept = [e for e in group.entries if (e.clock_time, e.cid.digest) in store.keyset(group.address)]
    oldest = min(e.clock_time for e in kept)
    assert store.hole(group.address).startswith(
        "entries before lamport time %d are no longer held by any relay you reached" % oldest
    )
    model = MemoryStore(SUITE.ed25519_verify)
    model.add_log(group.address, group.sign_pub)
    model.put_entries(kept, 1)
    assert model.missing_parents(group.address) == store.missing_parents(group.address) != []
    assert member_store(group).hole(group.address) == ""  # the whole log: no hole
    stats = store.stats()
    assert stats.get("evicted", 0) == 0  # nothing stored only to be evicted again
    assert stats["stored_bytes"] <= QUOTA  # block bytes written for this sync: at most the quota
    # A second sync writes nothing, is told again, and the relay logs it only once a day.
    again, _ = asyncio.run(sync_over_tcp(member_of(group), make_ctx_like(relay), timeout=60))
    assert again.reason == "quota"
    assert store.stats()["stored_bytes"] == stats["stored_bytes"]
    assert sum("over its quota" in r.message for r in caplog.records) == 1
    store.close()


def make_ctx_like(relay):  # type: ignore[no-untyped-def]
    """A fresh context on the same store (a new event loop needs a new Committer)."""
    fresh = make_context(relay.store, ROLE_RELAY)
    fresh.policy.community_quota = relay.policy.community_quota
    return fresh


def _write_bytes() -> int:
    """Bytes this process caused to be written to a block device (/proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no write_bytes in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
@pytest.mark.parametrize("times", [2, 10])
def test_with_a_rollback_journal_a_sync_over_the_quota_writes_at_most_twice_it(
    tmp_path: Path, times: int
) -> None:
    """Issue 9 §2: with the issue's 1 MiB quota, a member syncs a log of 2x and 10x the quota;
    the bytes the kernel writes to the device for that sync and the store's close (its journal
    or last checkpoint included) are at most 2x the quota with `store.journal = "rollback"`,
    which writes new pages once (1.3x here). The default, WAL, writes every page twice (WAL, then
    checkpoint): 2.9-3.1x, and this test fails with it (docs/store.md "Why WAL")."""
    quota = 1024 * 1024
    group = group_of(70 + times, times * quota)
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, journal="rollback")
    relay = make_context(store, ROLE_RELAY)
    relay.policy.community_quota = quota
    before = _write_bytes()
    _, relay_outcome = asyncio.run(sync_over_tcp(member_of(group), relay, timeout=60))
    stored = store.stats()["stored_bytes"]
    store.close()
    written = _write_bytes() - before
    assert relay_outcome.reason == "quota"
    if written < stored:  # a filesystem that reaches no block device (tmpfs): nothing to measure
        pytest.skip("%s: %d bytes written for %d stored: not on a block device" % (
            tmp_path, written, stored))  # fmt: skip
    assert written <= 2 * quota, "%d bytes written = %.2fx the quota (%d block bytes stored)" % (
        written, written / quota, stored)  # fmt: skip
