# Portable tests of node.crypto.protobuf: known answers, round trips, and refusal of malformed
# input at the offset where it goes wrong (fed whole and truncated at every length).

from harness import TestCase

from node.crypto import protobuf as pb
from node.errors import LocalProtocolError, RemoteProtocolError

INNER = pb.Schema("Inner", [pb.Field(1, "x", pb.UINT64)])
ALL = pb.Schema(
    "All",
    [
        pb.Field(1, "u64", pb.UINT64),
        pb.Field(2, "raw", pb.BYTES),
        pb.Field(3, "text", pb.STRING),
        pb.Field(4, "flag", pb.BOOL),
        pb.Field(5, "kind", pb.ENUM),
        pb.Field(6, "f64", pb.FIXED64),
        pb.Field(7, "f32", pb.FIXED32),
        pb.Field(8, "inner", pb.MESSAGE, message=INNER),
        pb.Field(9, "list", pb.BYTES, repeated=True),
        pb.Field(10, "nums", pb.UINT32, repeated=True),
        pb.map_field(11, "meta", pb.STRING, pb.STRING),
        pb.Field(12, "i64", pb.INT64),
        pb.Field(13, "sf32", pb.SFIXED32),
    ],
)
HEADERS = pb.Schema(
    "MessageHeaders",
    [
        pb.Field(1, "counter", pb.UINT64),
        pb.Field(2, "device_pk", pb.BYTES),
        pb.Field(3, "sig", pb.BYTES),
        pb.map_field(4, "metadata", pb.STRING, pb.STRING),
    ],
)


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


class TestVarint(TestCase):
    def test_known_answers(self):
        self.assertEqual(pb.encode_varint(0), b"\x00")
        self.assertEqual(pb.encode_varint(1), b"\x01")
        self.assertEqual(pb.encode_varint(127), b"\x7f")
        self.assertEqual(pb.encode_varint(128), h("8001"))
        self.assertEqual(pb.encode_varint(300), h("ac02"))
        self.assertEqual(pb.encode_varint((1 << 64) - 1), h("ffffffffffffffffff01"))

    def test_out_of_range(self):
        self.assertRaises(LocalProtocolError, pb.encode_varint, -1)
        self.assertRaises(LocalProtocolError, pb.encode_varint, 1 << 64)


class TestEncode(TestCase):
    def test_known_answer_headers(self):
        data = pb.encode(
            HEADERS, {"counter": 1, "device_pk": b"\xaa" * 2, "sig": b"", "metadata": {"k": "v"}}
        )
        self.assertEqual(data, h("0801 1202aaaa 2206 0a016b 120176"))

    def test_defaults_skipped(self):
        values = {"u64": 0, "raw": b"", "text": "", "flag": False, "kind": 0, "f64": 0}
        values.update({"f32": 0, "inner": None, "list": [], "nums": [], "meta": {}})
        self.assertEqual(pb.encode(ALL, values), b"")
        self.assertEqual(pb.encode(ALL, {}), b"")

    def test_empty_submessage_is_present(self):
        self.assertEqual(pb.encode(ALL, {"inner": {}}), h("4200"))
        self.assertEqual(pb.encode(ALL, {"inner": {"x": 5}}), h("42020805"))

    def test_field_order_is_by_number(self):
        data = pb.encode(ALL, {"text": "é", "u64": 2, "f32": 1})
        self.assertEqual(data, h("0802 1a02c3a9 3d01000000"))

    def test_every_kind(self):
        values = {
            "u64": 300,
            "raw": b"\x00\x01",
            "text": "hi",
            "flag": True,
            "kind": -1,
            "f64": 1,
            "f32": 2,
            "inner": {"x": 1},
            "list": [b"a", b""],
            "nums": [1, 300],
            "meta": {"b": "2", "a": ""},
            "i64": -2,
            "sf32": -1,
        }
        expected = h(
            "08ac02 12020001 1a026869 2001 28ffffffffffffffffff01 310100000000000000"
            " 3d02000000 42020801 4a0161 4a00 5203 01ac02 5a05 0a0161 1200 5a06 0a0162 120132"
            " 60feffffffffffffffff01 6dffffffff"
        )
        data = pb.encode(ALL, values)
        self.assertEqual(data, expected)
        self.assertEqual(pb.decode(ALL, data), values)

    def test_wrong_values_refused(self):
        self.assertRaises(LocalProtocolError, pb.encode, ALL, {"nope": 1})
        self.assertRaises(LocalProtocolError, pb.encode, ALL, {"u64": -1})
        self.assertRaises(LocalProtocolError, pb.encode, ALL, {"u64": True})
        self.assertRaises(LocalProtocolError, pb.encode, ALL, {"nums": [1 << 32]})
        self.assertRaises(LocalProtocolError, pb.encode, ALL, {"raw": "str"})
        self.assertRaises(LocalProtocolError, pb.encode, ALL, {"text": b"bytes"})
        self.assertRaises(LocalProtocolError, pb.encode, ALL, {"flag": 1})


