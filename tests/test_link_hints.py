"""The whole session over the in-memory pipe at every frame hint, and through BLE fragmentation.

A member and a relay (real NodeContexts over real SQLite stores, the real LinkDriver, Session,
Reconciler) sync one group log in which each holds entries the other lacks, including one entry
larger than a small link's message (it must be split). At frame hints 23, 185, 512 and 65,535,
and through node/proto/fragment.py at ATT MTU 23 and 185, the result must be the same: both
stores hold the union, the same entries moved each way. At a small hint no frame the session
could size is larger than the hint allows (docs/protocol.md, "Frame hints").

A lost link mid-pass at a small hint costs little: the pipe is cut after a fixed share of the
bytes the whole sync needs, then the member syncs again on a fresh pipe. What the cut wasted is
(bytes of the cut sync + bytes of the second sync) - (bytes of one uncut sync); it must stay
within what the rule lets be in flight (IN_FLIGHT_MESSAGES target-sized messages) plus one
session's setup, measured as the bytes of a sync between nodes already in sync.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.app.peer import LinkDriver, SyncOutcome
from node.pipe import Pipe
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.proto.session import (
    IN_FLIGHT_MESSAGES,
    MIN_FRAME_TARGET,
    MIN_RECONCILE_MESSAGE,
    NOISE_TAG,
)
from node.store.sqlite import SQLiteStore
from node.sync.entry import Entry
from node.sync.wire import encode_item
from tests.sync_helpers import SUITE, GroupLog, drive_pair, make_context

HINTS = [23, 185, 512, 65535]
MTUS = [23, 185]
MEMBER_ONLY = 96
RELAY_ONLY = 16
BIG = 3000  # payload bytes of the one large entry: several messages at a small hint


def _group() -> tuple[GroupLog, list[Entry], list[Entry], list[Entry]]:
    group = GroupLog.make(70)
    base = [group.append("base %d" % i) for i in range(8)]
    relay_only = [
        group.append("relay side %d" % i, [base[-1]] if i == 0 else None) for i in range(RELAY_ONLY)
    ]
    member_only = [
        group.append("member side %d" % i, [base[-1]] if i == 0 else None)
        for i in range(MEMBER_ONLY - 1)
    ]
    member_only.append(group.append("big " + "z" * BIG))
    return group, base, member_only, relay_only


GROUP, BASE, MEMBER_ONLY_ENTRIES, RELAY_ONLY_ENTRIES = _group()


def _store(path: Path, group: GroupLog, entries: list[Entry], pinned: bool) -> SQLiteStore:
    path.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore.open_in(path, SUITE.ed25519_verify)
    store.add_log(group.address, group.sign_pub, pinned=pinned)
    store.put_entries(entries, 1_000_000)
    store.commit()
    return store


class Nodes:
    """A member and a relay with their own SQLite stores under `root`, one group log."""

    def __init__(
        self,
        root: Path,
        group: GroupLog = GROUP,
        member_entries: list[Entry] = BASE + MEMBER_ONLY_ENTRIES,
        relay_entries: list[Entry] = BASE + RELAY_ONLY_ENTRIES,
    ) -> None:
        self.group = group
        self.member_store = _store(root / "member", group, member_entries, pinned=True)
        self.relay_store = _store(root / "relay", group, relay_entries, pinned=False)
        own = {group.address: (group.sign_pub, group.identity_signature)}
        self.member = make_context(self.member_store, ROLE_MEMBER, own=own)
        self.relay = make_context(self.relay_store, ROLE_RELAY)
        # As after any earlier link: the relay knows the log's identity signature, so it sends
        # compact items like the member does.
        self.relay.identity_signatures[group.address] = group.identity_signature
        self.drivers: list[LinkDriver] = []

    def sync(self, pipe: Pipe) -> tuple[SyncOutcome, SyncOutcome]:
        """One sync in its own event loop (the contexts' committers belong to one loop)."""
        return asyncio.run(self.sync_in_loop(pipe))

    async def sync_in_loop(self, pipe: Pipe) -> tuple[SyncOutcome, SyncOutcome]:
        self.drivers = []
        return await drive_pair(self.member, self.relay, pipe.a, pipe.b, drivers=self.drivers)

    def keys(self) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        return (
            list(self.member_store.keyset(self.group.address)),
            list(self.relay_store.keyset(self.group.address)),
        )

    def close(self) -> None:
        self.member_store.close()
        self.relay_store.close()


UNION = sorted(
    (e.clock_time, e.cid.digest) for e in BASE + MEMBER_ONLY_ENTRIES + RELAY_ONLY_ENTRIES
)


def _largest_allowed(hint: int) -> int:
    """The largest frame the rule lets the session send on a link with this hint: Entries and
    Interest frames of max(hint, MIN_FRAME_TARGET) bytes (one declaration may exceed it alone),
    Reconcile frames of at least MIN_RECONCILE_MESSAGE + the Noise tag."""
    return max(hint, MIN_FRAME_TARGET, MIN_RECONCILE_MESSAGE + NOISE_TAG)


def _check_synced(nodes: Nodes, outcome: SyncOutcome, relay_outcome: SyncOutcome) -> None:
    assert outcome.in_sync and outcome.reason == "ok", outcome
    assert relay_outcome.by_peer and relay_outcome.reason == "ok", relay_outcome
    member_keys, relay_keys = nodes.keys()
    assert member_keys == relay_keys == UNION
    assert outcome.entries_sent == MEMBER_ONLY
    assert outcome.entries_received == RELAY_ONLY
    assert relay_outcome.entries_received == MEMBER_ONLY
    for entry in MEMBER_ONLY_ENTRIES:
        assert nodes.relay_store.get_block(entry.cid) == entry.block


@pytest.mark.parametrize("hint", HINTS)
def test_full_session_over_a_pipe_at_each_frame_hint(tmp_path: Path, hint: int) -> None:
    nodes = Nodes(tmp_path)
    pipe = Pipe("hint%d" % hint, frame_hint=hint)
    try:
        outcome, relay_outcome = nodes.sync(pipe)
        _check_synced(nodes, outcome, relay_outcome)
    finally:
        nodes.close()
    stats = pipe.stats()
    if hint < 65535:
        assert stats["largest"] <= _largest_allowed(hint), stats
    else:
        # TCP-sized hints keep large frames: the big entry and the batches travel whole.
        assert stats["largest"] > 4096, stats


@pytest.mark.parametrize("mtu", MTUS)
def test_full_session_through_ble_fragments(tmp_path: Path, mtu: int) -> None:
    nodes = Nodes(tmp_path)
    pipe = Pipe("mtu%d" % mtu, frame_hint=max(23, mtu - 3), fragment_size=mtu - 3)
    try:
        outcome, relay_outcome = nodes.sync(pipe)
        _check_synced(nodes, outcome, relay_outcome)
    finally:
        nodes.close()
    stats = pipe.stats()
    assert stats["units"] > stats["frames"]  # frames really were cut into fragments
    assert stats["largest"] <= _largest_allowed(max(23, mtu - 3)), stats


def test_each_side_sizes_what_it_sends_from_its_own_hint(tmp_path: Path) -> None:
    """Member on a 23-byte-hint end, relay on a 65,535 one: each sends its own sizes and
    accepts the other's."""
    nodes = Nodes(tmp_path)
    pipe = Pipe("mixed", frame_hint=23, frame_hint_b=65535)
    try:
        outcome, relay_outcome = nodes.sync(pipe)
        _check_synced(nodes, outcome, relay_outcome)
    finally:
        nodes.close()
    member_sent, relay_sent = pipe._directions[0].stats, pipe._directions[1].stats
    assert member_sent.largest <= _largest_allowed(23)
    assert relay_sent.largest > _largest_allowed(23)


# The lost-link case: an upload much larger than what the rule lets be in flight at hint 185.
CUT_GROUP = GroupLog.make(72)
CUT_UPLOAD = [CUT_GROUP.append("upload %d" % i) for i in range(400)]
CUT_RATE = 400_000.0  # bytes per second each way: the cut comes while entries stream
CUT_LATENCY = 0.002


def _cut_then_resume(root: Path, hint: int, fraction: float) -> tuple[int, int, int]:
    """Cut a sync at `fraction` of the bytes a whole one takes, then sync again.

    Returns (entries sent twice, member's unacknowledged Entries bytes at the cut, its cap).
    """
    whole_nodes = Nodes(root / "whole", CUT_GROUP, CUT_UPLOAD, [])
    whole = Pipe("whole", frame_hint=hint, rate=CUT_RATE, latency=CUT_LATENCY)
    try:
        outcome, _ = whole_nodes.sync(whole)
        assert outcome.in_sync and outcome.entries_sent == len(CUT_UPLOAD)
    finally:
        whole_nodes.close()
    nodes = Nodes(root / "cut", CUT_GROUP, CUT_UPLOAD, [])
    cut_after = int(whole.stats()["unit_bytes"] * fraction)
    cut = Pipe("cut", frame_hint=hint, rate=CUT_RATE, latency=CUT_LATENCY, cut_after=cut_after)
    resume = Pipe("resume", frame_hint=hint, rate=CUT_RATE, latency=CUT_LATENCY)

    async def scenario() -> tuple[int, int, int]:
        first, relay_first = await nodes.sync_in_loop(cut)
        assert first.reason == "lost" and relay_first.reason == "lost", (first, relay_first)
        session = nodes.drivers[0].session
        in_flight, cap = session.in_flight, session.send_cap
        _, relay_keys = nodes.keys()
        assert len(relay_keys) < len(CUT_UPLOAD)  # the cut came mid-upload
        if hint < 65535:
            assert relay_keys  # ... and what was acknowledged before it is kept
        second, _ = await nodes.sync_in_loop(resume)
        assert second.in_sync and second.reason == "ok", second
        member_keys, relay_keys = nodes.keys()
        assert member_keys == relay_keys and len(relay_keys) == len(CUT_UPLOAD)
        return first.entries_sent + second.entries_sent - len(CUT_UPLOAD), in_flight, cap

    try:
        return asyncio.run(scenario())
    finally:
        nodes.close()


@pytest.mark.parametrize("fraction", [0.3, 0.7])
def test_a_link_lost_mid_pass_at_a_small_hint_costs_little(tmp_path: Path, fraction: float) -> None:
    """What a lost link costs is what was unacknowledged: at hint 185 at most the in-flight cap
    (32 frames of 244 bytes), whatever the upload; at 65,535 the peer's whole window may be."""
    small_resent, small_in_flight, small_cap = _cut_then_resume(tmp_path / "small", 185, fraction)
    item_bytes = min(
        len(encode_item(e, CUT_GROUP.sign_pub, CUT_GROUP.identity_signature)) for e in CUT_UPLOAD
    )
    assert small_in_flight <= small_cap == IN_FLIGHT_MESSAGES * MIN_FRAME_TARGET
    # Only unacknowledged entries are sent again (acknowledged ones are stored on the relay).
    assert small_resent * item_bytes <= small_in_flight
    large_resent, large_in_flight, _ = _cut_then_resume(tmp_path / "large", 65535, fraction)
    assert large_resent * item_bytes <= large_in_flight
    assert small_resent < large_resent, (small_resent, large_resent)
