"""Passes (node/app/passes.py) on their own: Reconcile payloads in, payloads and keys out.

No session and no event loop: an initiator's and a responder's Passes answer each other by
plain calls over real KeySets. The initiator's decision table (`decide`) and every malformed or
out-of-order Reconcile message are covered.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

from node.app.interest import SessionLog
from node.app.passes import (
    FOLD_LOGS,
    IN_SYNC,
    MAX_PASSES,
    PASS_SENT,
    PASS_START,
    START,
    UNSETTLED,
    WAIT,
    Passes,
)
from node.errors import RemoteProtocolError
from node.proto.messages import SUMMARY_IN_SYNC, SUMMARY_KNOWN, SUMMARY_UNKNOWN
from node.sync.keyset import KeySet
from node.varint import encode_uvarint

if TYPE_CHECKING:
    from node.sync.keyset import Key

FRAME = 4096


def key(i: int) -> Key:
    return (i, hashlib.sha256(b"%d" % i).digest())


class Side:
    """One side's logs (agreed) and KeySets."""

    def __init__(self, initiator: bool, sets: dict[str, list[int]]) -> None:
        self.passes = Passes(initiator, FRAME, FRAME)
        self.keysets = {address: KeySet(key(i) for i in ids) for address, ids in sets.items()}
        self.logs = {
            2 * n: SessionLog(2 * n, address, bytes(32), ours=True, theirs=True)
            for n, address in enumerate(sorted(sets))
        }

    def keyset_of(self, address: str) -> KeySet:
        return self.keysets[address]

    def receive(self, number: int, payload: bytes) -> list[bytes]:
        return self.passes.receive(number, payload, self.logs, self.keyset_of)

    def found(self) -> dict[str, list[Key]]:
        return {slog.address: keys for slog, keys in self.passes.results()}


def run_pass(a: Side, b: Side, progress: tuple[int, int] = (0, 0)) -> list[bytes]:
    """One whole pass from `a` (initiator) to `b`; returns the first message (PASS_START)."""
    payloads = a.passes.start(
        sorted(a.logs.values(), key=lambda s: s.address), a.keyset_of, progress
    )
    first = payloads[0]
    sender, receiver = a, b
    while payloads:
        payloads = [r for p in payloads for r in receiver.receive(a.passes.number, p)]
        sender, receiver = receiver, sender
    return [first]


def test_a_pass_finds_what_each_side_lacks() -> None:
    a = Side(True, {"log-a": list(range(100)), "log-b": [1, 2, 3]})
    b = Side(False, {"log-a": list(range(5, 120)), "log-b": [1, 2, 3]})
    (first,) = run_pass(a, b)
    assert first == bytes((PASS_START,)) + encode_uvarint(2) + encode_uvarint(0) + encode_uvarint(2)
    # newest first: a relay short of quota keeps the newest (docs/store.md)
    assert a.found() == {"log-a": [key(i) for i in reversed(range(5))]}
    assert b.found() == {"log-a": [key(i) for i in reversed(range(100, 120))]}
    assert a.found() == {} and b.found() == {}  # each key is handed out once
    assert a.passes.reconciler is not None and a.passes.reconciler.done
    assert not a.passes.settled()  # the responder has not said PASS_SENT yet
    assert b.passes.sent_all_due()
    b.passes.said_sent_all()
    assert not b.passes.sent_all_due()  # once per pass
    assert a.receive(1, bytes((PASS_SENT,))) == []
    assert a.passes.settled()


def test_only_the_responder_says_pass_sent() -> None:
    a = Side(True, {"log": [1]})
    b = Side(False, {"log": [2]})
    run_pass(a, b)
    assert not a.passes.sent_all_due()  # only the responder says it
    assert b.passes.sent_all_due()


def test_a_pass_over_no_logs() -> None:
    a = Side(True, {})
    b = Side(False, {})
    run_pass(a, b)
    assert b.passes.reconciler is None and b.passes.logs == [] and b.passes.number == 1
    assert a.passes.settled()  # nothing to wait for
    assert a.passes.decide(a.keyset_of, (0, 0)) == IN_SYNC


# -- the initiator's decision table ---------------------------------------------------------------


