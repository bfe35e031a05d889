"""The link session over an in-memory link: handshake, messages, credits, deadlines, peers."""

from __future__ import annotations

import pytest

from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError
from node.proto import _states as S
from node.proto.messages import (
    ENTRIES,
    Ack,
    Bye,
    Entries,
    Hello,
    LogDeclaration,
    Pairing,
    Reconcile,
    encode_message,
)
from node.proto.session import (
    AckReceived,
    EntriesReceived,
    HandshakeCompleted,
    InterestReceived,
    PairingReceived,
    ReconcileReceived,
    Session,
    SessionClosed,
    SessionLimits,
    SessionOpened,
)
from tests.session_helpers import SUITE, RawPeer, SessionPair


def open_pair(limits: SessionLimits | None = None) -> SessionPair:
    pair = SessionPair(limits)
    pair.transfer()
    assert pair.client.is_open and pair.server.is_open
    return pair


def test_handshake_then_hello_opens_both_sides() -> None:
    pair = SessionPair()
    pair.transfer()
    for me, peer in ((pair.client, pair.server), (pair.server, pair.client)):
        events = pair.events(me)
        assert isinstance(events[0], HandshakeCompleted)
        assert isinstance(events[1], SessionOpened)
        assert events[1].hello == peer.local_hello
        assert me.handshake_hash == peer.handshake_hash
        assert me.send_credit == peer.limits.window


@pytest.mark.parametrize("client_sends", [True, False])
def test_messages_reach_the_other_side(client_sends: bool) -> None:
    pair = open_pair()
    pair.events(pair.client), pair.events(pair.server)
    src, dst = (pair.client, pair.server) if client_sends else (pair.server, pair.client)
    logs = [LogDeclaration(0, "/orbitdb/bafy/abc_berty_group_messages", b"\x01" * 96)]
    src.send_interest(logs, 1)
    src.send_reconcile(0, b"ranges", 1)
    assert src.send_entries(0, [b"one", b"two"], 1) == 2
    src.send_ack(0, 2, 100, 1)
    src.send_pairing(1, b"spake2-message", 1)
    pair.transfer()
    events = pair.events(dst)
    assert [type(e) for e in events] == [
        InterestReceived,
        ReconcileReceived,
        EntriesReceived,
        AckReceived,
        PairingReceived,
    ]
    assert events[0].logs == logs
    assert (events[1].ref, events[1].data) == (0, b"ranges")
    assert (events[2].ref, events[2].items) == (0, [b"one", b"two"])
    assert (events[3].stored, events[3].credit) == (2, 100)
    assert (events[4].step, events[4].data) == (1, b"spake2-message")


def test_large_entry_is_split_and_reassembled() -> None:
    pair = open_pair()
    big = bytes(range(256)) * 800  # 204800 bytes, over one message
    assert pair.client.send_entries(7, [b"a", big, b"z"], 1) == 3
    frames = pair.client.frames_to_send()
    assert len(frames) >= 5
    for frame in frames:
        pair.server.receive_frame(frame, 1)
    items = [i for e in pair.events(pair.server) if isinstance(e, EntriesReceived) for i in e.items]
    assert items == [b"a", big, b"z"]


def test_credit_limits_what_is_sent_and_acks_grant_more() -> None:
    limits = SessionLimits(window=65536)
    pair = open_pair(limits)
    items = [bytes(1000)] * 100
    sent = pair.client.send_entries(0, items, 1)
    assert 0 < sent < 100
    assert pair.client.send_credit >= 0
    assert pair.client.send_entries(0, items[sent:], 1) == 0
    pair.transfer()
    received = sum(e.size for e in pair.events(pair.server) if isinstance(e, EntriesReceived))
    pair.server.send_ack(0, sent, received, 2)
    pair.transfer()
    assert pair.client.send_entries(0, items[sent:], 3) > 0


