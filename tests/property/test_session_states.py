"""Every (state, input) pair of the session state table, driven through a real Session.

For each pair the session is brought into the state by a real exchange with a hand-driven peer,
then the input is applied. What must happen is read from node.proto._states.TRANSITIONS: a pair in
the table moves to its next state; a caller's input outside the table raises LocalProtocolError and
changes nothing; a peer's input outside the table raises RemoteProtocolError and ends in ERROR
(in CLOSED and ERROR, feeding anything is the caller's mistake: LocalProtocolError).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import LocalProtocolError, RemoteProtocolError
from node.proto import _states as S
from node.proto.messages import (
    Ack,
    Bye,
    Entries,
    Hello,
    Interest,
    LogDeclaration,
    Pairing,
    Reconcile,
)
from node.proto.session import Session, SessionLimits
from tests.session_helpers import SUITE, RawPeer

LIMITS = SessionLimits(handshake_timeout=1000, idle_timeout=5000, keepalive_interval=2000)
TESTED_INPUTS = [i for i in S.INPUTS if i != S.HANDSHAKE_COMPLETED]  # state-triggered only

PEER_MESSAGES = {
    S.RECV_HELLO: Hello(0, 65536),
    S.RECV_INTEREST: Interest([LogDeclaration(0, "/orbitdb/x/y")]),
    S.RECV_RECONCILE: Reconcile(0, b"r"),
    S.RECV_ENTRIES: Entries(0, [b"e"]),
    S.RECV_ACK: Ack(0, 1, 10),
    S.RECV_PAIRING: Pairing(1, b"p"),
    S.RECV_BYE: Bye("ok", "bye"),
}


def session_in(state: str) -> tuple[Session, RawPeer | None]:
    """A responder session brought into `state` by a real exchange."""
    session = Session(SUITE, False, SUITE.random_bytes(32), 1, 0, LIMITS)
    if state == S.AWAIT_HANDSHAKE:
        return session, None
    peer = RawPeer(session)
    peer.handshake_step()
    if state == S.AWAIT_HELLO:
        return session, peer
    peer.send(Hello(0, 65536))
    if state == S.OPEN:
        return session, peer
    if state == S.CLOSING:
        session.close("ok", "", 0)
    elif state == S.CLOSED:
        peer.send(Bye("ok"))
    elif state == S.ERROR:
        with pytest.raises(RemoteProtocolError):
            peer.send_raw(b"\xee")
    assert session.state == state
    return session, peer


def apply_input(session: Session, peer: RawPeer | None, event: str) -> None:
    if event == S.RECV_HANDSHAKE:
        # A Noise handshake message: the 32-byte `e` of a message 1.
        session.receive_frame(SUITE.x25519_public(SUITE.random_bytes(32)), 0)
    elif event in PEER_MESSAGES:
        if peer is None or peer.transport is None:
            session.receive_frame(b"\x01" + bytes(47), 0)  # not a handshake message
        else:
            peer.send(PEER_MESSAGES[event])
    elif event == S.CONNECTION_LOST:
        session.connection_lost(0)
    elif event == S.DEADLINE_PASSED:
        session.handle_timer(10_000_000)
    elif event == S.SEND_INTEREST:
        session.send_interest([LogDeclaration(0, "/orbitdb/x/y")], 0)
    elif event == S.SEND_RECONCILE:
        session.send_reconcile(0, b"r", 0)
    elif event == S.SEND_ENTRIES:
        session.send_entries(0, [b"e"], 0)
    elif event == S.SEND_ACK:
        session.send_ack(0, 0, 0, 0)
    elif event == S.SEND_PAIRING:
        session.send_pairing(1, b"p", 0)
    elif event == S.SEND_BYE:
        session.close("ok", "", 0)
    else:  # pragma: no cover
        raise AssertionError(event)


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S.STATES, TESTED_INPUTS)))
def test_every_state_input_pair(state: str, event: str) -> None:
    session, peer = session_in(state)
    step = S.transition(state, event)
    finished = state in S.TERMINAL_STATES
    if step is not None:
        apply_input(session, peer, event)
        _, expected = step
        if state == S.AWAIT_HANDSHAKE and event == S.RECV_HANDSHAKE:
            assert session.state in (S.AWAIT_HANDSHAKE, S.AWAIT_HELLO)
        else:
            assert session.state == expected
    elif event in S.LOCAL_INPUTS or finished:
        with pytest.raises(LocalProtocolError):
            apply_input(session, peer, event)
        assert session.state == state
    else:
        with pytest.raises(RemoteProtocolError):
            apply_input(session, peer, event)
        assert session.state == S.ERROR


def test_table_names_only_known_states_inputs_and_actions() -> None:
    for (state, event), (action, nxt) in S.TRANSITIONS.items():
        assert state in S.STATES and nxt in S.STATES and event in S.INPUTS
        assert hasattr(Session, "_do_" + action), action


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(TESTED_INPUTS), max_size=12))
def test_random_input_sequences_keep_the_table(events: list[str]) -> None:
    session, peer = session_in(S.OPEN)
    for event in events:
        before = session.state
        try:
            apply_input(session, peer, event)
        except LocalProtocolError:
            assert session.state == before
        except RemoteProtocolError:
            assert session.state == S.ERROR
        assert session.state in S.STATES
        if before in S.TERMINAL_STATES:
            assert session.state == before
