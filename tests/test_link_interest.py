"""LogTable (node/app/interest.py) on its own: Interest messages in, Interest messages out.

No session and no event loop: two tables answer each other by plain calls, over real stores and
real log addresses. The per-log state table (ours, theirs) is walked for every input.
"""

from __future__ import annotations

import pytest

from node.app.context import NodeContext
from node.app.interest import LogTable, interest_batches
from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError
from node.proto.messages import (
    INTEREST,
    MAX_INTEREST_LOGS,
    MAX_SIZE,
    ROLE_MEMBER,
    ROLE_RELAY,
    Interest,
    LogDeclaration,
    encode_message,
)
from node.sync.store import MemoryStore
from node.sync.wire import log_header
from tests.sync_helpers import SUITE, GroupLog, make_context

GROUPS = [GroupLog.make(60 + i) for i in range(3)]


def member(*groups: GroupLog) -> NodeContext:
    own = {g.address: (g.sign_pub, g.identity_signature) for g in groups}
    store = MemoryStore(SUITE.ed25519_verify)
    for g in groups:
        store.add_log(g.address, g.sign_pub, pinned=True)
    return make_context(store, ROLE_MEMBER, own=own, community=False)


def relay(*groups: GroupLog, community: bool = True) -> NodeContext:
    store = MemoryStore(SUITE.ed25519_verify)
    for g in groups:
        store.add_log(g.address, g.sign_pub)
    return make_context(store, ROLE_RELAY, community=community)


def declaration(ref: int, group: GroupLog, sign_pub: bytes | None = None) -> LogDeclaration:
    return LogDeclaration(ref, group.address, log_header(sign_pub or group.sign_pub, bytes(64)))


def flatten(messages: list[list[LogDeclaration]]) -> list[LogDeclaration]:
    return [d for message in messages for d in message]


def test_declare_then_echo_agrees_on_every_log() -> None:
    ours = LogTable(member(*GROUPS), initiator=True)
    theirs = LogTable(relay(), initiator=False)
    first = ours.declare(ours.initial_addresses(peer_is_relay=True), end=True)
    assert first[-1] == []  # the empty Interest ends the initial declarations
    assert sorted(d.ref for d in flatten(first)) == [0, 2, 4]  # the initiator's refs are even
    answers = [theirs.receive(message, peer_is_relay=False) for message in first]
    echoed = flatten([m for a in answers for m in a.messages])
    # version 2: an echo is the ref alone (the relay holds no identity signature yet for these
    # logs, so it names its header: 64 zero bytes, not the member's)
    assert sorted(d.ref for d in echoed) == sorted(d.ref for d in flatten(first))
    assert all(d.address == "" for d in echoed)
    assert not any(a.reconcile for a in answers)  # only the initiator starts passes
    assert len(theirs.agreed()) == 3
    for message in [m for a in answers for m in a.messages]:
        answer = ours.receive(message, peer_is_relay=True)
        assert answer.messages == []  # nothing new to echo
    assert [s.address for s in ours.agreed()] == sorted(g.address for g in GROUPS)


def test_the_responder_always_answers_and_the_first_answer_asks_for_a_pass() -> None:
    ours = LogTable(member(), initiator=True)
    theirs = LogTable(relay(), initiator=False)
    first = ours.declare(ours.initial_addresses(peer_is_relay=True), end=True)
    assert first == [[]]
    answer = theirs.receive([], peer_is_relay=False)
    assert answer.messages == [[]]  # an empty Interest: "heard you"
    assert ours.receive([], peer_is_relay=True).reconcile  # the first answer: reconcile


# The per-log state table: (ours, theirs) x the peer's declaration of that log.
@pytest.mark.parametrize(
    ("state", "incoming", "result"),
    [
        ("none", "declare", "agreed"),  # accepted and echoed
        ("ours", "echo", "agreed"),
        ("ours", "other-ref", "error"),  # the same log under a second ref
        ("ours", "other-log", "error"),  # our ref reused for another log
        ("agreed", "echo", "agreed"),  # said again: nothing changes
        ("agreed", "other-log", "error"),
        ("none", "our-parity", "error"),  # a new ref must have the declarer's parity
    ],
)
def test_log_state_table(state: str, incoming: str, result: str) -> None:
    group, other = GROUPS[0], GROUPS[1]
    table = LogTable(member(group, other), initiator=True)
    if state in ("ours", "agreed"):
        table.declare([group.address])
    if state == "agreed":
        table.receive([declaration(0, group)], peer_is_relay=True)
    decl = {
        "declare": declaration(1, group),
        "echo": declaration(0, group),
        "other-ref": declaration(1, group),
        "other-log": declaration(0, other),
        "our-parity": declaration(2, group),
    }[incoming]
    if result == "error":
        with pytest.raises(RemoteProtocolError) as info:
            table.receive([decl], peer_is_relay=True)
        assert info.value.reason == "unexpected"
        return
    answer = table.receive([decl], peer_is_relay=True)
    slog = table.by_address[group.address]
    assert slog.agreed and slog.ref == decl.ref
    assert answer.reconcile == (state != "agreed")  # new agreed logs ask for a pass
    if state == "none":  # the echo: the ref alone, with our header where it is not theirs
        header = table.ctx.header_for(group.address) or b""
        same = header[33:] == slog.peer_identity_signature
        assert flatten(answer.messages) == [LogDeclaration(1, "", b"" if same else header)]


