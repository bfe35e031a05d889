# Portable tests for node.crypto.noise: the state machine, sizes, nonces and error paths, run on
# CPython and on MicroPython over a FAKE suite (MicroPython has no X25519, ChaCha20 or BLAKE2b).
# The fake primitives are not secure; they only have the algebraic properties Noise relies on:
# a commutative DH (modular exponentiation), a keyed hash of the right length, and an AEAD whose
# tag covers key, nonce, associated data and ciphertext. Real crypto is checked against the
# published vectors in tests/test_noise_vectors.py.

import hashlib

from harness import TestCase

from node._compat import hmac_sha256
from node.crypto.api import BLAKE2B, Suite
from node.crypto.noise import (
    MAX_MESSAGE_LEN,
    MAX_NONCE,
    CipherState,
    NoiseHandshake,
    SymmetricState,
)
from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError

_P = (1 << 255) - 19


def _sha256(data):
    return hashlib.sha256(data).digest()


class FakeSuite(Suite):
    name = "fake"

    def __init__(self, seed=b"seed"):
        self.seed = seed
        self.counter = 0
        self.nonces = []

    def random_bytes(self, n):
        self.counter += 1
        return (_sha256(self.seed + str(self.counter).encode()) * 2)[:n]

    def digest(self, hash_name, data):
        assert hash_name == BLAKE2B
        return _sha256(b"\x00" + data) + _sha256(b"\x01" + data)

    def hmac(self, hash_name, key, data):
        assert hash_name == BLAKE2B
        return hmac_sha256(key, b"\x00" + data) + hmac_sha256(key, b"\x01" + data)

    def x25519_public(self, private_key):
        return pow(2, int.from_bytes(private_key, "little"), _P).to_bytes(32, "little")

    def x25519(self, private_key, public_key):
        base = int.from_bytes(public_key, "little")
        if base < 2:
            raise IntegrityError("fake low-order key")
        return pow(base, int.from_bytes(private_key, "little"), _P).to_bytes(32, "little")

    def _stream(self, key, nonce, length):
        out = b""
        block = 0
        while len(out) < length:
            out += _sha256(key + nonce + str(block).encode())
            block += 1
        return out[:length]

    def aead_seal(self, key, nonce, associated, plaintext):
        self.nonces.append(nonce)
        stream = self._stream(key, nonce, len(plaintext))
        body = bytes(plaintext[i] ^ stream[i] for i in range(len(stream)))
        return body + hmac_sha256(key, nonce + associated + body)[:16]

    def aead_open(self, key, nonce, associated, ciphertext):
        body, tag = ciphertext[:-16], ciphertext[-16:]
        if len(ciphertext) < 16 or hmac_sha256(key, nonce + associated + body)[:16] != tag:
            raise IntegrityError("fake AEAD tag did not verify")
        stream = self._stream(key, nonce, len(body))
        return bytes(body[i] ^ stream[i] for i in range(len(stream)))


def make_pair(prologue=b"waystation/1", other_prologue=None):
    suite = FakeSuite()
    initiator = NoiseHandshake(suite, True, suite.random_bytes(32), prologue)
    if other_prologue is None:
        other_prologue = prologue
    responder = NoiseHandshake(suite, False, suite.random_bytes(32), other_prologue)
    return suite, initiator, responder


def handshake(initiator, responder):
    responder.read_message(initiator.write_message(b"one"))
    initiator.read_message(responder.write_message(b"two"))
    responder.read_message(initiator.write_message(b"three"))


def flip(data, index):
    return data[:index] + bytes((data[index] ^ 1,)) + data[index + 1 :]


