"""The per-link protocol logic without an event loop: two LinkCores joined in memory.

Like h11's ConnectionPair: frames are handed from one core to the other by plain calls, commits
are made by calling the real store, and time is a number. Real parts throughout: Noise over
PyNaCl, real signed entries, MemoryStores that verify. Nothing here starts an event loop.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest

from node.app.context import NodeContext
from node.app.linkcore import (
    CloseRequest,
    Committed,
    FrameIn,
    LinkCore,
    Tick,
    Wake,
)
from node.app.passes import MAX_PASSES
from node.errors import IntegrityError
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.sync.entry import Entry, create_entry
from node.sync.store import REFUSED, MemoryStore, PutResult
from tests.sync_helpers import SUITE, GroupLog, make_context, member_store

if TYPE_CHECKING:
    from node.sync.keyset import Key

SANS_IO = ["node.app.linkcore", "node.app.interest", "node.app.passes", "node.app.outbound"]


def keys(entries: list[Entry]) -> list[Key]:
    return sorted((e.clock_time, e.cid.digest) for e in entries)


class CorePair:
    """A member's core (initiator) and a relay's core joined by an in-memory link."""

    def __init__(
        self,
        member: NodeContext,
        relay: NodeContext,
        frame_hint: int = 65535,
        until_synced: bool = True,
        durable: bool = True,
    ) -> None:
        self.now = 1000
        self.member = LinkCore(member, True, until_synced, frame_hint, self.now, "member")
        self.relay = LinkCore(relay, False, False, frame_hint, self.now, "relay")
        self.durable = durable
        self.half_rounds = 0  # transfers in which some frame moved
        self.bytes = 0
        self.largest_frame = 0

    def _commit(self, core: LinkCore) -> bool:
        commits = core.take_commits()
        if commits:
            core.ctx.store.commit()
        for commit in commits:
            core.handle(Committed(commit.ref, commit.count, commit.credit, self.durable), self.now)
        return bool(commits)

    def run(self, rounds: int = 2000) -> None:
        """Move frames and commits until nothing moves; a finished side's link then closes."""
        for _ in range(rounds):
            moved = False
            for src, dst in ((self.member, self.relay), (self.relay, self.member)):
                moved = self._commit(src) or moved
                frames = src.frames_to_send()
                if frames:
                    moved = True
                    self.half_rounds += 1
                    self.bytes += sum(len(f) for f in frames)
                    self.largest_frame = max([self.largest_frame] + [len(f) for f in frames])
                for frame in frames:
                    if not dst.finished:
                        dst.handle(FrameIn(frame), self.now)
            if not moved:
                for a, b in ((self.member, self.relay), (self.relay, self.member)):
                    if a.finished and not b.finished:  # its link closes: b sees the end
                        b.handle(FrameIn(None), self.now)
                        moved = True
            if not moved:
                return
        raise AssertionError("cores kept talking for %d rounds" % rounds)


def group_contexts(
    member_entries: list[Entry], relay_entries: list[Entry], group: GroupLog
) -> tuple[NodeContext, NodeContext]:
    member = GroupLog(group.address, group.sign_pub, group.sign_secret, member_entries)
    own = {group.address: (group.sign_pub, group.identity_signature)}
    member_ctx = make_context(member_store(member), ROLE_MEMBER, own=own, community=False)
    relay = MemoryStore(SUITE.ed25519_verify)
    if relay_entries:
        relay.add_log(group.address, group.sign_pub)
        relay.put_entries(relay_entries, 1_000_000)
        relay.commit()
    return member_ctx, make_context(relay, ROLE_RELAY)


def test_the_sans_io_parts_import_no_event_loop() -> None:
    code = "import sys\nimport %s\nprint('asyncio' in sys.modules)" % ", ".join(SANS_IO)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("hint", "frame"), [(65535, 16000), (4096, 4073), (244, 257), (23, 257)])
def test_the_link_hint_sizes_the_session_and_the_reconciler(hint: int, frame: int) -> None:
    """TCP keeps 16,000-byte reconciler frames; smaller links get frames that fit one Reconcile
    message of their size, never below the Reconciler's minimum (docs/protocol.md, Frame hints)."""
    group = GroupLog.make(49)
    member_ctx, _ = group_contexts([], [], group)
    core = LinkCore(member_ctx, True, True, hint, 0)
    assert core.session.frame_hint == hint
    assert core.passes.max_frame == frame
    assert core.passes.max_receive_frame == 16000  # whatever the peer's link


