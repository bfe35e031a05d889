"""node.crypto.noise: every error path, with the real (PyNaCl) suite."""

import hashlib

import pytest

from node.crypto._nacl import NaclSuite
from node.crypto.noise import (
    _LOW_ORDER_POINTS,
    MAX_MESSAGE_LEN,
    MAX_NONCE,
    MAX_TRANSPORT_PAYLOAD,
    PROTOCOL_NAME,
    CipherState,
    NoiseHandshake,
    NoiseTransport,
    SymmetricState,
    is_low_order,
)
from node.errors import (
    REASON_INTEGRITY,
    REASON_MALFORMED,
    REASON_TOO_LARGE,
    IntegrityError,
    LocalProtocolError,
    RemoteProtocolError,
)

SUITE = NaclSuite()


def new_pair(prologue: bytes = b"waystation/1") -> tuple[NoiseHandshake, NoiseHandshake]:
    return (
        NoiseHandshake(SUITE, True, SUITE.random_bytes(32), prologue=prologue),
        NoiseHandshake(SUITE, False, SUITE.random_bytes(32), prologue=prologue),
    )


def completed() -> tuple[NoiseHandshake, NoiseHandshake]:
    initiator, responder = new_pair()
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    responder.read_message(initiator.write_message())
    return initiator, responder


def test_message_sizes() -> None:
    initiator, responder = new_pair()
    first = initiator.write_message(b"abc")
    assert len(first) == 32 + 3
    assert first.endswith(b"abc")  # message 1 payload is not encrypted (no key yet)
    responder.read_message(first)
    second = responder.write_message(b"abcd")
    assert len(second) == 32 + 48 + 4 + 16
    initiator.read_message(second)
    third = initiator.write_message(b"")
    assert len(third) == 48 + 16
    responder.read_message(third)
    assert initiator.is_complete() and responder.is_complete()


def test_turns() -> None:
    initiator, responder = new_pair()
    assert initiator.is_my_turn() and not responder.is_my_turn()
    with pytest.raises(LocalProtocolError, match="not our turn to write"):
        responder.write_message()
    with pytest.raises(LocalProtocolError, match="not our turn to read"):
        initiator.read_message(b"\x00" * 32)
    responder.read_message(initiator.write_message())
    with pytest.raises(LocalProtocolError, match="not our turn to write"):
        initiator.write_message()
    with pytest.raises(LocalProtocolError, match="not our turn to read"):
        responder.read_message(b"\x00" * 96)
    with pytest.raises(LocalProtocolError, match="not complete"):
        initiator.transport()


def test_after_completion() -> None:
    initiator, responder = completed()
    for side in (initiator, responder):
        assert not side.is_my_turn()
        with pytest.raises(LocalProtocolError, match="already complete"):
            side.write_message()
        with pytest.raises(LocalProtocolError, match="already complete"):
            side.read_message(b"\x00" * 64)
        side.transport()
        with pytest.raises(LocalProtocolError, match="already taken"):
            side.transport()


def test_handshake_hash_and_remote_static() -> None:
    initiator, responder = new_pair()
    assert initiator.remote_static is None and responder.remote_static is None
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    assert initiator.remote_static == responder.static_public
    assert responder.remote_static is None  # the initiator's key arrives in message 3
    responder.read_message(initiator.write_message())
    assert responder.remote_static == initiator.static_public
    assert len(initiator.get_handshake_hash()) == 64
    ours, theirs = initiator.transport(), responder.transport()
    assert ours.get_handshake_hash() == theirs.get_handshake_hash() == ours.handshake_hash
    assert ours.remote_static == theirs.local_static and ours.initiator and not theirs.initiator


@pytest.mark.parametrize("index", [0, 1, 2])
def test_short_handshake_message(index: int) -> None:
    initiator, responder = new_pair()
    minimum = (32, 96, 64)[index]
    for step in range(index):
        writer, reader = (initiator, responder) if step % 2 == 0 else (responder, initiator)
        reader.read_message(writer.write_message())
    reader = responder if index % 2 == 0 else initiator
    with pytest.raises(RemoteProtocolError, match="at least %d" % minimum) as caught:
        reader.read_message(b"\x00" * (minimum - 1))
    assert caught.value.reason == REASON_MALFORMED
    with pytest.raises(LocalProtocolError, match="already failed"):
        reader.read_message(b"\x00" * minimum)
    with pytest.raises(LocalProtocolError, match="already failed"):
        reader.write_message()


def test_oversize_handshake_message() -> None:
    initiator, responder = new_pair()
    with pytest.raises(LocalProtocolError, match="too long"):
        initiator.write_message(bytes(MAX_MESSAGE_LEN - 31))
    assert len(initiator.write_message(bytes(MAX_MESSAGE_LEN - 32))) == MAX_MESSAGE_LEN
    with pytest.raises(RemoteProtocolError, match="exceeds") as caught:
        responder.read_message(bytes(MAX_MESSAGE_LEN + 1))
    assert caught.value.reason == REASON_TOO_LARGE


def test_low_order_points_are_what_libsodium_rejects() -> None:
    assert len(set(_LOW_ORDER_POINTS)) == 7
    for point in _LOW_ORDER_POINTS:
        with pytest.raises(IntegrityError):
            SUITE.x25519(SUITE.random_bytes(32), point)
        high_bit = point[:31] + bytes((point[31] | 0x80,))
        assert is_low_order(point) and is_low_order(high_bit)
    for _ in range(50):
        assert not is_low_order(SUITE.x25519_public(SUITE.random_bytes(32)))
    assert not is_low_order(b"\x00" * 31)