class NoiseStructureTests(TestCase):
    def test_handshake_and_transport(self):
        _, initiator, responder = make_pair()
        first = initiator.write_message(b"one")
        self.assertEqual(len(first), 32 + 3)
        self.assertEqual(responder.read_message(first), b"one")
        second = responder.write_message(b"two")
        self.assertEqual(len(second), 96 + 3)
        self.assertEqual(initiator.read_message(second), b"two")
        third = initiator.write_message(b"three")
        self.assertEqual(len(third), 64 + 5)
        self.assertEqual(responder.read_message(third), b"three")
        self.assertTrue(initiator.is_complete())
        self.assertEqual(initiator.get_handshake_hash(), responder.get_handshake_hash())
        self.assertEqual(initiator.remote_static, responder.static_public)
        self.assertEqual(responder.remote_static, initiator.static_public)
        ours, theirs = initiator.transport(), responder.transport()
        for i in range(3):
            message = b"m" * i
            self.assertEqual(theirs.decrypt(ours.encrypt(message)), message)
            self.assertEqual(ours.decrypt(theirs.encrypt(message)), message)
        self.assertEqual(ours.send_nonce, 3)

    def test_transport_keys_differ_per_direction(self):
        _, initiator, responder = make_pair()
        handshake(initiator, responder)
        ours, theirs = initiator.transport(), responder.transport()
        self.assertNotEqual(ours.encrypt(b"same"), theirs.encrypt(b"same"))

    def test_nonce_layout(self):
        suite = FakeSuite()
        cipher = CipherState(suite, bytes(32))
        cipher.set_nonce(0x0102030405060708)
        cipher.encrypt_with_ad(b"", b"x")
        self.assertEqual(suite.nonces[-1], bytes(4) + bytes((8, 7, 6, 5, 4, 3, 2, 1)))
        cipher.set_nonce(MAX_NONCE)
        self.assertRaises(LocalProtocolError, cipher.encrypt_with_ad, b"", b"x")

    def test_symmetric_state_initial_hash(self):
        state = SymmetricState(FakeSuite())
        self.assertEqual(state.h, b"Noise_XX_25519_ChaChaPoly_BLAKE2b" + bytes(31))
        self.assertEqual(state.ck, state.h)
        self.assertFalse(state.cipher.has_key())

    def test_out_of_turn(self):
        _, initiator, responder = make_pair()
        self.assertRaises(LocalProtocolError, responder.write_message, b"")
        self.assertRaises(LocalProtocolError, initiator.read_message, bytes(32))
        self.assertRaises(LocalProtocolError, initiator.transport)
        handshake(initiator, responder)
        self.assertRaises(LocalProtocolError, initiator.write_message, b"")
        self.assertRaises(LocalProtocolError, responder.read_message, bytes(64))

    def test_every_flipped_byte_of_message_two_and_three_rejected(self):
        for message_index in (1, 2):
            length = 96 + 3 if message_index == 1 else 64 + 5
            for position in range(length):
                _, initiator, responder = make_pair()
                wire = initiator.write_message(b"one")
                responder.read_message(wire)
                wire = responder.write_message(b"two")
                reader = initiator
                if message_index == 2:
                    initiator.read_message(wire)
                    wire = initiator.write_message(b"three")
                    reader = responder
                self.assertRaises(RemoteProtocolError, reader.read_message, flip(wire, position))
                self.assertRaises(LocalProtocolError, reader.read_message, wire)

    def test_flipped_first_message_caught_by_initiator(self):
        for position in (0, 31, 32, 34):
            _, initiator, responder = make_pair()
            responder.read_message(flip(initiator.write_message(b"one"), position))
            self.assertRaises(IntegrityError, initiator.read_message, responder.write_message())

    def test_truncated_messages_rejected(self):
        _, initiator, responder = make_pair()
        first = initiator.write_message(b"")
        self.assertRaises(RemoteProtocolError, responder.read_message, first[:31])
        _, initiator, responder = make_pair()
        responder.read_message(initiator.write_message(b""))
        second = responder.write_message(b"")
        self.assertRaises(RemoteProtocolError, initiator.read_message, second[:-1])

    def test_prologue_mismatch(self):
        _, initiator, responder = make_pair(b"waystation/1", b"waystation/2")
        responder.read_message(initiator.write_message(b""))
        self.assertRaises(IntegrityError, initiator.read_message, responder.write_message(b""))

    def test_low_order_ephemeral_rejected(self):
        _, _, responder = make_pair()
        self.assertRaises(IntegrityError, responder.read_message, b"\x01" + bytes(31))

    def test_size_limits(self):
        _, initiator, responder = make_pair()
        self.assertRaises(LocalProtocolError, initiator.write_message, bytes(MAX_MESSAGE_LEN))
        self.assertRaises(RemoteProtocolError, responder.read_message, bytes(MAX_MESSAGE_LEN + 1))
        _, initiator, responder = make_pair()
        handshake(initiator, responder)
        ours, theirs = initiator.transport(), responder.transport()
        self.assertRaises(LocalProtocolError, ours.encrypt, bytes(MAX_MESSAGE_LEN - 15))
        self.assertRaises(RemoteProtocolError, theirs.decrypt, bytes(MAX_MESSAGE_LEN + 1))
        self.assertRaises(LocalProtocolError, theirs.decrypt, bytes(20))
