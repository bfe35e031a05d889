# Portable tests for node.sync.dagcbor. Known encodings were checked with libipld.encode_dag_cbor.

from harness import TestCase

from node.errors import LocalProtocolError, RemoteProtocolError
from node.sync import dagcbor
from node.sync.cid import CID, RAW

KNOWN = [
    (0, "00"),
    (23, "17"),
    (24, "1818"),
    (255, "18ff"),
    (256, "190100"),
    (65535, "19ffff"),
    (65536, "1a00010000"),
    (2**32 - 1, "1affffffff"),
    (2**32, "1b0000000100000000"),
    (2**64 - 1, "1bffffffffffffffff"),
    (-1, "20"),
    (-24, "37"),
    (-25, "3818"),
    (-(2**64), "3bffffffffffffffff"),
    (1.5, "fb3ff8000000000000"),
    (0.0, "fb0000000000000000"),
    ("", "60"),
    ("a", "6161"),
    ("\u00e9", "62c3a9"),
    (b"", "40"),
    (b"\x01\x02", "420102"),
    ([], "80"),
    ({}, "a0"),
    ({"b": 1, "aa": 2, "a": 3}, "a361610361620162616102"),
    ([None, True, False], "83f6f5f4"),
    ("x" * 24, "7818" + "78" * 24),
    (
        CID.from_block(b"\xa0"),
        "d82a58250001711220c19a797fa1fd590cd2e5b42d1cf5f246e29b91684e2f87404b81dc345c7a56a0",
    ),
]

CID_HEX = "d82a58250001711220c19a797fa1fd590cd2e5b42d1cf5f246e29b91684e2f87404b81dc345c7a56a0"


def sample():
    return {
        "v": 2,
        "id": "/orbitdb/bafy/abc_berty_group_messages",
        "key": "08011220" + "ab" * 32,
        "hash": None,
        "next": [CID.from_block(b"\xa0"), CID.from_block(b"x", RAW)],
        "refs": [],
        "clock": {"id": "00" * 36, "time": 123456789},
        "payload": '{"op":"ADD","value":"<&>\u2028 \u00e9\U0001f600"}',
        "f": -0.25,
        "neg": -(2**63),
        "bin": bytes(range(256)),
        "t": True,
        "n": [[[[]]], {"": {}}],
    }


def assert_rejects(test, hex_data, text):
    """decode(hex_data) must raise RemoteProtocolError whose message contains `text` (plain)."""
    try:
        dagcbor.decode(bytes.fromhex(hex_data))
    except RemoteProtocolError as exc:
        test.assertIn(text, str(exc))
        test.assertIn("at offset", str(exc))
        return
    raise AssertionError("%s was accepted" % hex_data)


class KnownAnswerTests(TestCase):
    def test_encode_known(self):
        for value, hex_data in KNOWN:
            self.assertEqual(dagcbor.encode(value).hex(), hex_data)

    def test_decode_known(self):
        for value, hex_data in KNOWN:
            decoded = dagcbor.decode(bytes.fromhex(hex_data))
            self.assertEqual(decoded, value)
            self.assertEqual(type(decoded), type(value))

    def test_negative_zero_keeps_its_sign(self):
        self.assertEqual(dagcbor.encode(-0.0).hex(), "fb8000000000000000")

    def test_tuple_encodes_as_array(self):
        self.assertEqual(dagcbor.encode((1, 2)), dagcbor.encode([1, 2]))

    def test_bytearray_encodes_as_bytes(self):
        self.assertEqual(dagcbor.encode(bytearray(b"ab")), b"\x42ab")

    def test_map_order_is_length_first(self):
        encoded = dagcbor.encode({"payload": 1, "v": 2, "id": 3, "clock": 4, "zz": 5})
        keys_in_order = ["v", "id", "zz", "clock", "payload"]
        positions = [encoded.index(k.encode()) for k in keys_in_order]
        self.assertEqual(positions, sorted(positions))