def settled_pass(a_ids: list[int], b_ids: list[int]) -> tuple[Side, Side]:
    a, b = Side(True, {"log": a_ids}), Side(False, {"log": b_ids})
    run_pass(a, b)
    a.receive(1, bytes((PASS_SENT,)))
    return a, b


def test_decide_before_any_pass() -> None:
    a = Side(True, {"log": [1]})
    assert a.passes.decide(a.keyset_of, (0, 0)) == WAIT
    a.passes.need_pass = True
    assert a.passes.decide(a.keyset_of, (0, 0)) == START


def test_decide_in_sync_and_unchanged() -> None:
    a, _ = settled_pass([1, 2], [1, 2])
    assert a.passes.decide(a.keyset_of, (0, 0)) == IN_SYNC


def test_decide_in_sync_but_asked_for_another_pass() -> None:
    a, _ = settled_pass([1, 2], [1, 2])
    a.passes.need_pass = True  # new agreed logs
    assert a.passes.decide(a.keyset_of, (0, 0)) == START


def test_decide_after_a_change_the_peer_holds() -> None:
    a, _ = settled_pass([1, 2], [1, 2])
    a.keysets["log"].add(key(3))
    assert a.passes.decide(a.keyset_of, (0, 0)) == START  # a change nobody told us of
    a.logs[0].peer_holds(key(3))  # ...the peer sent it, or acknowledged it
    a.passes.need_pass = False
    assert a.passes.decide(a.keyset_of, (0, 0)) == IN_SYNC


def test_decide_after_a_difference_that_moved_entries() -> None:
    a, _ = settled_pass([1, 2], [1, 2, 3])
    assert a.passes.decide(a.keyset_of, (0, 1)) == START


@pytest.mark.parametrize("moved", [False, True])
def test_decide_unsettled_after_max_passes_that_move_nothing(moved: bool) -> None:
    a, b = Side(True, {"log": [1]}), Side(False, {"log": [1, 2]})
    decisions = []
    for n in range(MAX_PASSES + 1):
        run_pass(a, b, progress=(0, n if moved else 0))
        a.receive(a.passes.number, bytes((PASS_SENT,)))
        b.passes.results()
        decisions.append(a.passes.decide(a.keyset_of, (0, n + 1 if moved else 0)))
        if decisions[-1] != START:
            break
    if moved:  # every pass moved something: never unsettled
        assert decisions == [START] * (MAX_PASSES + 1)
    else:
        assert decisions == [START] * (MAX_PASSES - 1) + [UNSETTLED]
        assert a.passes.number == MAX_PASSES


# -- malformed and out-of-order Reconcile messages ------------------------------------------------


def start_message(*refs: int) -> bytes:
    return bytes((PASS_START,)) + encode_uvarint(len(refs)) + b"".join(map(encode_uvarint, refs))


@pytest.mark.parametrize(
    ("side", "number", "payload", "reason"),
    [
        ("responder", 1, b"", "malformed"),  # empty
        ("responder", 1, bytes((0x04,)), "malformed"),  # unknown flag
        ("responder", 1, bytes((PASS_SENT,)), "unexpected"),  # PASS_SENT is the responder's
        ("initiator", 2, bytes((PASS_SENT,)), "unexpected"),  # for another pass
        ("initiator", 1, bytes((PASS_SENT, 0)), "unexpected"),  # with bytes after it
        ("initiator", 2, start_message(0), "unexpected"),  # PASS_START is the initiator's
        ("responder", 2, start_message(0), "unexpected"),  # skips pass 1
        ("responder", 1, start_message(0, 2, 4), "malformed"),  # more logs than declared
        ("responder", 1, start_message(6), "unexpected"),  # a ref that is not agreed
        ("responder", 1, start_message(0) + b"\x00", "malformed"),  # bytes after the list
        ("responder", 1, b"\x00" + b"frame", "unexpected"),  # a frame before any pass
    ],
)
def test_bad_reconcile_messages(side: str, number: int, payload: bytes, reason: str) -> None:
    a, b = Side(True, {"log": [1], "log2": [2]}), Side(False, {"log": [1], "log2": [2]})
    if side == "initiator":
        a.passes.start(list(a.logs.values()), a.keyset_of, (0, 0))
    target = a if side == "initiator" else b
    with pytest.raises(RemoteProtocolError) as info:
        target.receive(number, payload)
    assert info.value.reason == reason