def test_peer_exceeding_its_window_loses_the_link() -> None:
    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0, SessionLimits(window=65536))
    peer = RawPeer(server)
    peer.handshake_step()
    peer.send(Hello(0, 65536))
    server_events = []
    with pytest.raises(RemoteProtocolError) as err:
        for _ in range(10):
            peer.send(Entries(0, [bytes(60000)]))
    assert err.value.reason == "flow"
    assert server.state == S.ERROR
    while (e := server.next_event()) is not None:
        server_events.append(e)
    assert isinstance(server_events[-1], SessionClosed)
    bye = peer.received()[-1]
    assert isinstance(bye, Bye) and bye.reason == "flow"


def test_garbage_frame_after_handshake_is_an_integrity_error_with_bye() -> None:
    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(server)
    peer.handshake_step()
    with pytest.raises(IntegrityError):
        server.receive_frame(b"\x00" * 40, 0)
    assert server.state == S.ERROR
    assert isinstance(peer.received()[-1], Bye)
    with pytest.raises(LocalProtocolError):
        server.receive_frame(b"more", 0)


def test_garbage_during_handshake_ends_without_bye() -> None:
    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    with pytest.raises(RemoteProtocolError):
        server.receive_frame(b"short", 0)
    assert server.state == S.ERROR
    assert server.frames_to_send() == []


def test_second_hello_is_unexpected() -> None:
    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(server)
    peer.handshake_step()
    peer.send(Hello(0, 65536))
    with pytest.raises(RemoteProtocolError) as err:
        peer.send(Hello(0, 65536))
    assert err.value.reason == "unexpected"


def test_message_before_hello_is_unexpected() -> None:
    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(server)
    peer.handshake_step()
    with pytest.raises(RemoteProtocolError):
        peer.send(Reconcile(0, b"x"))


def test_small_window_in_hello_is_refused() -> None:
    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(server)
    peer.handshake_step()
    with pytest.raises(RemoteProtocolError, match="window"):
        peer.send(Hello(0, 100))


def test_handshake_deadline_closes() -> None:
    client = Session(SUITE, True, SUITE.random_bytes(32), 0, 0, SessionLimits(handshake_timeout=5))
    assert client.get_timer() == 5
    client.handle_timer(4)
    assert client.state == S.AWAIT_HANDSHAKE
    client.handle_timer(5)
    assert client.state == S.CLOSED
    assert client.get_timer() is None


def test_idle_peer_gets_keepalives_then_timeout_bye() -> None:
    limits = SessionLimits(idle_timeout=100, keepalive_interval=30, close_timeout=10)
    pair = open_pair(limits)
    pair.events(pair.client)
    assert pair.client.get_timer() == 30
    pair.client.handle_timer(30)
    frames = pair.client.frames_to_send()
    assert len(frames) == 1  # the keepalive
    pair.client.handle_timer(100)
    assert pair.client.state == S.CLOSING
    closed = [e for e in pair.events(pair.client) if isinstance(e, SessionClosed)]
    assert closed and closed[0].reason == "timeout"
    pair.client.handle_timer(110)
    assert pair.client.state == S.CLOSED


def test_keepalive_is_not_reported_as_an_ack_event() -> None:
    pair = open_pair(SessionLimits(keepalive_interval=10))
    pair.events(pair.server)
    pair.client.handle_timer(10)
    pair.transfer()
    assert pair.events(pair.server) == []
    assert pair.server.is_open


def test_close_is_answered_and_idempotent() -> None:
    pair = open_pair()
    pair.client.close("ok", "done", 1)
    pair.client.close("ok", "again", 1)
    pair.transfer()
    assert pair.client.state == S.CLOSED and pair.server.state == S.CLOSED
    server_closed = [e for e in pair.events(pair.server) if isinstance(e, SessionClosed)]
    assert server_closed[0].by_peer and server_closed[0].text == "done"


def test_sending_in_wrong_state_is_a_local_error() -> None:
    client = Session(SUITE, True, SUITE.random_bytes(32), 0, 0)
    with pytest.raises(LocalProtocolError):
        client.send_reconcile(0, b"x", 0)
    with pytest.raises(LocalProtocolError):
        client.send_entries(0, [b"x"], 0)
    assert client.state == S.AWAIT_HANDSHAKE


def test_connection_lost_closes() -> None:
    pair = open_pair()
    pair.server.connection_lost(5)
    assert pair.server.state == S.CLOSED
    assert any(isinstance(e, SessionClosed) and e.by_peer for e in pair.events(pair.server))


