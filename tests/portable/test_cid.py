# Portable tests for node.sync.cid. Known answers were checked with libipld (encode_cid).

import hashlib

from harness import TestCase

from node.errors import LocalProtocolError, RemoteProtocolError
from node.sync.cid import CID, DAG_CBOR, RAW
from node.sync.multibase import base32_encode, base58_encode

EMPTY_MAP_B32 = "bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"
EMPTY_MAP_B58 = "zdpuAyTBnYSugBZhqJuLsNpzjmAjSmxDqBbtAqXMtsvxiN2v3"
EMPTY_RAW_B32 = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
EMPTY_MAP_DIGEST = "c19a797fa1fd590cd2e5b42d1cf5f246e29b91684e2f87404b81dc345c7a56a0"


def binary_of(codec, digest):
    return bytes((1, codec, 0x12, 0x20)) + digest


class KnownAnswerTests(TestCase):
    def test_empty_map_block(self):
        cid = CID.from_block(b"\xa0")
        self.assertEqual(cid.version, 1)
        self.assertEqual(cid.codec, DAG_CBOR)
        self.assertEqual(cid.digest.hex(), EMPTY_MAP_DIGEST)
        self.assertEqual(str(cid), EMPTY_MAP_B32)
        self.assertEqual(cid.to_base32(), EMPTY_MAP_B32)
        self.assertEqual(cid.to_base58(), EMPTY_MAP_B58)
        self.assertEqual(cid.to_bytes(), bytes.fromhex("01711220" + EMPTY_MAP_DIGEST))

    def test_raw_codec(self):
        cid = CID.from_block(b"", RAW)
        self.assertEqual(str(cid), EMPTY_RAW_B32)
        self.assertEqual(cid.codec, RAW)
        self.assertEqual(CID.parse(EMPTY_RAW_B32), cid)

    def test_parse_both_forms(self):
        cid = CID.from_block(b"\xa0")
        self.assertEqual(CID.parse(EMPTY_MAP_B32), cid)
        self.assertEqual(CID.parse(EMPTY_MAP_B58), cid)
        self.assertEqual(CID.from_bytes(cid.to_bytes()), cid)

    def test_round_trip_many(self):
        for i in range(50):
            cid = CID.from_block(bytes((i,)) * i, DAG_CBOR if i % 2 else RAW)
            self.assertEqual(CID.parse(str(cid)), cid)
            self.assertEqual(CID.parse(cid.to_base58()), cid)
            self.assertEqual(CID.from_bytes(cid.to_bytes()), cid)


class ValueTests(TestCase):
    def test_equality_hash_and_order(self):
        a = CID.from_block(b"a")
        a2 = CID.from_block(b"a")
        b = CID.from_block(b"b")
        self.assertEqual(a, a2)
        self.assertEqual(hash(a), hash(a2))
        self.assertNotEqual(a, b)
        self.assertNotEqual(a, CID.from_block(b"a", RAW))
        self.assertFalse(a == a.to_bytes())
        self.assertEqual(len({a, a2, b}), 2)
        low, high = (a, b) if a.to_bytes() < b.to_bytes() else (b, a)
        self.assertTrue(low < high)
        self.assertTrue(low <= high)
        self.assertTrue(high > low)
        self.assertTrue(high >= low)
        self.assertFalse(high < low)
        self.assertEqual(sorted([high, low]), [low, high])

    def test_repr(self):
        self.assertEqual(repr(CID.from_block(b"\xa0")), "CID(%s)" % EMPTY_MAP_B32)

    def test_constructor_refuses_bad_arguments(self):
        digest = hashlib.sha256(b"").digest()
        self.assertEqual(CID(DAG_CBOR, digest), CID.from_block(b""))
        with self.assertRaises(LocalProtocolError):
            CID(0x70, digest)
        with self.assertRaises(LocalProtocolError):
            CID(DAG_CBOR, digest[:31])
        with self.assertRaises(LocalProtocolError):
            CID.parse(b"bafy")


