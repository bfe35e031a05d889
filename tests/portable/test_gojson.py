# Portable tests for node.sync.gojson. Expected bytes follow Go's encoding/json (>= 1.22)
# appendString with HTML escaping, as documented at the top of node/sync/gojson.py.

from harness import TestCase

from node._compat import IS_MICROPYTHON
from node.errors import LocalProtocolError
from node.sync.gojson import dumps


class ScalarTests(TestCase):
    def test_scalars(self):
        self.assertEqual(dumps(None), b"null")
        self.assertEqual(dumps(True), b"true")
        self.assertEqual(dumps(False), b"false")
        self.assertEqual(dumps(0), b"0")
        self.assertEqual(dumps(-12), b"-12")
        self.assertEqual(dumps(2**64 - 1), b"18446744073709551615")
        self.assertEqual(dumps(""), b'""')
        self.assertEqual(dumps(b""), b'""')

    def test_containers(self):
        self.assertEqual(dumps([]), b"[]")
        self.assertEqual(dumps({}), b"{}")
        self.assertEqual(dumps([1, [None, "a"], {}]), b'[1,[null,"a"],{}]')
        self.assertEqual(dumps((1, 2)), b"[1,2]")

    def test_refuses_other_types(self):
        for value in (1.5, {1: 2}, object(), {"a": {1, 2}}):
            with self.assertRaises(LocalProtocolError):
                dumps(value)

    def test_depth_limit(self):
        value = []
        for _ in range(64):
            value = [value]
        dumps(value[0])
        with self.assertRaises(LocalProtocolError):
            dumps(value)


class EscapeTests(TestCase):
    def test_quote_and_backslash(self):
        self.assertEqual(dumps('a"b\\c'), b'"a\\"b\\\\c"')

    def test_short_control_escapes(self):
        self.assertEqual(dumps("\b\f\n\r\t"), b'"\\b\\f\\n\\r\\t"')

    def test_other_controls_lower_hex(self):
        self.assertEqual(dumps("\x00\x01\x0b\x1f"), b'"\\u0000\\u0001\\u000b\\u001f"')
        for code in range(0x20):
            out = dumps(chr(code))
            self.assertEqual(out[:2], b'"\\')
            self.assertNotIn(bytes((code,)), out)

    def test_html_escapes(self):
        self.assertEqual(
            dumps("<a href='x'>&</a>"), b"\"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e\""
        )

    def test_line_and_paragraph_separators(self):
        self.assertEqual(dumps("a\u2028b\u2029c"), b'"a\\u2028b\\u2029c"')

    def test_raw_characters(self):
        self.assertEqual(dumps("\x7f/é€\U0001f600'"), '"\x7f/é€\U0001f600\'"'.encode())
        self.assertEqual(dumps("\ufffd"), b'"\xef\xbf\xbd"')
        self.assertEqual(dumps("\u2027\u202a"), '"\u2027\u202a"'.encode())

    def test_str_and_bytes_agree_on_valid_utf8(self):
        text = 'k<\u2028>\n\u00e9\U0001f600"\\'
        self.assertEqual(dumps(text), dumps(text.encode()))
        self.assertEqual(dumps(text), dumps(bytearray(text.encode())))

    def test_refuses_lone_surrogate(self):
        if IS_MICROPYTHON:  # MicroPython str cannot hold a lone surrogate as such
            return
        with self.assertRaises(LocalProtocolError):
            dumps("\ud800")


class InvalidUtf8Tests(TestCase):
    # Go: utf8.DecodeRune returns (RuneError, 1) for every byte that does not start a valid
    # sequence, and appendString writes the six characters \ufffd for that one byte.
    CASES = [
        (b"\xff", b'"\\ufffd"'),
        (b"a\x80b", b'"a\\ufffdb"'),
        (b"\xc0\xaf", b'"\\ufffd\\ufffd"'),  # overlong "/"
        (b"\xe2\x82", b'"\\ufffd\\ufffd"'),  # truncated euro sign
        (b"\xe2\x82A", b'"\\ufffd\\ufffdA"'),
        (b"\xed\xa0\x80", b'"\\ufffd\\ufffd\\ufffd"'),  # surrogate U+D800
        (b"\xf4\x90\x80\x80", b'"\\ufffd\\ufffd\\ufffd\\ufffd"'),  # above U+10FFFF
        (b"\xf0\x9f\x98", b'"\\ufffd\\ufffd\\ufffd"'),  # truncated emoji
        (b"ok\xff<\xe2\x80\xa8", b'"ok\\ufffd\\u003c\\u2028"'),
        (b"\xc3\xa9\xfe\xc3\xa9", b'"\xc3\xa9\\ufffd\xc3\xa9"'),
        (b"\xef\xbf\xbd\xff", b'"\xef\xbf\xbd\\ufffd"'),
    ]

    def test_cases(self):
        for raw, expected in self.CASES:
            self.assertEqual(dumps(raw), expected)

    def test_invalid_key(self):
        self.assertEqual(dumps({b"\xff": 1}), b'{"\\ufffd":1}')


class MapTests(TestCase):
    def test_keys_sorted_by_utf8_bytes(self):
        value = {"b": 1, "a": 2, "B": 3, "\u00e9": 4, "aa": 5, "\U0001f600": 6, "\uffff": 7}
        self.assertEqual(
            dumps(value),
            '{"B":3,"a":2,"aa":5,"b":1,"\u00e9":4,"\uffff":7,"\U0001f600":6}'.encode(),
        )

    def test_keys_sorted_before_escaping(self):
        # "<" (0x3c) sorts before "=" (0x3d) although its escape starts with "\\" (0x5c).
        self.assertEqual(dumps({"=": 1, "<": 2}), b'{"\\u003c":2,"=":1}')

    def test_entry_shape(self):
        value = {
            "hash": None,
            "id": "/orbitdb/bafy/ab_berty_group_messages",
            "payload": '{"op":"ADD","value":"a+b/c=="}',
            "next": ["zdpuA", "zdpuB"],
            "refs": [],
            "v": 2,
            "clock": {"time": 7, "id": "0801"},
        }
        self.assertEqual(
            dumps(value),
            b'{"clock":{"id":"0801","time":7},"hash":null,'
            b'"id":"/orbitdb/bafy/ab_berty_group_messages","next":["zdpuA","zdpuB"],'
            b'"payload":"{\\"op\\":\\"ADD\\",\\"value\\":\\"a+b/c==\\"}","refs":[],"v":2}',
        )