def test_oversize_entries_message_is_refused() -> None:
    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(server)
    peer.handshake_step()
    peer.send(Hello(0, 65536))
    with pytest.raises(RemoteProtocolError):
        peer.send_raw(bytes((ENTRIES,)) + b"\x00\x00\x01\xff\xff\x03")


def test_acks_and_pairing_in_closing_are_ignored() -> None:
    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(server)
    peer.handshake_step()
    peer.send(Hello(0, 65536))
    server.close("ok", "", 1)
    peer.send(Ack(0, 1, 1))
    peer.send(Pairing(1, b""))
    assert server.state == S.CLOSING
    peer.send(Bye("ok"))
    assert server.state == S.CLOSED


def test_non_empty_handshake_payload_is_refused() -> None:
    from node.crypto.noise import NoiseHandshake
    from node.proto.session import PROLOGUE

    server = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    hs = NoiseHandshake(SUITE, True, SUITE.random_bytes(32), PROLOGUE)
    with pytest.raises(RemoteProtocolError, match="payloads must be empty"):
        server.receive_frame(hs.write_message(b"hello in clear"), 0)
    assert server.state == S.ERROR


def _opened_responder() -> tuple[Session, RawPeer]:
    session = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(session)
    peer.handshake_step()
    peer.send(Hello(0, 65536))
    assert peer.received() == [session.local_hello]
    SessionPair.events(session)
    return session, peer


def test_messages_of_one_step_share_a_frame_and_arrive_in_order() -> None:
    pair = open_pair()
    SessionPair.events(pair.server)
    pair.client.send_reconcile(1, b"\x01\x00", 0)
    pair.client.send_ack(0, 1, 5, 0)
    pair.client.send_reconcile(1, b"\x00abc", 0)
    frames = pair.client.frames_to_send()
    assert len(frames) == 1  # one Noise message: a batch of three
    pair.server.receive_frame(frames[0], 0)
    got = [type(e).__name__ for e in SessionPair.events(pair.server)]
    assert got == ["ReconcileReceived", "AckReceived", "ReconcileReceived"]


def test_batches_are_cut_at_the_message_target() -> None:
    pair = open_pair()
    for _ in range(5):
        pair.client.send_reconcile(1, bytes(16_000), 0)  # four fit the target of 65,519
    frames = pair.client.frames_to_send()
    assert len(frames) == 2 and all(len(f) <= 65535 for f in frames)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00",  # a batch of nothing
        b"\x00\x03\x05\x00\x00",  # a batch of one message
        b"\x00\x00\x03\x05\x00\x00",  # an empty message
        b"\x00\x03\x05\x00\x00\x05\x00\x03\x05\x00\x00",  # a batch inside a batch
        b"\x00\x03\x05\x00\x00\x09\x05",  # runs past the end
    ],
)
def test_malformed_batches_cost_the_link(payload: bytes) -> None:
    session, peer = _opened_responder()
    with pytest.raises(RemoteProtocolError) as caught:
        peer.send_raw(payload)
    assert caught.value.reason == "malformed" and session.state == S.ERROR
    (bye,) = peer.received()
    assert isinstance(bye, Bye) and bye.reason == "malformed"


def test_what_follows_a_bye_in_a_batch_is_not_read() -> None:
    session, peer = _opened_responder()
    bye = encode_message(Bye("ok", ""))
    ack = encode_message(Ack(0, 1, 5))
    peer.send_raw(b"\x00" + bytes((len(bye),)) + bye + bytes((len(ack),)) + ack)
    assert session.state == S.CLOSED
    assert [type(e).__name__ for e in SessionPair.events(session)] == ["SessionClosed"]


def test_an_old_version_peer_is_refused_with_bye_version() -> None:
    session = Session(SUITE, False, SUITE.random_bytes(32), 1, 0)
    peer = RawPeer(session)
    peer.handshake_step()
    with pytest.raises(RemoteProtocolError) as caught:
        peer.send(Hello(0, 65536, version=1))
    assert caught.value.reason == "version"
    assert next(m for m in peer.received() if isinstance(m, Bye)).reason == "version"