@pytest.mark.parametrize("hint", [23, 185, 244, 512, 65535])
def test_member_and_relay_converge_at_every_frame_hint(hint: int) -> None:
    group = GroupLog.make(41)
    entries = [group.append("m%d" % i) for i in range(40)]
    member_ctx, relay_ctx = group_contexts(entries[:30], entries[:10] + entries[30:], group)
    pair = CorePair(member_ctx, relay_ctx, frame_hint=hint)
    pair.run()
    assert list(member_ctx.store.keyset(group.address)) == keys(entries)
    assert list(relay_ctx.store.keyset(group.address)) == keys(entries)
    member, relay = pair.member.outcome, pair.relay.outcome
    assert member.in_sync and member.reason == "ok" and not member.by_peer
    assert relay.reason == "ok" and relay.by_peer
    assert (member.entries_sent, member.entries_received) == (20, 10)
    assert (relay.entries_sent, relay.entries_received) == (10, 20)
    assert member.entries_refused == relay.entries_refused == 0
    assert member.passes == 2  # one that moved the entries, one that found every log in sync


def test_an_empty_member_ends_in_sync_after_one_pass() -> None:
    group = GroupLog.make(42)
    member_ctx, relay_ctx = group_contexts([], [], group)
    pair = CorePair(member_ctx, relay_ctx)
    pair.run()
    assert pair.member.outcome.in_sync and pair.member.outcome.reason == "ok"
    assert pair.member.outcome.passes == 1
    assert relay_ctx.store.has_log(group.address)  # the relay took the member's log


class Recording(MemoryStore):
    """Keeps every PutResult it answered."""

    def __init__(self, verify: Callable[[bytes, bytes, bytes], bool]) -> None:
        super().__init__(verify)
        self.results: list[PutResult] = []

    def put_entries(self, entries: Iterable[Entry], now: int | float) -> list[PutResult]:
        results = super().put_entries(entries, now)
        self.results.extend(results)
        return results


def test_a_forged_entry_ends_the_link_and_genuine_ones_are_kept() -> None:
    group = GroupLog.make(43)
    genuine = [group.append("ok%d" % i) for i in range(3)]
    forged = create_entry(
        group.address,
        '{"op":"ADD","value":"Zm9yZ2Vk"}',
        [genuine[-1].cid],
        [],
        4,
        group.sign_pub,
        lambda m: SUITE.ed25519_sign(GroupLog.make(99).sign_secret, m),  # not the group's key
    )
    sender = MemoryStore(lambda *_: True)  # a member whose store takes anything
    sender.add_log(group.address, group.sign_pub, pinned=True)
    sender.put_entries([*genuine, forged], 1_000_000)
    sender.commit()
    own = {group.address: (group.sign_pub, group.identity_signature)}
    member_ctx = make_context(sender, ROLE_MEMBER, own=own, community=False)
    relay_store = Recording(SUITE.ed25519_verify)
    relay_ctx = make_context(relay_store, ROLE_RELAY)
    pair = CorePair(member_ctx, relay_ctx)
    pair.run()
    relay, member = pair.relay.outcome, pair.member.outcome
    refused = [r for r in relay_store.results if r.status == REFUSED]
    assert [r.cid for r in refused] == [forged.cid]
    # The store's result is typed: its IntegrityError ends the link as is, not rebuilt from text.
    assert isinstance(refused[0].error, IntegrityError)
    assert relay.text == refused[0].error.message and str(forged.cid) in relay.text
    assert relay.reason == "integrity" and not relay.by_peer
    assert member.reason == "integrity" and member.by_peer and not member.in_sync
    assert list(relay_ctx.store.keyset(group.address)) == keys(genuine)
    assert relay_ctx.stats["peer_errors.integrity"] == 1
    assert relay_ctx.stats["entries.refused.integrity"] == 1
    assert relay.entries_refused == 1


def test_a_failed_commit_is_never_acknowledged() -> None:
    group = GroupLog.make(44)
    entries = [group.append("m%d" % i) for i in range(5)]
    member_ctx, relay_ctx = group_contexts(entries, [], group)
    pair = CorePair(member_ctx, relay_ctx, durable=False)
    pair.run()
    assert pair.relay.outcome.reason == "store-error"
    assert pair.member.outcome.reason == "store-error" and pair.member.outcome.by_peer
    assert not pair.member.outcome.in_sync
    assert pair.member.outbound.unacked == 5  # sent, never acknowledged


def test_a_close_request_says_bye_with_its_reason() -> None:
    group = GroupLog.make(45)
    member_ctx, relay_ctx = group_contexts([group.append("x")], [], group)
    pair = CorePair(member_ctx, relay_ctx, until_synced=False)
    pair.run()
    assert pair.member.outcome.in_sync and not pair.member.finished  # open for pushes
    pair.relay.handle(CloseRequest("shutdown", "relay stopping"), pair.now)
    pair.run()
    assert pair.relay.outcome.reason == "shutdown"
    assert pair.member.outcome.reason == "shutdown" and pair.member.outcome.by_peer
    assert pair.member.finished and pair.relay.finished


