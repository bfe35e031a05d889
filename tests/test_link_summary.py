"""The Summary (protocol version 2): a paired member's interest in one message.

Real sessions over node.pipe links, the relay on a real SQLite store with a paired device: the
first session declares in full (UNKNOWN) and the relay remembers it; the next ones are IN_SYNC or
KNOWN (a pass over the agreed logs) in one round trip after the handshake; a changed interest, an
unpaired key or a fresh key declare in full; a Summary out of turn costs the link. The bytes of a
whole in-sync session at L = 1,000 logs are pinned here (issue 14).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from node.app.context import Committer, NodeContext
from node.app.interest import InterestMemory, LogTable
from node.errors import RemoteProtocolError
from node.pipe import Pipe
from node.proto.messages import (
    ROLE_MEMBER,
    ROLE_RELAY,
    SUMMARY_IN_SYNC,
    SUMMARY_KNOWN,
    SUMMARY_OFFER,
    Summary,
    decode_message,
    encode_message,
)
from node.store.sqlite import SQLiteStore
from node.sync.store import MemoryStore
from node.sync.wire import encode_item
from tests.sync_helpers import SUITE, GroupLog, drive_pair, make_context, pair_device

IN_SYNC_BYTES_AT_1000 = 1024  # issue 14's goal for a whole in-sync session at L = 1,000


def groups(count: int, start: int = 0, entries: int = 2) -> list[GroupLog]:
    logs = [GroupLog.make_indexed(start + i) for i in range(count)]
    for log in logs:
        for n in range(entries):
            log.append("m%d" % n)
    return logs


def member_of(logs: list[GroupLog], key: bytes | None = None) -> NodeContext:
    store = MemoryStore(SUITE.ed25519_verify)
    for log in logs:
        store.add_log(log.address, log.sign_pub, pinned=True)
        store.put_entries(log.entries, 1_000_000)
    store.commit()
    own = {log.address: (log.sign_pub, log.identity_signature) for log in logs}
    ctx = make_context(store, ROLE_MEMBER, own=own)
    ctx.static_private = key
    return ctx


def relay_at(path: Path) -> NodeContext:
    return make_context(SQLiteStore.open_in(path, SUITE.ed25519_verify), ROLE_RELAY)


def sync(member: NodeContext, relay: NodeContext) -> dict[str, int]:
    """One member-initiated sync (until in sync) over a pipe; the pipe's counts."""
    pipe = Pipe("summary")
    member.committer = Committer(member.store, 0.0)  # one per event loop
    relay.committer = Committer(relay.store, 0.0)
    outcome, _ = asyncio.run(drive_pair(member, relay, *pipe.ends, timeout=30))
    assert outcome.in_sync and outcome.reason == "ok", outcome
    return pipe.stats()


def test_paired_member_declares_once_then_summarises(tmp_path: Path) -> None:
    logs = groups(3)
    relay = relay_at(tmp_path)
    member = member_of(logs)
    pair_device(relay, member)
    first = sync(member, relay)
    assert member.stats.get("summary.unknown") == 1  # nothing remembered yet: declared in full
    for log in logs:
        assert relay.store.log_info(log.address).entry_count == 2
    second = sync(member, relay)
    assert member.stats.get("summary.in-sync") == 1
    assert relay.stats.get("summary.answered.in-sync") == 1
    assert second["frame_bytes"] < first["frame_bytes"] / 2
    # 1 round trip after the handshake (3 half rounds), and the Byes: 6 half rounds in all
    assert second["half_rounds"] == 6, second

    logs[1].append("new")  # the member wrote: KNOWN, and a pass moves the entry
    member.store.put_entries(logs[1].entries[-1:], 1_000_000)
    member.store.commit()
    sync(member, relay)
    assert member.stats.get("summary.known") == 1
    assert relay.store.log_info(logs[1].address).entry_count == 3
    sync(member, relay)
    assert member.stats.get("summary.in-sync") == 2


def test_a_changed_interest_declares_again_and_is_remembered(tmp_path: Path) -> None:
    logs = groups(2)
    relay = relay_at(tmp_path)
    member = member_of(logs)
    pair_device(relay, member)
    sync(member, relay)
    joined = member_of(logs + groups(1, start=50), member.static_private)  # a new group
    sync(joined, relay)
    assert joined.stats.get("summary.unknown") == 1
    sync(joined, relay)
    assert joined.stats.get("summary.in-sync") == 1


def test_unpaired_and_fresh_keys_are_never_remembered(tmp_path: Path) -> None:
    logs = groups(2)
    relay = relay_at(tmp_path)
    stable = member_of(logs, SUITE.random_bytes(32))  # a stable key, not paired
    for _ in range(2):
        sync(stable, relay)
    assert stable.stats.get("summary.unknown") == 2 and "summary.in-sync" not in stable.stats
    fresh = member_of(logs)  # a fresh key per session: no Summary at all, v1 declarations
    sync(fresh, relay)
    assert not any(name.startswith("summary.") for name in fresh.stats)
    assert relay.stats.get("summary.answered.unknown") == 2