def test_a_new_pass_before_the_last_ended_is_refused() -> None:
    a, b = Side(True, {"log": list(range(50))}), Side(False, {"log": list(range(10, 60))})
    payloads = a.passes.start(list(a.logs.values()), a.keyset_of, (0, 0))
    b.receive(1, payloads[0])  # the pass opens; its frames never arrive
    with pytest.raises(RemoteProtocolError, match="before the last ended"):
        b.receive(2, start_message(0))


# -- an exact pass needs no second one; pass 1 folded into a Summary ------------------------------


def test_decide_after_an_exact_pass_whose_entries_moved() -> None:
    a, _ = settled_pass([1, 2], [1, 2, 3])  # a is b's prefix: AHEAD, exact
    a.keysets["log"].add(key(3))
    a.logs[0].peer_holds(key(3))  # received and stored: exactly what was announced
    assert a.passes.decide(a.keyset_of, (0, 1)) == IN_SYNC  # no confirming pass
    a.keysets["log"].add(key(4))  # later: a change nobody told us of
    assert a.passes.decide(a.keyset_of, (0, 1)) == START


def test_decide_after_an_exact_pass_that_moved_more_than_announced() -> None:
    a, _ = settled_pass([1, 2], [1, 2, 3])
    for n in (3, 9):  # the announced entry and a push from another link
        a.keysets["log"].add(key(n))
        a.logs[0].peer_holds(key(n))
    assert a.passes.decide(a.keyset_of, (0, 2)) == START  # not provably equal: check again


def test_decide_after_a_pass_that_was_not_exact() -> None:
    a, _ = settled_pass([1, 2, 4], [1, 2, 3])  # neither is the other's prefix
    a.keysets["log"].add(key(3))
    a.logs[0].peer_holds(key(3))
    assert a.passes.decide(a.keyset_of, (1, 1)) == START


def folded(a_ids: list[int], b_ids: list[int]) -> tuple[Side, Side, bytes]:
    a, b = Side(True, {"log": a_ids}), Side(False, {"log": b_ids})
    frame = a.passes.fold(list(a.logs.values()), a.keyset_of, (0, 0))
    assert frame and a.passes.folded and a.passes.number == 1
    return a, b, frame


def test_a_folded_pass_answered_known_runs_as_pass_1() -> None:
    a, b, frame = folded([1, 2], [1, 2, 3])
    replies = b.passes.open_folded(list(b.logs.values()), b.keyset_of, frame)
    assert replies  # a difference: the relay answers KNOWN with these
    a.passes.folded_answer(SUMMARY_KNOWN)
    assert not a.passes.folded and a.passes.reconciler is not None
    for reply in replies:
        assert a.receive(1, reply) == []
    assert b.found() == {"log": [key(3)]}
    with pytest.raises(RemoteProtocolError):  # only once, and only as pass 1
        b.passes.open_folded(list(b.logs.values()), b.keyset_of, frame)


@pytest.mark.parametrize(("kind", "number"), [(SUMMARY_IN_SYNC, 1), (SUMMARY_UNKNOWN, 0)])
def test_a_folded_pass_answered_otherwise(kind: int, number: int) -> None:
    a, b, frame = folded([1, 2], [1, 2])
    if kind == SUMMARY_IN_SYNC:  # every log matched: the relay answers IN_SYNC, pass 1 is over
        assert b.passes.open_folded(list(b.logs.values()), b.keyset_of, frame) == []
        assert b.passes.reconciler is None
    a.passes.folded_answer(kind)
    assert a.passes.number == number and a.passes.reconciler is None and a.passes.settled()
    run_pass(a, b)  # the next pass is numbered alike on both sides
    assert b.passes.number == a.passes.number == number + 1


def test_a_large_pass_is_not_folded() -> None:
    a = Side(True, {"log-%d" % n: [1] for n in range(FOLD_LOGS + 1)})
    assert a.passes.fold(list(a.logs.values()), a.keyset_of, (0, 0)) == b""
    assert a.passes.number == 0 and not a.passes.folded