@pytest.mark.parametrize("point", _LOW_ORDER_POINTS, ids=lambda p: p[:4].hex())
def test_low_order_ephemeral_rejected(point: bytes) -> None:
    _, responder = new_pair()
    with pytest.raises(IntegrityError, match="low-order ephemeral"):
        responder.read_message(point)


def test_low_order_static_rejected() -> None:
    initiator, responder = new_pair()
    responder.read_message(initiator.write_message())
    responder._static_public = _LOW_ORDER_POINTS[2]  # a hostile responder
    with pytest.raises(IntegrityError, match="low-order static") as caught:
        initiator.read_message(responder.write_message())
    assert caught.value.reason == REASON_INTEGRITY


def test_bad_keys_from_caller() -> None:
    with pytest.raises(LocalProtocolError):
        NoiseHandshake(SUITE, True, b"short")
    with pytest.raises(LocalProtocolError):
        NoiseHandshake(SUITE, True, bytes(32), ephemeral_private=b"short")


def test_cipher_state_nonce_limit() -> None:
    key = bytes(range(32))
    sender, receiver = CipherState(SUITE, key), CipherState(SUITE, key)
    sender.set_nonce(MAX_NONCE - 1)
    receiver.set_nonce(MAX_NONCE - 1)
    wire = sender.encrypt_with_ad(b"ad", b"last")
    # nonce 2^64-2 is 4 zero bytes then the counter little-endian
    assert wire == SUITE.aead_seal(
        key, bytes(4) + (MAX_NONCE - 1).to_bytes(8, "little"), b"ad", b"last"
    )
    assert receiver.decrypt_with_ad(b"ad", wire) == b"last"
    with pytest.raises(LocalProtocolError, match="exhausted"):
        sender.encrypt_with_ad(b"ad", b"one too many")
    with pytest.raises(RemoteProtocolError, match="exhausted"):
        receiver.decrypt_with_ad(b"ad", wire)
    with pytest.raises(LocalProtocolError):
        sender.set_nonce(MAX_NONCE + 1)


def test_cipher_state_without_key_and_failed_decrypt() -> None:
    empty = CipherState(SUITE)
    assert not empty.has_key()
    assert empty.encrypt_with_ad(b"", b"clear") == b"clear"
    keyed = CipherState(SUITE, bytes(32))
    with pytest.raises(IntegrityError, match="shorter"):
        keyed.decrypt_with_ad(b"", bytes(15))
    with pytest.raises(IntegrityError):
        keyed.decrypt_with_ad(b"", bytes(16))
    assert keyed.nonce == 0  # not advanced on failure


def test_long_protocol_name_is_hashed() -> None:
    name = b"Noise_" + b"X" * 80
    assert SymmetricState(SUITE, name).h == hashlib.blake2b(name).digest()
    assert SymmetricState(SUITE).h == PROTOCOL_NAME + bytes(64 - len(PROTOCOL_NAME))


def transports() -> tuple[NoiseTransport, NoiseTransport]:
    initiator, responder = completed()
    return initiator.transport(), responder.transport()


def test_transport_limits() -> None:
    ours, theirs = transports()
    with pytest.raises(LocalProtocolError, match="exceeds"):
        ours.encrypt(bytes(MAX_TRANSPORT_PAYLOAD + 1))
    wire = ours.encrypt(bytes(MAX_TRANSPORT_PAYLOAD))
    assert len(wire) == MAX_MESSAGE_LEN
    assert theirs.decrypt(wire) == bytes(MAX_TRANSPORT_PAYLOAD)
    with pytest.raises(RemoteProtocolError, match="exceeds") as caught:
        theirs.decrypt(bytes(MAX_MESSAGE_LEN + 1))
    assert caught.value.reason == REASON_TOO_LARGE


def test_transport_receive_side_closes_after_failure() -> None:
    ours, theirs = transports()
    good = ours.encrypt(b"hello")
    with pytest.raises(IntegrityError):
        theirs.decrypt(good[:-1] + bytes((good[-1] ^ 1,)))
    with pytest.raises(LocalProtocolError, match="already rejected"):
        theirs.decrypt(good)
    # the sending direction still works, e.g. to say bye
    assert ours.decrypt(theirs.encrypt(b"bye")) == b"bye"


def test_transport_replay_and_reorder_rejected() -> None:
    ours, theirs = transports()
    ours.encrypt(b"1")
    second = ours.encrypt(b"2")
    with pytest.raises(IntegrityError):
        theirs.decrypt(second)
    ours, theirs = transports()
    first = ours.encrypt(b"1")
    assert theirs.decrypt(first) == b"1"
    with pytest.raises(IntegrityError):
        theirs.decrypt(first)
    assert theirs.send_nonce == 0 and theirs.receive_nonce == 1 and ours.send_nonce == 1


def test_associated_data_must_match() -> None:
    ours, theirs = transports()
    wire = ours.encrypt(b"x", associated=b"frame-header")
    with pytest.raises(IntegrityError):
        theirs.decrypt(wire, associated=b"other")


def test_ephemeral_from_suite_random_bytes() -> None:
    drawn: list[int] = []

    class CountingSuite(NaclSuite):
        def random_bytes(self, n: int) -> bytes:
            drawn.append(n)
            return super().random_bytes(n)

    suite = CountingSuite()
    initiator = NoiseHandshake(suite, True, bytes(range(32)))
    assert drawn == []
    initiator.write_message()
    assert drawn == [32]
