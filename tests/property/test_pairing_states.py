"""Every (state, input) pair of the pairing state table (node/proto/pairing.py), both sides.

Each state is reached by a real exchange with a peer machine (real SPAKE2 through node/app/pake.py),
then every input is fed, with well-formed data produced by a peer in the matching state. A pair in
TRANSITIONS (for the side that may take it) moves to its next state; any other pair raises
(LocalProtocolError for our own BEGIN, RemoteProtocolError "unexpected" for a peer's step) and
leaves the machine FAILED. Hypothesis covers the codecs: round trips, and arbitrary bytes never
raise anything but RemoteProtocolError.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.app.pake import Spake2Side
from node.errors import REASON_UNEXPECTED, LocalProtocolError, RemoteProtocolError
from node.proto import pairing as pp
from tests.sync_helpers import SUITE

H = hashlib.blake2b(b"handshake").digest()
CODE = b"12345678"


def fresh(initiator: bool, code: bytes = CODE, h: bytes = H) -> pp.PairingExchange:
    return pp.PairingExchange(SUITE, Spake2Side, initiator, code, h)


def reach(state: str, initiator: bool) -> tuple[pp.PairingExchange, bytes | None]:
    """(machine in `state` on the given side, the data its genuine peer sends it next, if any)."""
    me, peer = fresh(initiator), fresh(not initiator)
    i, r = (me, peer) if initiator else (peer, me)
    if state == pp.IDLE:
        return me, None
    if state == pp.FAILED:
        with pytest.raises(RemoteProtocolError):
            me.receive(99, b"")
        return me, None
    start = i.begin("phone")
    [reply] = r.receive(*start)
    if state == pp.AWAIT_REPLY:
        return me, reply[1]
    [confirm] = i.receive(*reply)
    if state == pp.AWAIT_CONFIRM:
        return me, confirm[1]
    [result] = r.receive(*confirm)
    if state == pp.AWAIT_RESULT:
        return me, result[1]
    i.receive(*result)
    assert state == pp.PAIRED
    return me, None


def valid_input(what: str) -> bytes:
    """Well-formed data for an input, from a genuine exchange on the same code and hash."""
    i, r = fresh(True), fresh(False)
    start = i.begin("phone")
    if what in (pp.BEGIN, pp.RECV_START):
        return start[1]
    [reply] = r.receive(*start)
    if what == pp.RECV_REPLY:
        return reply[1]
    [confirm] = i.receive(*reply)
    if what == pp.RECV_CONFIRM:
        return confirm[1]
    return pp.encode_result(pp.NO_WINDOW)  # RECV_RESULT: a refusal is valid in both waits


SIDES = {
    pp.IDLE: (True, False),
    pp.AWAIT_REPLY: (True,),
    pp.AWAIT_CONFIRM: (False,),
    pp.AWAIT_RESULT: (True,),
    pp.PAIRED: (True, False),
    pp.FAILED: (True, False),
}
STEP_OF = {v: k for k, v in pp.STEP_INPUT.items()}
CASES = [
    (state, initiator, what)
    for state in pp.STATES
    for initiator in SIDES[state]
    for what in pp.INPUTS
]


def allowed(state: str, initiator: bool, what: str) -> bool:
    if (state, what) not in pp.TRANSITIONS:
        return False
    if what == pp.BEGIN:
        return initiator
    if what == pp.RECV_START:
        return not initiator
    return True


@pytest.mark.parametrize(("state", "initiator", "what"), CASES)
def test_every_state_and_input(state: str, initiator: bool, what: str) -> None:
    machine, next_data = reach(state, initiator)
    assert machine.state == state
    data = valid_input(what)
    if next_data is not None and (state, what) in pp.TRANSITIONS and what != pp.RECV_RESULT:
        data = next_data  # the genuine peer's answer, so the exchange can succeed
    if allowed(state, initiator, what):
        if what == pp.BEGIN:
            machine.begin("phone")
        else:
            machine.receive(STEP_OF[what], data)
        action, next_state = pp.TRANSITIONS[(state, what)]
        if action in ("result", "refused"):  # the relay's NO_WINDOW refusal: FAILED, status kept
            assert machine.state == pp.FAILED and machine.status == pp.NO_WINDOW
        else:
            assert machine.state == next_state
        return
    if what == pp.BEGIN:
        with pytest.raises(LocalProtocolError):
            machine.begin("phone")
    else:
        with pytest.raises(RemoteProtocolError) as caught:
            machine.receive(STEP_OF[what], data)
        assert caught.value.reason == REASON_UNEXPECTED
    assert machine.state == pp.FAILED


def test_every_pair_of_the_table_is_a_case() -> None:
    covered = {(s, w) for s, i, w in CASES if allowed(s, i, w)}
    assert covered == set(pp.TRANSITIONS)


def test_wrong_code_fails_on_both_sides_and_the_responder_says_so() -> None:
    i, r = fresh(True, b"12345679"), fresh(False)
    [reply] = r.receive(*i.begin("phone"))
    assert i.receive(*reply) == [] and i.status == pp.WRONG_CODE and i.state == pp.FAILED
    # An initiator that goes on anyway with a confirmation from its own key is refused.
    confirm = i._confirm(pp.ROLE_INITIATOR)
    assert r.receive(pp.CONFIRM, confirm) == [(pp.RESULT, pp.encode_result(pp.WRONG_CODE))]
    assert r.state == pp.FAILED and r.status == pp.WRONG_CODE


def test_another_handshake_hash_is_another_key() -> None:
    """A man in the middle runs two sessions (two hashes): the confirmations do not match."""
    other = hashlib.blake2b(b"other session").digest()
    i, r = fresh(True, h=H), fresh(False, h=other)
    [reply] = r.receive(*i.begin("phone"))
    assert i.receive(*reply) == [] and i.status == pp.WRONG_CODE


def test_replayed_start_and_confirm_in_a_new_session_fail() -> None:
    """A recorded exchange replayed in a new session (new hash): the relay says wrong code."""
    i, r = fresh(True), fresh(False)
    start = i.begin("phone")
    [reply] = r.receive(*start)
    [confirm] = i.receive(*reply)
    r2 = fresh(False, h=hashlib.blake2b(b"the replayer's session").digest())
    r2.receive(*start)
    assert r2.receive(*confirm) == [(pp.RESULT, pp.encode_result(pp.WRONG_CODE))]
    assert r2.state == pp.FAILED


def test_a_paired_result_before_confirmation_is_refused() -> None:
    i = fresh(True)
    i.begin("phone")
    with pytest.raises(RemoteProtocolError):
        i.receive(pp.RESULT, pp.encode_result(pp.PAIRED_OK))
    assert i.state == pp.FAILED


def test_a_reflected_spake2_message_is_refused() -> None:
    r = fresh(False)
    start = fresh(False).receive(*fresh(True).begin("x"))[0][1][:33]  # a B message, not an A
    with pytest.raises(RemoteProtocolError):
        r.receive(pp.START, pp.encode_start(start, "x"))
    assert r.state == pp.FAILED


names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), max_size=pp.MAX_NAME_BYTES
).filter(lambda n: len(n.encode()) <= pp.MAX_NAME_BYTES and "\x7f" not in n)


@given(st.binary(min_size=33, max_size=33), names)
def test_start_round_trip(message: bytes, name: str) -> None:
    assert pp.decode_start(pp.encode_start(message, name)) == (message, name)


@given(st.binary(min_size=33, max_size=33), st.binary(min_size=64, max_size=64))
def test_reply_round_trip(message: bytes, confirm: bytes) -> None:
    assert pp.decode_reply(pp.encode_reply(message, confirm)) == (message, confirm)


@given(st.sampled_from(sorted(pp.STATUS_TEXT)), st.binary(min_size=32, max_size=32))
def test_result_round_trip(status: int, key: bytes) -> None:
    assert pp.decode_result(pp.encode_result(status)) == (status, b"")
    if status == pp.PAIRED_OK:
        assert pp.decode_result(pp.encode_result(status, key)) == (status, key)


@given(st.binary(max_size=200))
def test_hostile_bytes_are_refused_or_canonical(data: bytes) -> None:
    """Anything a peer sends decodes to what encodes back to the same bytes, or is refused."""
    codecs = [
        (pp.decode_start, lambda v: pp.encode_start(*v)),
        (pp.decode_reply, lambda v: pp.encode_reply(*v)),
        (pp.decode_confirm, lambda v: v),
        (pp.decode_result, lambda v: pp.encode_result(*v)),
    ]
    for decode, encode in codecs:
        try:
            value = decode(data)
        except RemoteProtocolError:
            continue
        assert encode(value) == data


@given(st.integers(min_value=0, max_value=255), st.binary(max_size=120))
def test_hostile_steps_to_a_responder(step: int, data: bytes) -> None:
    r = fresh(False)
    try:
        r.receive(step, data)
    except RemoteProtocolError:
        assert r.state == pp.FAILED
