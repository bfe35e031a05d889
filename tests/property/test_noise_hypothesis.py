"""Properties of node.crypto.noise: agreement, and every tampering detected as a protocol error."""

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto._nacl import NaclSuite
from node.crypto.noise import MAX_TRANSPORT_PAYLOAD, NoiseHandshake, NoiseTransport
from node.errors import RemoteProtocolError

SUITE = NaclSuite()

keys = st.binary(min_size=32, max_size=32)
prologues = st.binary(max_size=64)
payloads = st.binary(max_size=200)
three_payloads = st.lists(payloads, min_size=3, max_size=3)


def pair(prologue: bytes, seed: bytes) -> tuple[NoiseHandshake, NoiseHandshake]:
    # Distinct static keys derived from one drawn value; ephemeral keys come from the suite.
    init_static = SUITE.digest("blake2b", b"i" + seed)[:32]
    resp_static = SUITE.digest("blake2b", b"r" + seed)[:32]
    return (
        NoiseHandshake(SUITE, True, init_static, prologue=prologue),
        NoiseHandshake(SUITE, False, resp_static, prologue=prologue),
    )


def run_handshake(
    initiator: NoiseHandshake,
    responder: NoiseHandshake,
    handshake_payloads: list[bytes],
    tamper_index: int = -1,
    tamper: Callable[[bytes], bytes] | None = None,
) -> None:
    """Three messages; message `tamper_index` goes through `tamper` (a bytes -> bytes callable)."""
    for index, payload in enumerate(handshake_payloads):
        writer, reader = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        wire = writer.write_message(payload)
        if index == tamper_index:
            assert tamper is not None
            wire = tamper(wire)
        got = reader.read_message(wire)
        if index != tamper_index:
            assert got == payload


@settings(deadline=None)
@given(prologue=prologues, seed=keys, handshake_payloads=three_payloads, data=st.data())
def test_both_sides_agree(
    prologue: bytes, seed: bytes, handshake_payloads: list[bytes], data: st.DataObject
) -> None:
    initiator, responder = pair(prologue, seed)
    run_handshake(initiator, responder, handshake_payloads)
    assert initiator.is_complete() and responder.is_complete()
    assert initiator.get_handshake_hash() == responder.get_handshake_hash()
    assert initiator.remote_static == responder.static_public
    assert responder.remote_static == initiator.static_public
    ours, theirs = initiator.transport(), responder.transport()
    for from_initiator, message in data.draw(st.lists(st.tuples(st.booleans(), payloads))):
        sender, receiver = (ours, theirs) if from_initiator else (theirs, ours)
        assert receiver.decrypt(sender.encrypt(message)) == message


