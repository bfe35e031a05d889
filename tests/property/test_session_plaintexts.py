"""Hostile plaintexts inside Noise: an OPEN session fed any bytes by an authenticated peer.

The peer (RawPeer) encrypts whatever it likes with the real session keys, so the session's
message parser and state machine see it directly. Every plaintext, random or every prefix of a
valid message, must either do what docs/protocol.md says that message does in OPEN (the event,
or for a Bye the answer), or raise RemoteProtocolError with the session in ERROR, a
SessionClosed(reason) event and a Bye(reason) queued for the peer. Nothing else may escape.

What a plaintext "is" is decided by node.proto.messages.decode_message (tested on its own in
tests/property/test_codecs_hypothesis.py); this test checks what the session does with it.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import REASON_UNEXPECTED, RemoteProtocolError
from node.proto import _states as S
from node.proto.batch import unpack_messages
from node.proto.messages import (
    MAX_BYE_TEXT,
    MAX_REASON,
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
    SummaryReceived,
)
from tests.session_helpers import SUITE, RawPeer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from node.proto.messages import Message


def open_session() -> tuple[Session, RawPeer]:
    session = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(session)
    peer.handshake_step()
    peer.send(Hello(0, 65536))
    assert session.state == S.OPEN
    assert peer.received() == [session.local_hello]  # read, to keep the peer's nonces in step
    while session.next_event() is not None:
        pass
    return session, peer


def described(event: object) -> tuple[object, ...]:
    fields = {
        AckReceived: ("ref", "stored", "credit"),
        EntriesReceived: ("ref", "items", "size"),
        InterestReceived: ("logs",),
        PairingReceived: ("step", "data"),
        ReconcileReceived: ("ref", "data"),
        SessionClosed: ("reason", "text", "by_peer"),
        SummaryReceived: ("summary",),
    }[type(event)]
    return (type(event).__name__, *(getattr(event, name) for name in fields))


def documented(
    message: Message, size: int
) -> tuple[str, list[tuple[object, ...]], list[Message]] | None:
    """(next state, events, frames) for `message` arriving in OPEN; None if it must be refused."""
    if isinstance(message, Interest):
        return S.OPEN, [("InterestReceived", message.logs)], []
    if isinstance(message, Reconcile):
        return S.OPEN, [("ReconcileReceived", message.ref, message.data)], []
    if isinstance(message, Entries):
        # the last item of a `continues` message waits for its continuation
        complete = message.items[:-1] if message.continues else message.items
        events: list[tuple[object, ...]] = []
        if complete:
            events.append(("EntriesReceived", message.ref, complete, size))
        return S.OPEN, events, []
    if isinstance(message, Ack):
        keepalive = not message.stored and not message.credit
        if keepalive:
            return S.OPEN, [], []
        return S.OPEN, [("AckReceived", message.ref, message.stored, message.credit)], []
    if isinstance(message, Pairing):
        return S.OPEN, [("PairingReceived", message.step, message.data)], []
    if isinstance(message, Bye):
        return S.CLOSED, [("SessionClosed", message.reason, message.text, True)], [Bye("ok", "")]
    if isinstance(message, Summary):
        return S.OPEN, [("SummaryReceived", message)], []
    assert isinstance(message, Hello)
    return None  # a second Hello is out of state


def check_plaintext(plaintext: bytes) -> None:
    session, peer = open_session()
    try:
        parts = unpack_messages(plaintext)
        if len(parts) > 1:
            return  # a valid batch: tests/test_session.py
        message: Message | None = decode_message(parts[0])
    except RemoteProtocolError as exc:
        message, expected_reason = None, exc.reason
    outcome = None if message is None else documented(message, len(plaintext))
    if message is not None and outcome is None:
        expected_reason = REASON_UNEXPECTED
    try:
        peer.send_raw(plaintext)
    except RemoteProtocolError as exc:
        assert outcome is None, "refused %r: %s" % (message, exc)
        assert exc.reason == expected_reason
        assert session.state == S.ERROR
        events = [described(e) for e in iter(session.next_event, None)]
        assert events == [("SessionClosed", exc.reason, exc.message, False)]
        (bye,) = peer.received()
        assert isinstance(bye, Bye) and bye.reason == exc.reason
        return
    assert outcome is not None, "accepted %r (%s)" % (message, plaintext.hex())
    state, events, frames = outcome
    assert session.state == state
    assert [described(e) for e in iter(session.next_event, None)] == events
    assert peer.received() == frames


refs = st.integers(0, (1 << 32) - 1)
entry_items = st.lists(st.binary(max_size=20), min_size=1, max_size=4)
ascii_reason = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=MAX_REASON
)
messages = st.one_of(
    st.builds(Hello, st.integers(0, 1), st.integers(0, 1 << 40), st.integers(0, 65519)),
    st.builds(
        Interest,
        st.lists(
            st.builds(LogDeclaration, refs, st.text(max_size=40), st.binary(max_size=40)).filter(
                lambda log: len(log.address.encode()) <= 255
            ),
            max_size=3,
        ),
    ),
    st.builds(Reconcile, refs, st.binary(max_size=60)),
    st.builds(Entries, refs, entry_items, st.booleans()),
    st.builds(Entries, refs, st.just([])),
    st.builds(Ack, refs, st.integers(0, 1 << 32), st.integers(0, 1 << 40)),
    st.builds(Pairing, st.integers(0, 255), st.binary(max_size=40)),
    st.builds(Bye, ascii_reason, st.text(max_size=MAX_BYE_TEXT // 4)),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_plaintext_is_handled_as_documented_or_refused_with_bye(data: bytes) -> None:
    check_plaintext(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(1, 9)), st.binary(max_size=120))
def test_random_body_of_each_type(message_type: int, body: bytes) -> None:
    check_plaintext(bytes((message_type,)) + body)


@settings(max_examples=120, deadline=None)
@given(messages)
def test_every_prefix_of_a_valid_message(message: Message) -> None:
    encoded = encode_message(message)
    for cut in range(len(encoded) + 1):
        check_plaintext(encoded[:cut])
