"""node.crypto.ratchet with the PyNaCl suite: weshnet's ratchet, window, queue and bounds."""

import pytest

from node.crypto import envelope as env
from node.crypto import ratchet as rt
from node.crypto._nacl import NaclSuite
from node.crypto.kdf import hkdf
from node.errors import IntegrityError

SUITE = NaclSuite()
GROUP_PK, _ = SUITE.ed25519_keypair(b"\x01" * 32)
SECRET = b"\x02" * 32
ALICE_PK, ALICE_SK = SUITE.ed25519_keypair(b"\x03" * 32)
BOB_PK, BOB_SK = SUITE.ed25519_keypair(b"\x04" * 32)
CAROL_PK, CAROL_SK = SUITE.ed25519_keypair(b"\x05" * 32)


def sender(device_pk: bytes = ALICE_PK, chain_key: bytes = b"\x07" * 32) -> rt.RatchetState:
    state = rt.RatchetState(SUITE, GROUP_PK, device_pk)
    state.start_own_chain(chain_key)
    return state


def send(state: rt.RatchetState, sk: bytes, count: int) -> list[tuple[bytes, bytes]]:
    """(cid, envelope) of `count` messages; cid is a stand-in for the log entry's CID."""
    out = []
    for _ in range(count):
        counter = state.own_counter + 1
        envelope = state.seal(SECRET, sk, b"msg %d" % counter)
        out.append((b"cid-" + sk[32:36] + b"-%d" % counter, envelope))
    return out


def kinds(events: list[rt.RatchetEvent]) -> list[str]:
    return [e.kind for e in events]


def decrypted(events: list[rt.RatchetEvent]) -> list[int]:
    return [e.counter for e in events if e.kind == rt.DECRYPTED]


def test_kdf_matches_hkdf_definition() -> None:
    ck = b"\x07" * 32
    okm = hkdf(SUITE, "sha256", ck, b"", GROUP_PK, 64)
    assert rt.derive_next_keys(SUITE, ck, GROUP_PK) == (okm[:32], okm[32:])
    # RFC 5869 with salt = nil is HMAC(32 zero bytes, ikm) then expand; check via hmac directly
    prk = SUITE.hmac("sha256", bytes(32), ck)
    t1 = SUITE.hmac("sha256", prk, GROUP_PK + b"\x01")
    t2 = SUITE.hmac("sha256", prk, t1 + GROUP_PK + b"\x02")
    assert okm == t1 + t2


def test_send_counters_and_keys() -> None:
    alice = sender()
    ck0, n0 = alice.own_chain()
    assert n0 == 0
    counter, mk = alice.next_send_key()
    assert counter == 1
    assert (alice.own_chain_key, mk) == rt.derive_next_keys(SUITE, ck0, GROUP_PK)


def test_in_order() -> None:
    alice = sender()
    shared = alice.own_chain()
    msgs = send(alice, ALICE_SK, 5)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    assert bob.register_chain_key(ALICE_PK, *shared) == []
    for i, (cid, envelope) in enumerate(msgs, 1):
        events = bob.receive_envelope(cid, envelope, SECRET)
        assert kinds(events) == [rt.DECRYPTED]
        assert events[0].plaintext == b"msg %d" % i and events[0].counter == i
    assert len(bob.devices[ALICE_PK].keys) == rt.WINDOW


def test_out_of_order_and_duplicates() -> None:
    alice = sender()
    shared = alice.own_chain()
    msgs = send(alice, ALICE_SK, 10)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    bob.register_chain_key(ALICE_PK, *shared)
    for index in [9, 0, 5, 3, 1, 2, 8, 4, 6, 7]:
        cid, envelope = msgs[index]
        assert decrypted(bob.receive_envelope(cid, envelope, SECRET)) == [index + 1]
    for cid, envelope in msgs:  # re-read by CID: DUPLICATE with the plaintext
        events = bob.receive_envelope(cid, envelope, SECRET)
        assert kinds(events) == [rt.DUPLICATE]
        assert events[0].plaintext is not None and events[0].reason == "re-read"
    # the same message under another id: duplicate, not decrypted twice
    events = bob.receive_envelope(b"other-id", msgs[0][1], SECRET)
    assert kinds(events) == [rt.DUPLICATE] and "same message" in events[0].reason