def flip(bit: int) -> Callable[[bytes], bytes]:
    def apply(wire: bytes) -> bytes:
        position = bit % (len(wire) * 8)
        changed = bytearray(wire)
        changed[position // 8] ^= 1 << (position % 8)
        return bytes(changed)

    return apply


def assert_handshake_fails(
    initiator: NoiseHandshake,
    responder: NoiseHandshake,
    handshake_payloads: list[bytes],
    tamper_index: int,
    tamper: Callable[[bytes], bytes] | None,
) -> None:
    # Only RemoteProtocolError (IntegrityError included) may come out; anything else propagates
    # and fails the test. Message 1 is plaintext, so its damage shows when message 2 is read.
    try:
        run_handshake(initiator, responder, handshake_payloads, tamper_index, tamper)
    except RemoteProtocolError:
        assert not (initiator.is_complete() and responder.is_complete())
        return
    raise AssertionError("tampered handshake message %d was accepted" % tamper_index)


@settings(deadline=None)
@given(
    prologue=prologues,
    seed=keys,
    handshake_payloads=three_payloads,
    index=st.integers(0, 2),
    bit=st.integers(0, 1 << 20),
)
def test_handshake_bit_flip_detected(
    prologue: bytes, seed: bytes, handshake_payloads: list[bytes], index: int, bit: int
) -> None:
    initiator, responder = pair(prologue, seed)
    assert_handshake_fails(initiator, responder, handshake_payloads, index, flip(bit))


@settings(deadline=None)
@given(
    prologue=prologues,
    seed=keys,
    handshake_payloads=three_payloads,
    index=st.integers(0, 2),
    cut=st.integers(1, 1 << 20),
)
def test_handshake_truncation_detected(
    prologue: bytes, seed: bytes, handshake_payloads: list[bytes], index: int, cut: int
) -> None:
    initiator, responder = pair(prologue, seed)

    def truncate(wire: bytes) -> bytes:
        return wire[: len(wire) - 1 - (cut % len(wire))]

    assert_handshake_fails(initiator, responder, handshake_payloads, index, truncate)


@settings(deadline=None)
@given(
    prologue=prologues,
    seed=keys,
    handshake_payloads=three_payloads,
    index=st.integers(0, 2),
    extra=st.binary(min_size=1, max_size=40),
)
def test_handshake_appended_bytes_detected(
    prologue: bytes, seed: bytes, handshake_payloads: list[bytes], index: int, extra: bytes
) -> None:
    initiator, responder = pair(prologue, seed)
    assert_handshake_fails(
        initiator, responder, handshake_payloads, index, lambda wire: wire + extra
    )


@settings(deadline=None)
@given(
    prologue=prologues,
    handshake_payloads=three_payloads,
    index=st.integers(0, 2),
    wrong_prologue=prologues,
)
def test_prologue_mismatch_detected(
    prologue: bytes, handshake_payloads: list[bytes], index: int, wrong_prologue: bytes
) -> None:
    if prologue == wrong_prologue:
        wrong_prologue += b"!"
    initiator = NoiseHandshake(SUITE, True, SUITE.random_bytes(32), prologue=prologue)
    responder = NoiseHandshake(SUITE, False, SUITE.random_bytes(32), prologue=wrong_prologue)
    assert_handshake_fails(initiator, responder, handshake_payloads, -1, None)


def transports(seed: bytes) -> tuple[NoiseTransport, NoiseTransport]:
    initiator, responder = pair(b"waystation/1", seed)
    run_handshake(initiator, responder, [b"", b"", b""])
    return initiator.transport(), responder.transport()


@settings(deadline=None)
@given(
    seed=keys,
    before=st.lists(payloads, max_size=3),
    message=payloads,
    bit=st.integers(0, 1 << 20),
    from_initiator=st.booleans(),
)
def test_transport_bit_flip_detected(
    seed: bytes, before: list[bytes], message: bytes, bit: int, from_initiator: bool
) -> None:
    ours, theirs = transports(seed)
    sender, receiver = (ours, theirs) if from_initiator else (theirs, ours)
    for earlier in before:
        assert receiver.decrypt(sender.encrypt(earlier)) == earlier
    wire = flip(bit)(sender.encrypt(message))
    try:
        receiver.decrypt(wire)
    except RemoteProtocolError:
        return
    raise AssertionError("flipped transport message accepted")


@settings(deadline=None)
@given(seed=keys, message=payloads, keep=st.integers(0, 1 << 20))
def test_transport_truncation_detected(seed: bytes, message: bytes, keep: int) -> None:
    ours, theirs = transports(seed)
    wire = ours.encrypt(message)
    try:
        theirs.decrypt(wire[: keep % len(wire)])
    except RemoteProtocolError:
        return
    raise AssertionError("truncated transport message accepted")


@settings(deadline=None, max_examples=20)
@given(seed=keys, size=st.integers(0, MAX_TRANSPORT_PAYLOAD))
def test_transport_sizes_up_to_limit(seed: bytes, size: int) -> None:
    ours, theirs = transports(seed)
    message = bytes(size)
    wire = ours.encrypt(message)
    assert len(wire) == size + 16
    assert theirs.decrypt(wire) == message
