# Byte-exact Go `encoding/json.Marshal` output for map[string]interface{}-shaped values (L0).
#
# ipfs-log signs `json.Marshal(map[string]interface{}{...})` (berty-wesh.md §4.2), so we must
# reproduce Go's bytes exactly. Checked against Go's src/encoding/json/encode.go (Go >= 1.22,
# `appendString` with escapeHTML=true, as Marshal uses; read via the code search corpus):
#   * no whitespace; `null`, `true`, `false`; integers in decimal;
#   * map keys sorted by the raw UTF-8 bytes of the key (strings.Compare), before escaping;
#   * arrays `[...]`, an empty list is `[]`;
#   * in strings: `"` -> \"  and `\` -> \\ ; the control bytes \b \f \n \r \t -> \b \f \n \r \t
#     (Go >= 1.22; older Go wrote \u0008 and \u000c); every other byte < 0x20 -> \u00XX with
#     lower-case hex; `<` `>` `&` -> \u003c \u003e \u0026 (HTML escaping); U+2028, U+2029 ->
#     \u2028, \u2029; each byte that does not start a valid UTF-8 sequence (utf8.DecodeRune gives
#     RuneError with size 1) -> the six characters \ufffd, one per invalid byte; DEL (0x7f) and
#     everything else are copied raw (a valid U+FFFD in the input stays raw UTF-8).
# Strings may be given as str or as bytes (bytes may hold invalid UTF-8, as Go strings can).
# Floats are refused: ipfs-log signs none and Go's float formatting is not reproduced here.
#
# Theory of operation: all work is on UTF-8 bytes. A string needing no escapes (the usual case) is
# detected at C speed on CPython with bytes.translate and copied as is; otherwise a short chain of
# bytes.replace calls rewrites it. Invalid UTF-8 is split into valid runs and single bad bytes.

from node._compat import TYPE_CHECKING
from node.errors import LocalProtocolError
from node.sync.utf8 import decode_strict, sequence_length

if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 64

# (raw byte sequence, Go escape); the backslash must come first.
_ESCAPES = [(b"\\", b"\\\\"), (b'"', b'\\"')]
for _b in range(0x20):
    _short = {0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}.get(_b)
    _ESCAPES.append((bytes((_b,)), _short or (b"\\u00%02x" % _b)))
_ESCAPES.append((b"<", b"\\u003c"))
_ESCAPES.append((b">", b"\\u003e"))
_ESCAPES.append((b"&", b"\\u0026"))
_ESCAPES.append((b"\xe2\x80\xa8", b"\\u2028"))
_ESCAPES.append((b"\xe2\x80\xa9", b"\\u2029"))

# ASCII bytes that need escaping (U+2028/U+2029 are checked separately).
_ESCAPED_ASCII = bytes(range(0x20)) + b'"\\<>&'
_HAS_TRANSLATE = hasattr(b"", "translate")
_INVALID = b"\\ufffd"


def _escape_valid(raw: bytes) -> bytes:
    """JSON string body for valid UTF-8 `raw` (no quotes)."""
    if (
        _HAS_TRANSLATE
        and len(raw.translate(None, _ESCAPED_ASCII)) == len(raw)
        and b"\xe2\x80\xa8" not in raw
        and b"\xe2\x80\xa9" not in raw
    ):
        return raw
    for plain, escaped in _ESCAPES:
        if plain in raw:
            raw = raw.replace(plain, escaped)
    return raw


def _escape_any(raw: bytes) -> bytes:
    """JSON string body for bytes that may hold invalid UTF-8 (Go's per-byte \\ufffd rule)."""
    if decode_strict(raw) is not None:
        return _escape_valid(raw)
    pieces = []
    run_start = 0
    pos = 0
    end = len(raw)
    while pos < end:
        if raw[pos] < 0x80:
            pos += 1
            continue
        size = sequence_length(raw, pos)
        if size:
            pos += size
            continue
        pieces.append(_escape_valid(raw[run_start:pos]))
        pieces.append(_INVALID)
        pos += 1
        run_start = pos
    pieces.append(_escape_valid(raw[run_start:]))
    return b"".join(pieces)


def _string_bytes(value: "str | bytes | bytearray") -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeError:
            raise LocalProtocolError("string is not encodable as UTF-8 (lone surrogate?)") from None
    return bytes(value)


def _quote(value: "str | bytes | bytearray", out: "list[bytes]") -> None:
    out.append(b'"')
    if isinstance(value, str):
        out.append(_escape_valid(_string_bytes(value)))
    else:
        out.append(_escape_any(bytes(value)))
    out.append(b'"')


def _key_order(item: "tuple[bytes, Any]") -> bytes:
    return item[0]


def _dump_into(obj: "Any", out: "list[bytes]", depth: int) -> None:
    if obj is None:
        out.append(b"null")
    elif obj is True:
        out.append(b"true")
    elif obj is False:
        out.append(b"false")
    elif type(obj) is int:
        out.append(str(obj).encode())
    elif type(obj) is str or isinstance(obj, (bytes, bytearray)):
        _quote(obj, out)
    elif isinstance(obj, dict):
        if depth >= MAX_DEPTH:
            raise LocalProtocolError("nesting deeper than %d" % MAX_DEPTH)
        items = []
        for key, value in obj.items():
            if type(key) is not str and not isinstance(key, (bytes, bytearray)):
                raise LocalProtocolError("Go-JSON map keys must be str or bytes, got %r" % (key,))
            items.append((_string_bytes(key), value))
        items.sort(key=_key_order)
        out.append(b"{")
        first = True
        for raw_key, value in items:
            if not first:
                out.append(b",")
            first = False
            out.append(b'"')
            out.append(_escape_any(raw_key))
            out.append(b'":')
            _dump_into(value, out, depth + 1)
        out.append(b"}")
    elif isinstance(obj, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise LocalProtocolError("nesting deeper than %d" % MAX_DEPTH)
        out.append(b"[")
        first = True
        for value in obj:
            if not first:
                out.append(b",")
            first = False
            _dump_into(value, out, depth + 1)
        out.append(b"]")
    elif isinstance(obj, int):  # int subclass; bool was handled above
        out.append(str(int(obj)).encode())
    else:
        raise LocalProtocolError("cannot encode %s as Go JSON" % type(obj).__name__)


def dumps(obj: "Any") -> bytes:
    """Go `json.Marshal` bytes of `obj`.

    Args:
        obj: None, bool, int, str, bytes (a Go string, possibly invalid UTF-8), list/tuple, or a
            dict with str/bytes keys, nested.

    Raises:
        LocalProtocolError: floats or other types, or keys that are not strings.
    """
    out: "list[bytes]" = []
    _dump_into(obj, out, 0)
    return b"".join(out)