def test_a_silent_peer_times_out_on_the_timer() -> None:
    group = GroupLog.make(46)
    member_ctx, relay_ctx = group_contexts([], [], group)
    pair = CorePair(member_ctx, relay_ctx, until_synced=False)
    pair.run()
    relay = pair.relay
    for _ in range(10):  # keepalives go unanswered: the member hears nothing of them
        timer = relay.get_timer()
        assert timer is not None
        relay.handle(Tick(), timer)
        relay.frames_to_send()
        if relay.finished:
            break
    assert relay.finished and relay.outcome.reason == "timeout"


def test_a_push_reaches_an_online_member_without_another_pass() -> None:
    """Member A's new entry goes A -> relay -> member B through the relay's Hub (the shell's
    subscription, done by hand here), and B's session starts no pass for it."""
    group = GroupLog.make(47)
    first = group.append("first")
    a_ctx, relay_ctx = group_contexts([first], [first], group)
    b_ctx, _ = group_contexts([first], [], group)
    to_a, to_b = (
        CorePair(a_ctx, relay_ctx, until_synced=False),
        CorePair(b_ctx, relay_ctx, until_synced=False),
    )
    woken: list[LinkCore] = []

    def listener(address: str, pushed: list[Key], source: object) -> None:
        for core in (to_a.relay, to_b.relay):
            if source is not core and core.offer(address, pushed):
                woken.append(core)

    relay_ctx.hub.subscribe(listener)
    to_a.run()
    to_b.run()
    passes_b = to_b.member.outcome.passes
    new = group.append("second")
    a_ctx.store.put_entries([new], 1_000_000)
    a_ctx.store.commit()
    assert to_a.member.offer(group.address, keys([new]))
    to_a.member.handle(Wake(), to_a.now)
    to_a.run()
    assert woken == [to_b.relay]
    to_b.relay.handle(Wake(), to_b.now)
    to_b.run()
    assert list(b_ctx.store.keyset(group.address)) == keys([first, new])
    assert to_b.member.outcome.passes == passes_b  # delivered by the push: no pass for it
    assert to_b.member.outcome.in_sync and not to_b.member.finished
    assert len(relay_ctx.hub.cache) == 0  # the push's record went with its last hold


class Unreadable(MemoryStore):
    """A store whose keyset lists an entry it cannot read back (as if evicted meanwhile)."""

    hidden: Key = (0, b"")

    def entries_by_keys(self, log_id: str, wanted: Iterable[Key]) -> list[Entry]:
        return [
            e
            for e in super().entries_by_keys(log_id, wanted)
            if (e.clock_time, e.cid.digest) != self.hidden
        ]


def test_passes_that_move_nothing_end_unsettled() -> None:
    """Every pass finds the same difference and nothing moves (the relay cannot read the entry
    the member lacks): after MAX_PASSES such passes the member says Bye "unsettled"."""
    group = GroupLog.make(48)
    entries = [group.append("m%d" % i) for i in range(3)]
    member_ctx, _ = group_contexts(entries[:2], [], group)
    relay = Unreadable(SUITE.ed25519_verify)
    relay.add_log(group.address, group.sign_pub)
    relay.put_entries(entries, 1_000_000)
    relay.commit()
    relay.hidden = keys(entries[2:])[0]
    pair = CorePair(member_ctx, make_context(relay, ROLE_RELAY))
    pair.run()
    assert pair.member.outcome.reason == "unsettled"
    assert pair.member.outcome.passes == MAX_PASSES
    assert pair.relay.outcome.reason == "unsettled" and pair.relay.outcome.by_peer


def test_a_log_over_the_relay_quota_keeps_the_newest_and_says_so_once() -> None:
    group = GroupLog.make(50)
    entries = [group.append("m%d" % i) for i in range(6)]
    member_ctx, relay_ctx = group_contexts(entries, [], group)
    relay_ctx.policy.community_quota = 1000  # room for one entry of ~860 bytes
    pair = CorePair(member_ctx, relay_ctx)
    pair.run()
    assert list(relay_ctx.store.keyset(group.address)) == keys(entries[-1:])  # sent newest first
    relay, member = pair.relay.outcome, pair.member.outcome
    assert relay.reason == "quota" and not relay.by_peer
    assert member.reason == "quota" and member.by_peer and not member.in_sync
    assert member.text.startswith("relay keeps the newest 1 of 6 entries of log")
    assert relay_ctx.stats["entries.refused.over-quota"] == 5