class RoundTripTests(TestCase):
    def test_sample_round_trip(self):
        value = sample()
        block = dagcbor.encode(value)
        self.assertEqual(dagcbor.decode(block), value)
        self.assertEqual(dagcbor.encode(dagcbor.decode(block)), block)

    def test_decode_accepts_bytearray_and_memoryview(self):
        block = dagcbor.encode(sample())
        self.assertEqual(dagcbor.decode(bytearray(block)), sample())
        self.assertEqual(dagcbor.decode(memoryview(block)), sample())

    def test_integer_boundaries(self):
        for base in (0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1):
            for value in (base, -base - 1):
                self.assertEqual(dagcbor.decode(dagcbor.encode(value)), value)

    def test_lengths_at_boundaries(self):
        for n in (0, 23, 24, 255, 256, 65536):
            self.assertEqual(dagcbor.decode(dagcbor.encode(b"\x07" * n)), b"\x07" * n)
            self.assertEqual(dagcbor.decode(dagcbor.encode("q" * n)), "q" * n)
        for n in (0, 23, 24, 300):
            self.assertEqual(dagcbor.decode(dagcbor.encode([1] * n)), [1] * n)
            many = {}
            for i in range(n):
                many["k%d" % i] = i
            self.assertEqual(dagcbor.decode(dagcbor.encode(many)), many)


class EncodeRefusalTests(TestCase):
    def test_out_of_model_values(self):
        for value in (
            2**64,
            -(2**64) - 1,
            float("nan"),
            float("inf"),
            -float("inf"),
            {1: 2},
            {b"k": 2},
            object(),
            {"a": set()},
        ):
            with self.assertRaises(LocalProtocolError):
                dagcbor.encode(value)

    def test_depth_limit(self):
        value = []
        for _ in range(dagcbor.MAX_DEPTH):
            value = [value]
        dagcbor.encode(value[0])
        with self.assertRaisesRegex(LocalProtocolError, "nesting"):
            dagcbor.encode(value)


