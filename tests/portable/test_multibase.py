# Portable tests for node.sync.multibase (base32 / base58btc) and the uvarint helpers.

from harness import TestCase

from node.errors import LocalProtocolError, RemoteProtocolError
from node.sync.multibase import (
    base32_decode,
    base32_encode,
    base58_decode,
    base58_encode,
    multibase_decode,
    multibase_encode,
)
from node.varint import decode_uvarint, encode_uvarint

# RFC 4648 §10 test vectors, lower case without padding.
RFC4648_BASE32 = [
    (b"", ""),
    (b"f", "my"),
    (b"fo", "mzxq"),
    (b"foo", "mzxw6"),
    (b"foob", "mzxw6yq"),
    (b"fooba", "mzxw6ytb"),
    (b"foobar", "mzxw6ytboi"),
]

# base58btc: Bitcoin alphabet; leading zero bytes become "1" (values checked with libipld).
BASE58 = [
    (b"", ""),
    (b"\x00", "1"),
    (b"\x00\x00hello", "11Cn8eVZg"),
    (b"hello world", "StV1DL6CwTryKyV"),
    (b"\x00\x00\x00\x28\x7f\xb4\xcd", "111233QC4"),
]


class Base32Tests(TestCase):
    def test_rfc4648_vectors(self):
        for raw, text in RFC4648_BASE32:
            self.assertEqual(base32_encode(raw), text)
            self.assertEqual(base32_decode(text), raw)

    def test_round_trip_all_lengths(self):
        for n in range(40):
            raw = bytes((i * 37 + n) & 0xFF for i in range(n))
            self.assertEqual(base32_decode(base32_encode(raw)), raw)

    def test_rejects_upper_case_and_padding(self):
        with self.assertRaisesRegex(RemoteProtocolError, "offset 0"):
            base32_decode("MZXW6YTB")
        with self.assertRaisesRegex(RemoteProtocolError, "offset 7"):
            base32_decode("mzxw6yq=")

    def test_rejects_impossible_lengths(self):
        for text in ("m", "mzx", "mzxw6y"):
            with self.assertRaisesRegex(RemoteProtocolError, "impossible length"):
                base32_decode(text)

    def test_rejects_non_zero_padding_bits(self):
        # "my" is "f"; "mz" sets one of the two unused low bits.
        with self.assertRaisesRegex(RemoteProtocolError, "padding bits at offset 1"):
            base32_decode("mz")


class Base58Tests(TestCase):
    def test_vectors(self):
        for raw, text in BASE58:
            self.assertEqual(base58_encode(raw), text)
            self.assertEqual(base58_decode(text), raw)

    def test_round_trip(self):
        for n in range(40):
            raw = bytes(n // 3) + bytes((i * 91 + n) & 0xFF for i in range(n))
            self.assertEqual(base58_decode(base58_encode(raw)), raw)

    def test_rejects_characters_outside_alphabet(self):
        for bad, offset in (("0abc", 0), ("abcO", 3), ("abIc", 2), ("lx", 0), ("a b", 1)):
            with self.assertRaisesRegex(RemoteProtocolError, "offset %d" % offset):
                base58_decode(bad)


class MultibaseTests(TestCase):
    def test_prefixes(self):
        self.assertEqual(multibase_encode("b", b"foobar"), "bmzxw6ytboi")
        self.assertEqual(multibase_encode("z", b"\x00\x00hello"), "z11Cn8eVZg")
        self.assertEqual(multibase_decode("bmzxw6ytboi"), ("b", b"foobar"))
        self.assertEqual(multibase_decode("z11Cn8eVZg"), ("z", b"\x00\x00hello"))

    def test_rejects_other_prefixes_and_empty(self):
        for text in ("Bmzxw6ytboi", "fabcd", "mAXES", "Qm"):
            with self.assertRaisesRegex(RemoteProtocolError, "unsupported multibase prefix"):
                multibase_decode(text)
        with self.assertRaisesRegex(RemoteProtocolError, "empty"):
            multibase_decode("")

    def test_encode_refuses_unknown_prefix(self):
        with self.assertRaises(LocalProtocolError):
            multibase_encode("m", b"x")


class UvarintTests(TestCase):
    def test_known_encodings(self):
        cases = [
            (0, b"\x00"),
            (1, b"\x01"),
            (0x7F, b"\x7f"),
            (0x80, b"\x80\x01"),
            (0x71, b"\x71"),
            (300, b"\xac\x02"),
            (16384, b"\x80\x80\x01"),
            ((1 << 63) - 1, b"\xff" * 8 + b"\x7f"),
        ]
        for value, raw in cases:
            self.assertEqual(encode_uvarint(value), raw)
            self.assertEqual(decode_uvarint(raw, 0), (value, len(raw)))
            self.assertEqual(decode_uvarint(b"\xaa" + raw + b"\x05", 1), (value, len(raw) + 1))

    def test_rejects_non_minimal(self):
        with self.assertRaisesRegex(RemoteProtocolError, "non-minimal uvarint at offset 2"):
            decode_uvarint(b"\x00\x00\x81\x00", 2)

    def test_rejects_ten_bytes(self):
        with self.assertRaisesRegex(RemoteProtocolError, "longer than 9 bytes at offset 0"):
            decode_uvarint(b"\xff" * 9 + b"\x01", 0)

    def test_rejects_truncation_at_every_length(self):
        raw = encode_uvarint((1 << 63) - 1)
        for cut in range(len(raw)):
            with self.assertRaisesRegex(RemoteProtocolError, "truncated uvarint at offset 0"):
                decode_uvarint(raw[:cut], 0)

    def test_encode_refuses_out_of_range(self):
        for value in (-1, 1 << 63):
            with self.assertRaises(LocalProtocolError):
                encode_uvarint(value)