def test_a_short_echo_agrees_and_a_new_ref_needs_an_address() -> None:
    group = GROUPS[0]
    table = LogTable(member(group), initiator=True)
    table.declare([group.address])
    answer = table.receive([LogDeclaration(0, "", b"")], peer_is_relay=True)  # same header
    slog = table.by_ref[0]
    assert slog.agreed and answer.reconcile
    assert slog.peer_identity_signature == slog.our_identity_signature
    with pytest.raises(RemoteProtocolError) as info:
        table.receive([LogDeclaration(3, "", table.ctx.header_for(group.address) or b"")], True)
    assert info.value.reason == "unexpected"


def test_a_log_the_policy_refuses_is_counted_and_never_agreed() -> None:
    table = LogTable(relay(community=False), initiator=False)
    answer = table.receive([declaration(0, GROUPS[0])], peer_is_relay=False)
    assert answer.messages == [[]]
    assert table.by_ref == {} and table.agreed() == []
    assert table.ctx.stats["logs.refused.not-carried"] == 1


def test_a_forged_log_offer_raises_integrity() -> None:
    forged = declaration(0, GROUPS[0], sign_pub=GROUPS[1].sign_pub)
    table = LogTable(relay(), initiator=False)
    with pytest.raises(IntegrityError):
        table.receive([forged], peer_is_relay=False)
    assert not table.ctx.store.has_log(GROUPS[0].address)


def test_more_logs_than_the_policy_allows_is_too_large() -> None:
    ctx = relay()
    ctx.policy.max_session_logs = 2
    table = LogTable(ctx, initiator=False)
    with pytest.raises(RemoteProtocolError) as info:
        table.receive([declaration(2 * i, g) for i, g in enumerate(GROUPS)], peer_is_relay=False)
    assert info.value.reason == "too-large"


@pytest.mark.parametrize("peer_role", [ROLE_RELAY, ROLE_MEMBER])
def test_a_responding_relay_declares_its_logs_to_a_relay_after_the_initial_ones(
    peer_role: int,
) -> None:
    table = LogTable(relay(GROUPS[2]), initiator=False)
    peer_is_relay = peer_role == ROLE_RELAY
    answer = table.receive([declaration(0, GROUPS[0])], peer_is_relay)
    assert [(d.ref, d.address) for d in flatten(answer.messages)] == [(0, "")]  # echo only
    answer = table.receive([], peer_is_relay)  # the initiator's initial declarations ended
    declared = flatten(answer.messages)
    if peer_is_relay:
        assert [(d.ref, d.address) for d in declared] == [(1, GROUPS[2].address)]  # odd ref
    else:
        assert declared == [] and answer.messages == [[]]


@pytest.mark.parametrize("address_bytes", [20, 250])  # bound by count, bound by size
def test_interest_batches_stay_within_the_message_limits(address_bytes: int) -> None:
    header = log_header(bytes(32), bytes(64))
    many = [
        LogDeclaration(2 * i, "/orbitdb/%0*d" % (address_bytes - 9, i), header) for i in range(600)
    ]
    batches = interest_batches(many)
    assert [d for b in batches for d in b] == many
    for batch in batches:
        assert len(batch) <= MAX_INTEREST_LOGS
        assert len(encode_message(Interest(batch))) <= MAX_SIZE[INTEREST]
    if address_bytes == 20:
        assert len(batches[0]) == MAX_INTEREST_LOGS
    else:  # full by size: one more would not fit
        with pytest.raises(LocalProtocolError, match="exceeds its limit"):
            encode_message(Interest([*batches[0], many[len(batches[0])]]))