def test_window_edges() -> None:
    alice = sender()
    shared = alice.own_chain()
    msgs = send(alice, ALICE_SK, 102)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    bob.register_chain_key(ALICE_PK, *shared)
    assert sorted(bob.devices[ALICE_PK].keys) == list(range(1, 101))
    assert kinds(bob.receive_envelope(*msgs[100], SECRET)) == [rt.QUEUED]  # 101
    assert kinds(bob.receive_envelope(*msgs[101], SECRET)) == [rt.QUEUED]  # 102
    assert bob.queued() == [(msgs[100][0], ALICE_PK, 101), (msgs[101][0], ALICE_PK, 102)]
    # one decryption slides the window by one: 101 opens, which slides it again: 102 opens
    assert decrypted(bob.receive_envelope(*msgs[50], SECRET)) == [51, 101, 102]
    assert bob.queued() == [] and bob.queue_count == 0 and bob.queue_bytes == 0


def test_late_chain_key() -> None:
    alice = sender()
    shared = alice.own_chain()
    msgs = send(alice, ALICE_SK, 4)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    for cid, envelope in reversed(msgs):
        assert kinds(bob.receive_envelope(cid, envelope, SECRET)) == [rt.QUEUED]
    assert kinds(bob.receive_envelope(*msgs[0], SECRET)) == [rt.QUEUED]  # idempotent
    assert bob.queue_count == 4
    events = bob.register_chain_key(ALICE_PK, *shared)
    assert decrypted(events) == [1, 2, 3, 4]
    assert [e.plaintext for e in events] == [b"msg 1", b"msg 2", b"msg 3", b"msg 4"]
    assert bob.register_chain_key(ALICE_PK, *shared) == []  # second key ignored


def test_joiner_cannot_read_earlier_messages() -> None:
    alice = sender()
    early = send(alice, ALICE_SK, 3)
    shared = alice.own_chain()  # (CK_3, 3)
    late = send(alice, ALICE_SK, 2)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    bob.receive_envelope(*early[0], SECRET)
    events = bob.register_chain_key(ALICE_PK, *shared)
    assert kinds(events) == [rt.UNREADABLE]
    assert kinds(bob.receive_envelope(*early[1], SECRET)) == [rt.UNREADABLE]
    assert decrypted(bob.receive_envelope(*late[0], SECRET)) == [4]


def test_own_message_reread() -> None:
    alice = sender()
    msgs = send(alice, ALICE_SK, 2)
    events = alice.receive_envelope(*msgs[1], SECRET)
    assert decrypted(events) == [2] and events[0].plaintext == b"msg 2"
    assert kinds(alice.receive_envelope(*msgs[1], SECRET)) == [rt.DUPLICATE]
    assert alice.receive_envelope(*msgs[1], SECRET)[0].plaintext == b"msg 2"
    assert decrypted(alice.receive_envelope(*msgs[0], SECRET)) == [1]
    assert alice.own_sent == {}


def test_tampering_rejected() -> None:
    alice = sender()
    shared = alice.own_chain()
    cid, envelope = send(alice, ALICE_SK, 1)[0]
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    bob.register_chain_key(ALICE_PK, *shared)
    sealed = env.open_message_headers(SUITE, SECRET, envelope)
    flipped = env.SealedMessage(
        sealed.counter,
        sealed.device_pk,
        sealed.sig,
        {},
        sealed.ciphertext[:-1] + bytes((sealed.ciphertext[-1] ^ 1,)),
    )
    with pytest.raises(IntegrityError):
        bob.receive(cid, flipped)
    bad_sig = env.SealedMessage(sealed.counter, sealed.device_pk, bytes(64), {}, sealed.ciphertext)
    with pytest.raises(IntegrityError, match="signature"):
        bob.receive(cid, bad_sig)
    with pytest.raises(IntegrityError):  # headers box tampered
        bob.receive_envelope(cid, envelope[:5] + bytes([envelope[5] ^ 1]) + envelope[6:], SECRET)
    assert decrypted(bob.receive_envelope(cid, envelope, SECRET)) == [1]  # key not consumed
    # a known id presented with other headers
    with pytest.raises(IntegrityError):
        bob.receive(cid, env.SealedMessage(2, ALICE_PK, bytes(64), {}, b""))