class TestDecode(TestCase):
    def test_defaults_filled(self):
        self.assertEqual(
            pb.decode(HEADERS, b""), {"counter": 0, "device_pk": b"", "sig": b"", "metadata": {}}
        )
        decoded = pb.decode(ALL, b"")
        self.assertIsNone(decoded["inner"])
        self.assertEqual(decoded["list"], [])

    def test_unknown_fields_skipped(self):
        # field 15 varint, 16 fixed64, 17 bytes, 18 fixed32, then counter = 7
        data = h("7801 810100000000000000 00 8a0102aabb 950104030201 0807")
        self.assertEqual(pb.decode(HEADERS, data)["counter"], 7)

    def test_unpacked_repeated_numbers_accepted(self):
        self.assertEqual(pb.decode(ALL, h("5001 5002"))["nums"], [1, 2])

    def test_map_entry_defaults(self):
        self.assertEqual(pb.decode(HEADERS, h("2200"))["metadata"], {"": ""})
        self.assertEqual(pb.decode(HEADERS, h("2203 0a0161"))["metadata"], {"a": ""})

    def assertRefusedAt(self, schema, data, offset, text=None):
        with self.assertRaises(RemoteProtocolError) as ctx:
            pb.decode(schema, data)
        message = str(ctx.exception)
        self.assertIn("offset %d" % offset, message)
        if text is not None:
            self.assertIn(text, message)

    def test_truncated_varint(self):
        self.assertRefusedAt(HEADERS, h("08"), 1, "truncated varint")
        self.assertRefusedAt(HEADERS, h("0880"), 1, "truncated varint")
        self.assertRefusedAt(HEADERS, h("80"), 0, "truncated varint")

    def test_overlong_varint(self):
        self.assertRefusedAt(HEADERS, h("08 ffffffffffffffffff02"), 1, "64 bits")
        self.assertRefusedAt(HEADERS, h("08 8080808080808080808000"), 1, "varint")

    def test_length_beyond_buffer(self):
        self.assertRefusedAt(HEADERS, h("1205aabb"), 2, "beyond the buffer")
        self.assertRefusedAt(HEADERS, h("7a05aabb"), 2, "beyond the buffer")  # unknown field

    def test_wrong_wire_type(self):
        self.assertRefusedAt(HEADERS, h("0a0101"), 0, "wire type 2")
        self.assertRefusedAt(HEADERS, h("0801 1001"), 2, "wire type 0")
        self.assertRefusedAt(HEADERS, h("2001"), 0, "wire type")

    def test_groups_and_reserved_wire_types(self):
        self.assertRefusedAt(HEADERS, h("0801 7b 7c"), 2, "wire type 3")
        self.assertRefusedAt(HEADERS, h("7c"), 0, "wire type 4")
        self.assertRefusedAt(HEADERS, h("7e"), 0, "wire type 6")
        self.assertRefusedAt(HEADERS, h("7f"), 0, "wire type 7")

    def test_field_number_zero(self):
        self.assertRefusedAt(HEADERS, h("0801 0001"), 2, "field number 0")

    def test_truncated_fixed(self):
        self.assertRefusedAt(ALL, h("31 01020304"), 1, "fixed64")
        self.assertRefusedAt(ALL, h("3d 0102"), 1, "fixed32")

    def test_duplicates(self):
        self.assertRefusedAt(HEADERS, h("0801 0802"), 2, "twice")
        self.assertRefusedAt(HEADERS, h("2203 0a0161 2203 0a0161"), 5, "repeats key")

    def test_bad_values(self):
        self.assertRefusedAt(ALL, h("1a02 c328"), 2, "UTF-8")
        self.assertRefusedAt(ALL, h("2002"), 1, "bool")
        self.assertRefusedAt(ALL, h("50 8080808010"), 1, "out of range")

    def test_nested_offsets_are_absolute(self):
        # inner message at offset 2 holds a truncated varint at absolute offset 5
        self.assertRefusedAt(ALL, h("0801 4202 08 80"), 5, "truncated varint")

    def test_size_limit(self):
        with self.assertRaises(RemoteProtocolError):
            pb.decode(HEADERS, b"\x08\x01", max_size=1)

    def test_every_truncation_refused_or_prefix(self):
        values = {"u64": 300, "raw": b"abc", "text": "é", "inner": {"x": 9}, "meta": {"k": "v"}}
        values.update({"nums": [1, 2, 300], "f64": 5, "f32": 6})
        data = pb.encode(ALL, values)
        expected = pb.decode(ALL, b"")
        expected.update(values)
        self.assertEqual(pb.decode(ALL, data), expected)
        # Each truncation either raises RemoteProtocolError or ends on a field boundary.
        boundaries = set()
        pos = 0
        for f in ALL.fields:
            if f.name in values:
                chunk = pb.encode(ALL, {f.name: values[f.name]})
                pos += len(chunk)
                boundaries.add(pos)
        for cut in range(len(data)):
            if cut in boundaries or cut == 0:
                pb.decode(ALL, data[:cut])
                continue
            with self.assertRaises(RemoteProtocolError):
                pb.decode(ALL, data[:cut])

    def test_every_single_byte_input_refused(self):
        # One byte is a tag without its value (or field 0, or a varint cut short).
        for b in range(256):
            with self.assertRaises(RemoteProtocolError):
                pb.decode(ALL, bytes((b,)))


class TestSchemaDeclaration(TestCase):
    def test_bad_declarations(self):
        self.assertRaises(LocalProtocolError, pb.Field, 0, "a", pb.UINT64)
        self.assertRaises(LocalProtocolError, pb.Field, 1, "a", "float")
        self.assertRaises(LocalProtocolError, pb.Field, 1, "a", pb.MESSAGE)
        self.assertRaises(
            LocalProtocolError,
            pb.Schema,
            "D",
            [pb.Field(1, "a", pb.BYTES), pb.Field(1, "b", pb.BYTES)],
        )
