"""Every (state, input) pair of the session state table, driven through a real Session.

For each pair the session is brought into the state by a real exchange with a hand-driven peer,
then the input is applied. What must happen is read from node.proto._states.TRANSITIONS: a pair in
the table moves to its next state AND does what its action says (the events the caller gets and
the frames queued for the peer, decrypted by the peer); a caller's input outside the table raises
LocalProtocolError and changes nothing; a peer's input outside the table raises
RemoteProtocolError, ends in ERROR and says Bye with the reason once keys exist (in CLOSED and
ERROR, feeding anything is the caller's mistake: LocalProtocolError).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto.noise import WAYSTATION_PROLOGUE as PROLOGUE
from node.crypto.noise import NoiseHandshake
from node.errors import (
    REASON_INTEGRITY,
    REASON_UNEXPECTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from node.proto import _states as S
from node.proto import session as session_module
from node.proto.messages import (
    SUMMARY_KNOWN,
    SUMMARY_OFFER,
    Ack,
    Bye,
    Entries,
    Hello,
    Interest,
    LogDeclaration,
    Pairing,
    Reconcile,
    Summary,
    decode_message,
    encode_message,
)
from node.proto.session import (
    AckReceived,
    EntriesReceived,
    InterestReceived,
    PairingReceived,
    ReconcileReceived,
    Session,
    SessionClosed,
    SessionLimits,
    SessionOpened,
    SummaryReceived,
)
from tests.session_helpers import SUITE, RawPeer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from node.proto.messages import Message

LIMITS = SessionLimits(handshake_timeout=1000, idle_timeout=5000, keepalive_interval=2000)
TESTED_INPUTS = [i for i in S.INPUTS if i != S.HANDSHAKE_COMPLETED]  # state-triggered only
LATE = 10_000_000  # DEADLINE_PASSED moves the clock this far: past every deadline of LIMITS

PEER_MESSAGES: dict[str, Message] = {
    S.RECV_HELLO: Hello(0, 65536),
    S.RECV_INTEREST: Interest([LogDeclaration(0, "/orbitdb/x/y", b"h")]),
    S.RECV_RECONCILE: Reconcile(3, b"r"),
    S.RECV_ENTRIES: Entries(4, [b"e"]),
    S.RECV_ACK: Ack(5, 1, 10),
    S.RECV_PAIRING: Pairing(1, b"p"),
    S.RECV_BYE: Bye("done", "bye"),
    S.RECV_SUMMARY: Summary(SUMMARY_OFFER, 2, bytes(8), bytes(range(8))),
}
OUR_BYE = Bye("leaving", "we leave")
FAILURE = RemoteProtocolError("a rule was broken", "malformed")
OUR_MESSAGES: dict[str, Message] = {
    S.SEND_INTEREST: Interest([LogDeclaration(7, "/orbitdb/a/b")]),
    S.SEND_RECONCILE: Reconcile(7, b"ranges"),
    S.SEND_ENTRIES: Entries(7, [b"entry"]),
    S.SEND_ACK: Ack(7, 2, 100),
    S.SEND_PAIRING: Pairing(2, b"step"),
    S.SEND_BYE: OUR_BYE,
    S.SEND_SUMMARY: Summary(SUMMARY_KNOWN),
}
# What `deliver` hands the caller for each peer message (as described by `described`).
DELIVERED = {
    S.RECV_INTEREST: ("InterestReceived", [LogDeclaration(0, "/orbitdb/x/y", b"h")]),
    S.RECV_RECONCILE: ("ReconcileReceived", 3, b"r"),
    S.RECV_ENTRIES: (
        "EntriesReceived",
        4,
        [b"e"],
        len(encode_message(PEER_MESSAGES[S.RECV_ENTRIES])),
    ),
    S.RECV_ACK: ("AckReceived", 5, 1, 10),
    S.RECV_PAIRING: ("PairingReceived", 1, b"p"),
    S.RECV_SUMMARY: ("SummaryReceived", PEER_MESSAGES[S.RECV_SUMMARY]),
}
EVENT_FIELDS = {
    AckReceived: ("ref", "stored", "credit"),
    EntriesReceived: ("ref", "items", "size"),
    InterestReceived: ("logs",),
    PairingReceived: ("step", "data"),
    ReconcileReceived: ("ref", "data"),
    SummaryReceived: ("summary",),
    SessionClosed: ("reason", "text", "by_peer"),
    SessionOpened: ("hello",),
}


def described(event: object) -> tuple[object, ...]:
    """An event as a comparable tuple: its class name, then its fields."""
    fields = EVENT_FIELDS.get(type(event), ())
    return (type(event).__name__, *(getattr(event, name) for name in fields))


class Probe:
    """A responder session in some state, its raw peer, and a real Noise initiator for message 1."""

    def __init__(self, state: str) -> None:
        self.session = Session(SUITE, False, SUITE.random_bytes(32), 1, 0, LIMITS)
        self.peer: RawPeer | None = None
        self.initiator = NoiseHandshake(SUITE, True, SUITE.random_bytes(32), PROLOGUE)
        self.now = 0
        if state != S.AWAIT_HANDSHAKE:
            self._bring_to(state)
        assert self.session.state == state
        self.events()
        self.frames()  # what it took to get here is not what the input under test does

    def _bring_to(self, state: str) -> None:
        peer = self.peer = RawPeer(self.session)
        peer.handshake_step()
        if state == S.AWAIT_HELLO:
            return
        peer.send(Hello(0, 65536))
        if state == S.CLOSING:
            self.session.close("ok", "", 0)
        elif state == S.CLOSED:
            peer.send(Bye("ok"))
        elif state == S.ERROR:
            with pytest.raises(RemoteProtocolError):
                peer.send_raw(b"\xee")

    @property
    def has_keys(self) -> bool:
        return self.peer is not None

    def events(self) -> list[tuple[object, ...]]:
        out = []
        while (event := self.session.next_event()) is not None:
            out.append(described(event))
        return out

    def frames(self) -> list[Message]:
        """The session's queued frames, decrypted by the peer (after the handshake)."""
        if self.peer is None:
            assert self.session.frames_to_send() == []
            return []
        return self.peer.received()

    def apply(self, event: str) -> None:
        session, now = self.session, self.now
        if event == S.RECV_HANDSHAKE:
            session.receive_frame(self.initiator.write_message(b""), now)  # Noise message 1
        elif event in PEER_MESSAGES:
            if self.peer is None:
                session.receive_frame(b"\x01" + bytes(47), now)  # no keys: read as a handshake
            else:
                self.peer.now = now
                self.peer.send(PEER_MESSAGES[event])
        elif event == S.CONNECTION_LOST:
            session.connection_lost(now)
        elif event == S.DEADLINE_PASSED:
            self.now += LATE
            session.handle_timer(self.now)
        elif event == S.KEEPALIVE_DUE and session.state == S.OPEN and self.peer is not None:
            # the real timer: the peer's own keepalive (an empty Ack: no event) keeps it from
            # being silent too long; then we have sent nothing for keepalive_interval
            self.peer.now = now
            self.peer.send(Ack(0, 0, 0))
            self.now += LIMITS.keepalive_interval
            session.handle_timer(self.now)
        elif event in S.INTERNAL_INPUTS:
            # the session raises these itself (a timer elsewhere; a failure while handling
            # another input); fed directly, so that every state sees them
            payload = FAILURE if event == S.PROTOCOL_FAILED else None
            session._apply(event, payload, now)
        else:
            send_ours(session, event, now)