def test_queued_forgery_rejected_when_key_arrives() -> None:
    alice = sender()
    shared = alice.own_chain()
    cid, envelope = send(alice, ALICE_SK, 1)[0]
    sealed = env.open_message_headers(SUITE, SECRET, envelope)
    forged = env.SealedMessage(1, ALICE_PK, sealed.sig, {}, b"\x00" * 40)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    bob.receive(b"forged", forged)
    bob.receive(cid, sealed)
    events = bob.register_chain_key(ALICE_PK, *shared)
    by_cid = {e.cid: e.kind for e in events}
    assert by_cid == {b"forged": rt.REJECTED, cid: rt.DECRYPTED}


def test_queue_bound_per_device_drops_highest() -> None:
    alice = sender()
    msgs = send(alice, ALICE_SK, 6)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK, max_queue_per_device=3)
    for index in [1, 4, 2]:
        assert kinds(bob.receive_envelope(*msgs[index], SECRET)) == [rt.QUEUED]
    events = bob.receive_envelope(*msgs[0], SECRET)  # counter 1 pushes out counter 5
    assert [(e.kind, e.counter) for e in events] == [(rt.QUEUED, 1), (rt.DROPPED, 5)]
    events = bob.receive_envelope(*msgs[5], SECRET)  # counter 6 is itself the highest: refused
    assert [(e.kind, e.counter) for e in events] == [(rt.DROPPED, 6)]
    assert [c for _, _, c in bob.queued()] == [1, 2, 3]


def test_queue_bound_total() -> None:
    alice = sender()
    carol = sender(CAROL_PK, b"\x08" * 32)
    a_msgs = send(alice, ALICE_SK, 3)
    c_msgs = send(carol, CAROL_SK, 1)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK, max_queue_total=3)
    for m in a_msgs:
        bob.receive_envelope(*m, SECRET)
    events = bob.receive_envelope(*c_msgs[0], SECRET)  # alice has the longest queue
    assert [(e.kind, e.device_pk, e.counter) for e in events] == [
        (rt.QUEUED, CAROL_PK, 1),
        (rt.DROPPED, ALICE_PK, 3),
    ]
    assert bob.queue_count == 3


def test_queue_bound_bytes() -> None:
    alice = sender()
    msgs = send(alice, ALICE_SK, 2)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK, max_queue_bytes=300)
    assert kinds(bob.receive_envelope(*msgs[0], SECRET)) == [rt.QUEUED]
    assert kinds(bob.receive_envelope(*msgs[1], SECRET)) == [rt.DROPPED]


def test_state_round_trip() -> None:
    alice = sender()
    shared = alice.own_chain()
    msgs = send(alice, ALICE_SK, 105)
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    bob.start_own_chain(b"\x09" * 32)
    bob_msgs = send(bob, BOB_SK, 2)
    bob.receive_envelope(*msgs[104], SECRET)  # queued (no key)
    bob.register_chain_key(ALICE_PK, *shared)
    bob.receive_envelope(*msgs[0], SECRET)
    bob.receive_envelope(*bob_msgs[0], SECRET)
    saved = bob.to_dict()
    restored = rt.RatchetState.from_dict(SUITE, saved)
    assert restored.to_dict() == saved
    assert restored.queue_count == bob.queue_count == 1
    assert kinds(restored.receive_envelope(*msgs[0], SECRET)) == [rt.DUPLICATE]
    assert decrypted(restored.receive_envelope(*msgs[2], SECRET)) == [3]
    assert decrypted(restored.receive_envelope(*bob_msgs[1], SECRET)) == [2]
    assert decrypted(restored.receive_envelope(*msgs[1], SECRET)) == [2]
    assert decrypted(restored.receive_envelope(*msgs[3], SECRET)) == [4]
    assert decrypted(restored.receive_envelope(*msgs[4], SECRET)) == [5, 105]  # window reached 105
