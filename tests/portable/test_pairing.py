# Portable tests for node.proto.pairing (CPython and MicroPython): codecs and the exchange.
#
# SPAKE2 is injected; here a toy stand-in (not a PAKE: it only gives equal keys for equal codes)
# drives the state machine, as the real one does under CPython (tests/property/).

import hashlib

from harness import TestCase

from node._compat import hmac_sha256
from node.crypto.api import BLAKE2B, SHA256, Suite
from node.errors import LocalProtocolError, RemoteProtocolError
from node.proto import pairing as pp

H = b"\x07" * 64


class FakeSuite(Suite):
    name = "fake"

    def digest(self, hash_name, data):
        assert hash_name == SHA256
        return hashlib.sha256(data).digest()

    def hmac(self, hash_name, key, data):
        assert hash_name == BLAKE2B
        return hmac_sha256(key, b"\x00" + data) + hmac_sha256(key, b"\x01" + data)


class ToyPake:
    def __init__(self, side, code, id_a, id_b):
        self.side = side
        self.secret = hashlib.sha256(code + id_a + id_b).digest()

    def start(self):
        return self.side.encode() + self.secret

    def finish(self, message):
        if len(message) != 33 or message[:1] == self.side.encode():
            raise RemoteProtocolError("toy pake: bad message", "integrity")
        return hashlib.sha256(message[1:] + self.secret).digest()


SUITE = FakeSuite()


def exchange(initiator, code=b"12345678", h=H):
    return pp.PairingExchange(SUITE, ToyPake, initiator, code, h)


class TestCodecs(TestCase):
    def test_start_round_trip(self):
        data = pp.encode_start(b"A" * 33, "Ana's phone \u2713")
        self.assertEqual(pp.decode_start(data), (b"A" * 33, "Ana's phone \u2713"))

    def test_start_refusals(self):
        for bad in (b"", b"A" * 33, b"A" * 33 + b"\x05ab", b"A" * 33 + b"\x01\x07",
                    b"A" * 33 + b"\x02\xff\xfe", b"A" * 33 + b"\x41" + b"x" * 65,
                    b"A" * 33 + b"\x02\xc2\x9b"):  # U+009B, a C1 control (CSI)
            self.assertRaises(RemoteProtocolError, pp.decode_start, bad)
        self.assertRaises(LocalProtocolError, pp.encode_start, b"A" * 32, "x")
        self.assertRaises(LocalProtocolError, pp.encode_start, b"A" * 33, "x" * 65)

    def test_reply_confirm_result(self):
        reply = pp.encode_reply(b"B" * 33, b"c" * 64)
        self.assertEqual(pp.decode_reply(reply), (b"B" * 33, b"c" * 64))
        self.assertRaises(RemoteProtocolError, pp.decode_reply, b"B" * 96)
        self.assertRaises(RemoteProtocolError, pp.decode_confirm, b"c" * 63)
        for status in (pp.PAIRED_OK, pp.WRONG_CODE, pp.NO_WINDOW, pp.BUSY):
            self.assertEqual(pp.decode_result(pp.encode_result(status)), (status, b""))
        key = bytes(range(32))
        self.assertEqual(pp.decode_result(pp.encode_result(pp.PAIRED_OK, key)), (pp.PAIRED_OK, key))
        self.assertRaises(RemoteProtocolError, pp.decode_result, b"\x04")
        self.assertRaises(RemoteProtocolError, pp.decode_result, b"")
        self.assertRaises(RemoteProtocolError, pp.decode_result, b"\x00\x00")
        self.assertRaises(RemoteProtocolError, pp.decode_result, b"\x01" + key)  # key: paired only
        self.assertRaises(RemoteProtocolError, pp.decode_result, b"\x00" + key[:31])
        self.assertRaises(LocalProtocolError, pp.encode_result, pp.WRONG_CODE, key)
        self.assertRaises(LocalProtocolError, pp.encode_result, pp.PAIRED_OK, key[:31])

    def test_fingerprint_shape(self):
        fingerprint = pp.key_fingerprint(SUITE, b"\x01" * 32)
        self.assertEqual(len(fingerprint), 39)
        self.assertEqual(fingerprint.count("-"), 7)


class TestExchange(TestCase):
    def test_right_code_pairs_both(self):
        i, r = exchange(True), exchange(False)
        [reply] = r.receive(*i.begin("phone"))
        [confirm] = i.receive(*reply)
        [result] = r.receive(*confirm)
        self.assertEqual(result, (pp.RESULT, b"\x00"))
        self.assertEqual(i.receive(*result), [])
        self.assertEqual((i.state, r.state, r.peer_name), (pp.PAIRED, pp.PAIRED, "phone"))
        self.assertEqual(i.discovery_key, b"")

    def test_relay_hands_its_discovery_key_on_success_only(self):
        key = bytes(range(32))
        i, r = exchange(True), exchange(False)
        r.discovery_key = key
        [reply] = r.receive(*i.begin("phone"))
        [result] = r.receive(*i.receive(*reply)[0])
        self.assertEqual(result, (pp.RESULT, b"\x00" + key))
        i.receive(*result)
        self.assertEqual((i.state, i.discovery_key), (pp.PAIRED, key))
        i, r = exchange(True, b"87654321"), exchange(False)
        r.discovery_key = key
        r.receive(*i.begin("phone"))
        self.assertEqual(r.receive(pp.CONFIRM, b"c" * 64), [(pp.RESULT, b"\x01")])

    def test_wrong_code_fails_at_the_initiator(self):
        i, r = exchange(True, b"87654321"), exchange(False)
        [reply] = r.receive(*i.begin("phone"))
        self.assertEqual(i.receive(*reply), [])
        self.assertEqual((i.state, i.status), (pp.FAILED, pp.WRONG_CODE))

    def test_other_handshake_hash_fails(self):
        i, r = exchange(True), exchange(False, h=b"\x08" * 64)
        [reply] = r.receive(*i.begin("phone"))
        self.assertEqual(i.receive(*reply), [])
        self.assertEqual(i.status, pp.WRONG_CODE)

    def test_out_of_turn_is_unexpected(self):
        r = exchange(False)
        self.assertRaises(RemoteProtocolError, r.receive, pp.CONFIRM, b"c" * 64)
        self.assertEqual(r.state, pp.FAILED)
        i = exchange(True)
        self.assertRaises(RemoteProtocolError, i.receive, pp.START, b"x")
        r = exchange(False)
        self.assertRaises(LocalProtocolError, r.begin, "relay cannot begin")