def send_ours(session: Session, event: str, now: int) -> None:
    message = OUR_MESSAGES[event]
    if isinstance(message, Interest):
        session.send_interest(message.logs, now)
    elif isinstance(message, Reconcile):
        session.send_reconcile(message.ref, message.data, now)
    elif isinstance(message, Entries):
        assert session.send_entries(message.ref, message.items, now) == len(message.items)
    elif isinstance(message, Ack):
        session.send_ack(message.ref, message.stored, message.credit, now)
    elif isinstance(message, Pairing):
        session.send_pairing(message.step, message.data, now)
    elif isinstance(message, Bye):
        session.close(message.reason, message.text, now)
    elif isinstance(message, Summary):
        session.send_summary(message, now)
    else:  # pragma: no cover
        raise AssertionError(event)


def expected_action(
    state: str, event: str, action: str
) -> tuple[list[tuple[object, ...]], list[Message]]:
    """The events and the (decrypted) frames that `action` must produce for this pair."""
    if action == "deliver":
        return [DELIVERED[event]], []
    if action == "hello":
        return [("SessionOpened", PEER_MESSAGES[event])], []
    if action == "send":
        return [], [OUR_MESSAGES[event]]
    if action == "say_bye":
        return [("SessionClosed", OUR_BYE.reason, OUR_BYE.text, False)], [OUR_BYE]
    if action == "answer_bye":
        bye = PEER_MESSAGES[S.RECV_BYE]
        assert isinstance(bye, Bye)
        return [("SessionClosed", bye.reason, bye.text, True)], [Bye("ok", "")]
    if action == "timeout":
        text = "no hello in time" if state == S.AWAIT_HELLO else "peer silent too long"
        return [("SessionClosed", "timeout", text, False)], [Bye("timeout", text)]
    if action == "lost":
        return [("SessionClosed", "lost", "the link dropped", True)], []
    if action == "abort":
        reason = "timeout" if event == S.DEADLINE_PASSED else OUR_BYE.reason
        return [("SessionClosed", reason, "closed before the handshake completed", False)], []
    if action == "keepalive":
        return [], [Ack(0, 0, 0)]
    if action == "fail":
        bye = [Bye(FAILURE.reason, FAILURE.message)] if state not in (S.AWAIT_HANDSHAKE,) else []
        return [("SessionClosed", FAILURE.reason, FAILURE.message, False)], bye
    if action in ("ignore", "finish"):
        return [], []
    raise AssertionError("no expectation for action %s" % action)  # pragma: no cover