class DecodeRefusalTests(TestCase):
    def test_empty(self):
        assert_rejects(self, "", "empty input at offset 0")

    def test_trailing_bytes(self):
        assert_rejects(self, "a000", "1 trailing bytes at offset 1")
        assert_rejects(self, "0102", "1 trailing bytes at offset 1")

    def test_non_shortest_arguments(self):
        assert_rejects(self, "1817", "non-shortest argument 23 at offset 0")
        assert_rejects(self, "1900ff", "non-shortest argument 255 at offset 0")
        assert_rejects(self, "1a0000ffff", "non-shortest argument 65535 at offset 0")
        assert_rejects(self, "1b00000000ffffffff", "non-shortest argument 4294967295 at offset 0")
        assert_rejects(self, "3817", "non-shortest argument 23 at offset 0")
        assert_rejects(self, "8158020000", "non-shortest argument 2 at offset 1")
        assert_rejects(self, "a1780161" + "00", "non-shortest argument 1 at offset 1")

    def test_reserved_and_indefinite(self):
        assert_rejects(self, "1c", "reserved additional info 28 at offset 0")
        assert_rejects(self, "5f41614162ff", "indefinite length at offset 0")
        assert_rejects(self, "9fff", "indefinite length at offset 0")
        assert_rejects(self, "bfff", "indefinite length at offset 0")
        assert_rejects(self, "ff", "unexpected break")

    def test_simple_values_and_floats(self):
        assert_rejects(self, "f7", "undefined is not allowed at offset 0")
        assert_rejects(self, "f0", "simple value 0xf0 is not allowed at offset 0")
        assert_rejects(self, "f820", "simple value 0xf8 is not allowed at offset 0")
        assert_rejects(self, "f93c00", "float narrower than 64 bits at offset 0")
        assert_rejects(self, "fa3fc00000", "float narrower than 64 bits at offset 0")
        assert_rejects(self, "fb7ff8000000000000", "NaN or Infinity float at offset 0")
        assert_rejects(self, "fb7ff0000000000000", "NaN or Infinity float at offset 0")
        assert_rejects(self, "82fbfff000000000000000", "NaN or Infinity float at offset 1")

    def test_tags(self):
        assert_rejects(self, "c074323031332d30332d32315432303a30343a30305a", "tag 0 is not allowed")
        assert_rejects(self, "d82b40", "tag 43 is not allowed (only 42) at offset 0")
        assert_rejects(self, "d9002a40", "non-shortest argument 42 at offset 0")
        assert_rejects(self, "d82a6161", "CID tag content is not a byte string at offset 2")
        assert_rejects(self, "d82a40", "lacks the 0x00 multibase prefix at offset 2")
        assert_rejects(self, "d82a" + "5825" + "01" + CID_HEX[10:], "0x00 multibase prefix")
        assert_rejects(self, "d82a", "truncated CID tag content at offset 0")

    def test_bad_cid_in_tag(self):
        bad_hash = CID_HEX.replace("01711220", "01711320")
        assert_rejects(self, bad_hash, "bad CID (unsupported multihash function 0x13")
        assert_rejects(self, "82f6" + bad_hash, "at offset 4")
        short = "d82a5824000171121f" + "00" * 31
        assert_rejects(self, short, "digest length 31 at offset 3, need 32) at offset 2")

    def test_map_keys(self):
        assert_rejects(self, "a10101", "map key is not a text string at offset 1")
        assert_rejects(self, "a1416101", "map key is not a text string at offset 1")
        assert_rejects(self, "a2616101616101", "duplicate map key at offset 4")
        assert_rejects(self, "a2616201616101", "map keys not in canonical order at offset 4")
        assert_rejects(self, "a262616101616201", "map keys not in canonical order at offset 5")
        assert_rejects(self, "a1", "map of 1 pairs but 0 bytes remain at offset 0")
        assert_rejects(self, "a2616101", "map of 2 pairs but 3 bytes remain at offset 0")
        self.assertEqual(dagcbor.decode(bytes.fromhex("a1616100")), {"a": 0})

    def test_invalid_utf8(self):
        for bad in ("c0af", "eda080", "f4908080", "ff", "e282", "c2"):
            data = "%02x%s" % (0x60 + len(bad) // 2, bad)
            assert_rejects(self, data, "invalid UTF-8 in text (byte 1) at offset 0")
        assert_rejects(self, "a162ff0001", "invalid UTF-8 in text (byte 2) at offset 1")

    def test_lengths_beyond_input_before_allocation(self):
        assert_rejects(self, "5bffffffffffffffff", "byte string of 18446744073709551615 bytes")
        assert_rejects(self, "7a00010000", "text of 65536 bytes but 0 remain at offset 0")
        assert_rejects(self, "9bffffffffffffffff", "array of 18446744073709551615 items")
        assert_rejects(self, "bbffffffffffffffff", "map of 18446744073709551615 pairs")
        assert_rejects(self, "8300", "array of 3 items but 1 bytes remain at offset 0")
        assert_rejects(self, "814280", "byte string of 2 bytes but 1 remain at offset 1")

    def test_depth_limit(self):
        depth = dagcbor.MAX_DEPTH
        ok = "81" * (depth - 1) + "80"  # exactly MAX_DEPTH nested containers
        nested = dagcbor.decode(bytes.fromhex(ok))
        self.assertEqual(dagcbor.encode(nested).hex(), ok)
        assert_rejects(self, "81" * depth + "80", "nesting deeper than 64 at offset 64")
        assert_rejects(self, "a16161" * depth + "a0", "nesting deeper than 64 at offset 192")

    def test_every_truncation_is_refused(self):
        block = dagcbor.encode(sample())
        for cut in range(len(block)):
            with self.assertRaisesRegex(RemoteProtocolError, "at offset"):
                dagcbor.decode(block[:cut])

    def test_every_single_byte_change_decodes_or_refuses(self):
        block = dagcbor.encode({"a": [1, "xy", b"z", None, CID.from_block(b"")], "bb": -3.5})
        for i in range(len(block)):
            for value in (0x00, 0x18, 0x1F, 0x3B, 0x5F, 0x7B, 0x9F, 0xBF, 0xD8, 0xF7, 0xFF):
                changed = block[:i] + bytes((value,)) + block[i + 1 :]
                try:
                    dagcbor.decode(changed)
                except RemoteProtocolError as exc:
                    self.assertIn("at offset", str(exc))