class HostileBinaryTests(TestCase):
    def setUp(self):
        self.digest = hashlib.sha256(b"x").digest()

    def test_every_truncation(self):
        binary = binary_of(DAG_CBOR, self.digest)
        for cut in range(len(binary)):
            with self.assertRaises(RemoteProtocolError):
                CID.from_bytes(binary[:cut])

    def test_trailing_bytes(self):
        with self.assertRaisesRegex(RemoteProtocolError, "1 trailing bytes after CID at offset 36"):
            CID.from_bytes(binary_of(DAG_CBOR, self.digest) + b"\x00")

    def test_cidv0(self):
        with self.assertRaisesRegex(RemoteProtocolError, "CIDv0"):
            CID.from_bytes(b"\x12\x20" + self.digest)

    def test_wrong_version(self):
        with self.assertRaisesRegex(RemoteProtocolError, "CID version 2 at offset 0"):
            CID.from_bytes(b"\x02\x71\x12\x20" + self.digest)
        with self.assertRaisesRegex(RemoteProtocolError, "CID version 0 at offset 0"):
            CID.from_bytes(b"\x00\x71\x12\x20" + self.digest)

    def test_wrong_codec(self):
        with self.assertRaisesRegex(RemoteProtocolError, "codec 0x70 at offset 1"):
            CID.from_bytes(b"\x01\x70\x12\x20" + self.digest)
        with self.assertRaisesRegex(RemoteProtocolError, "codec 0x129 at offset 1"):
            CID.from_bytes(b"\x01\xa9\x02\x12\x20" + self.digest)

    def test_non_minimal_codec_varint(self):
        with self.assertRaisesRegex(RemoteProtocolError, "non-minimal uvarint at offset 1"):
            CID.from_bytes(b"\x01\xf1\x00\x12\x20" + self.digest)

    def test_wrong_hash_function(self):
        with self.assertRaisesRegex(RemoteProtocolError, "multihash function 0x13 at offset 2"):
            CID.from_bytes(b"\x01\x71\x13\x20" + self.digest)
        with self.assertRaisesRegex(RemoteProtocolError, "multihash function 0xb220 at offset 2"):
            CID.from_bytes(b"\x01\x71\xa0\xe4\x02\x20" + self.digest)

    def test_wrong_digest_length(self):
        with self.assertRaisesRegex(RemoteProtocolError, "digest length 31 at offset 3"):
            CID.from_bytes(b"\x01\x71\x12\x1f" + self.digest[:31])
        with self.assertRaisesRegex(RemoteProtocolError, "truncated CID digest at offset 4"):
            CID.from_bytes(b"\x01\x71\x12\x20" + self.digest[:31])


class HostileTextTests(TestCase):
    def test_every_truncation_of_both_forms(self):
        for text in (EMPTY_MAP_B32, EMPTY_MAP_B58):
            for cut in range(len(text)):
                with self.assertRaises(RemoteProtocolError):
                    CID.parse(text[:cut])

    def test_wrong_multibase(self):
        binary = CID.from_block(b"\xa0").to_bytes()
        with self.assertRaisesRegex(RemoteProtocolError, "unsupported multibase prefix 'B'"):
            CID.parse("B" + base32_encode(binary).upper())
        with self.assertRaisesRegex(RemoteProtocolError, "unsupported multibase prefix 'f'"):
            CID.parse("f" + binary.hex())

    def test_cidv0_text(self):
        with self.assertRaisesRegex(RemoteProtocolError, "CIDv0"):
            CID.parse("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR")

    def test_bad_characters(self):
        with self.assertRaisesRegex(RemoteProtocolError, "base32 character '1' at offset 3"):
            CID.parse("baf1" + EMPTY_MAP_B32[4:])
        with self.assertRaisesRegex(RemoteProtocolError, "base58 character '0' at offset 4"):
            CID.parse("zdpu0" + EMPTY_MAP_B58[5:])

    def test_trailing_bytes_in_text(self):
        binary = CID.from_block(b"\xa0").to_bytes() + b"\x00"
        with self.assertRaisesRegex(RemoteProtocolError, "trailing"):
            CID.parse("b" + base32_encode(binary))
        with self.assertRaisesRegex(RemoteProtocolError, "trailing"):
            CID.parse("z" + base58_encode(binary))

    def test_other_hash_in_text(self):
        binary = b"\x01\x71\x13\x20" + bytes(32)
        with self.assertRaisesRegex(RemoteProtocolError, "multihash function 0x13"):
            CID.parse("b" + base32_encode(binary))

    def test_too_long(self):
        with self.assertRaisesRegex(RemoteProtocolError, "too long"):
            CID.parse("b" + "a" * 200)