def test_a_log_the_relay_dropped_declares_again(tmp_path: Path) -> None:
    logs = groups(2)
    relay = relay_at(tmp_path)
    member = member_of(logs)
    pair_device(relay, member)
    sync(member, relay)
    assert relay.pairing is not None
    key = SUITE.x25519_public(member.static_private or b"")
    relay.pairing.interests.forget(key)
    sync(member, relay)
    assert member.stats.get("summary.unknown") == 2
    # remembered again; a revoked device's interest is forgotten with it
    relay.pairing.cmd_revoke({"device": "phone"})
    assert len(relay.pairing.interests) == 0


def test_summary_out_of_turn_is_refused() -> None:
    relay = make_context(MemoryStore(SUITE.ed25519_verify), ROLE_RELAY)
    table = LogTable(relay, initiator=False)
    offer = Summary(SUMMARY_OFFER, 1, bytes(8), bytes(8))
    assert table.answer(offer, relay.store.keyset).kind != SUMMARY_IN_SYNC
    with pytest.raises(RemoteProtocolError):
        table.answer(offer, relay.store.keyset)  # a second offer
    with pytest.raises(RemoteProtocolError):
        LogTable(relay, initiator=False).answer(Summary(SUMMARY_KNOWN), relay.store.keyset)
    member = make_context(MemoryStore(SUITE.ed25519_verify), ROLE_MEMBER)
    with pytest.raises(RemoteProtocolError):  # an answer to an offer never made
        LogTable(member, initiator=True).answered(Summary(SUMMARY_KNOWN), member.store.keyset)


def test_interest_memory_is_bounded() -> None:
    memory = InterestMemory(limit=2)
    for n in range(3):
        memory.remember(bytes([n]) * 32, [("/orbitdb/a/%d" % n, b"h")])
    assert len(memory) == 2
    assert memory.recall(bytes(32), 1, b"") is None  # the oldest went first


def test_in_sync_session_bytes_at_1000_logs(tmp_path: Path) -> None:
    """Issue 14: a whole in-sync session (Noise, Hello, Summary, Bye) of a paired member
    carrying the same 1,000 logs as its relay: at most 1 KB, 1 round trip after the handshake."""
    logs = groups(1000, entries=1)
    relay = relay_at(tmp_path)
    member = member_of(logs)
    pair_device(relay, member)
    sync(member, relay)  # the first session declares (and the relay stores the entries)
    stats = sync(member, relay)
    assert member.stats.get("summary.in-sync") == 1
    assert stats["frame_bytes"] <= IN_SYNC_BYTES_AT_1000, stats
    assert math.ceil(stats["half_rounds"] / 2) == 3, stats  # 1.5 handshake + 1 + the Bye


HANDSHAKE_BYTES = 32 + 96 + 64  # Noise XX with empty payloads, as the pipe counts frames


def test_behind_by_ten_costs_at_most_two_percent_beyond_the_handshake(tmp_path: Path) -> None:
    """Issue 14: a paired member 10 entries behind its relay (one log): everything but the
    Noise handshake and the entries' own wire items is at most 2 % of those items."""
    (log,) = groups(1, entries=0)
    for n in range(30):
        log.append(("%03d" % n) * 250)  # ~750-byte payloads: items of ~870 bytes
    relay = relay_at(tmp_path)
    full = member_of([log])
    pair_device(relay, full)
    sync(full, relay)  # the relay holds all 30
    behind = GroupLog(log.address, log.sign_pub, log.sign_secret, log.entries[:20])
    member = member_of([behind], full.static_private)
    stats = sync(member, relay)
    assert member.stats.get("summary.known") == 1
    assert member.store.log_info(log.address).entry_count == 30
    items = sum(len(encode_item(e, log.sign_pub, log.identity_signature)) for e in log.entries[20:])
    beyond = stats["frame_bytes"] - HANDSHAKE_BYTES - items
    assert beyond <= 0.02 * items, (beyond, items)
    assert math.ceil(stats["half_rounds"] / 2) == 3  # one pass, folded into the Summary


def test_many_logs_known_runs_a_pass_without_folding(tmp_path: Path) -> None:
    logs = groups(6)
    relay = relay_at(tmp_path)
    member = member_of(logs)
    pair_device(relay, member)
    sync(member, relay)
    logs[5].append("late")
    member.store.put_entries(logs[5].entries[-1:], 1_000_000)
    member.store.commit()
    sync(member, relay)
    assert member.stats.get("summary.known") == 1
    assert relay.store.log_info(logs[5].address).entry_count == 3


def test_summary_bytes() -> None:
    offer = Summary(SUMMARY_OFFER, 3, bytes(range(8)), bytes(range(8, 16)))
    assert encode_message(offer) == bytes([0x08, 0, 3, *range(16)])
    folded = Summary(SUMMARY_OFFER, 1, bytes(8), b"", b"\x57\x01")  # pass 1's frame, no state
    assert encode_message(folded) == bytes([0x08, 4, 1, *bytes(8), 0x57, 0x01])
    for message in (offer, folded, Summary(SUMMARY_IN_SYNC)):
        assert decode_message(encode_message(message)) == message
    with pytest.raises(RemoteProtocolError):
        decode_message(bytes([0x08, 4, 1, *bytes(8)]))  # a folded offer without its frame
    with pytest.raises(RemoteProtocolError):
        decode_message(bytes([0x08, 5]))  # no such kind