def check_handshake_answer(probe: Probe) -> None:
    """The responder answers message 1 with message 2 and stays in AWAIT_HANDSHAKE."""
    assert probe.session.state == S.AWAIT_HANDSHAKE
    assert probe.events() == []
    (message_2,) = probe.session.frames_to_send()
    initiator = probe.initiator
    assert initiator.read_message(message_2) == b""  # a valid message 2, empty payload
    assert not initiator.is_complete() and initiator.is_my_turn()
    # message 3 completes it: HandshakeCompleted, our Hello (send_hello), AWAIT_HELLO
    probe.session.receive_frame(initiator.write_message(b""), 0)
    assert initiator.is_complete() and probe.session.state == S.AWAIT_HELLO
    transport = initiator.transport()
    assert [described(e)[0] for e in iter(probe.session.next_event, None)] == ["HandshakeCompleted"]
    (hello_frame,) = probe.session.frames_to_send()
    assert decode_message(transport.decrypt(hello_frame)) == probe.session.local_hello


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S.STATES, TESTED_INPUTS)))
def test_every_state_input_pair(state: str, event: str) -> None:
    probe = Probe(state)
    step = S.transition(state, event)
    finished = state in S.TERMINAL_STATES
    if step is not None:
        action, next_state = step
        probe.apply(event)
        assert probe.session.state == next_state
        if action == "handshake":
            check_handshake_answer(probe)
            return
        events, frames = expected_action(state, event, action)
        assert probe.events() == events
        assert probe.frames() == frames
    elif event in S.LOCAL_INPUTS or event in S.INTERNAL_INPUTS or finished:
        with pytest.raises(LocalProtocolError):
            probe.apply(event)
        assert probe.session.state == state
        assert probe.events() == []
        assert probe.frames() == []
    else:
        with pytest.raises(RemoteProtocolError) as caught:
            probe.apply(event)
        assert probe.session.state == S.ERROR
        reason = caught.value.reason
        assert probe.events() == [("SessionClosed", reason, caught.value.message, False)]
        said = probe.frames()
        if probe.has_keys:
            # a handshake message after the handshake does not even decrypt
            assert reason == (REASON_INTEGRITY if event == S.RECV_HANDSHAKE else REASON_UNEXPECTED)
            assert len(said) == 1 and isinstance(said[0], Bye) and said[0].reason == reason
        else:
            assert said == []


def test_table_names_only_known_states_inputs_and_actions() -> None:
    for (state, event), (action, nxt) in S.TRANSITIONS.items():
        assert state in S.STATES and nxt in S.STATES and event in S.INPUTS
        assert hasattr(Session, "_do_" + action), action
    # the dispatch table and the state table name the same actions, each once
    actions = {action for action, _ in S.TRANSITIONS.values()}
    assert set(session_module._ACTIONS) == actions
    for action, function in session_module._ACTIONS.items():
        assert function is getattr(Session, "_do_" + action)


def test_timers_and_failures_are_rows_of_the_table() -> None:
    # no state changes outside the table: the keepalive and every failure are inputs of it
    assert S.transition(S.OPEN, S.KEEPALIVE_DUE) == ("keepalive", S.OPEN)
    for state in S.STATES:
        step = S.transition(state, S.PROTOCOL_FAILED)
        assert step is not None
        assert step[1] == (state if state in S.TERMINAL_STATES else S.ERROR)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(TESTED_INPUTS), max_size=12))
def test_random_input_sequences_keep_the_table(events: list[str]) -> None:
    probe = Probe(S.OPEN)
    for event in events:
        before = probe.session.state
        try:
            probe.apply(event)
        except LocalProtocolError:
            assert probe.session.state == before
        except RemoteProtocolError:
            assert probe.session.state == S.ERROR
        else:
            step = S.transition(before, event)
            assert step is not None and probe.session.state == step[1]
            assert (probe.events(), probe.frames()) == expected_action(before, event, step[0])
        probe.events()
        probe.frames()
        if before in S.TERMINAL_STATES:
            assert probe.session.state == before
