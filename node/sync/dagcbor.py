# Strict DAG-CBOR (https://ipld.io/specs/codecs/dag-cbor/spec/) encode and decode (L0, portable).
#
# Theory of operation. A CBOR item starts with one byte: major type (high 3 bits) and "additional
# info" (low 5 bits). Info 0..23 is the argument itself; 24, 25, 26, 27 mean the argument follows in
# 1, 2, 4, 8 big-endian bytes. The argument is the value (major 0 uint, major 1 negative int
# -1-arg), the byte length (2 bytes, 3 UTF-8 text), the item count (4 array, 5 map of pairs) or the
# tag number (6). Major 7 carries false (0xf4), true (0xf5), null (0xf6) and float64 (0xfb + 8).
#
# The DAG-CBOR subset we write and accept, and nothing else:
#   * arguments in their shortest form (info 24 only for >= 24, 25 for >= 256, ...);
#   * integers in [-2**64, 2**64 - 1];
#   * floats only as 64-bit (0xfb), never NaN or +-Infinity;
#   * definite lengths only (info 31 refused), no undefined (0xf7), no other simple values;
#   * map keys are text strings, in canonical order: shorter encoded key first, then bytewise
#     (for text keys that equals ordering by (len(utf8), utf8)); no duplicates;
#   * the only tag is 42 (0xd8 0x2a), whose content is a byte string 0x00 ‖ binary CID (cid.py);
#   * text is valid UTF-8; nothing may follow the top-level item.
# Decoding maps to dict, arrays to list, byte strings to bytes, tag 42 to CID. The decoder checks a
# container's announced size against the bytes that remain before it allocates anything, and
# refuses nesting deeper than MAX_DEPTH. A caller that knows its schema also caps the items a block
# may announce (decode's max_items), so a hostile block costs at most a small constant times its
# size. Every refusal is a RemoteProtocolError whose message names the byte offset.
#
# Encoding is recursive with one list of byte pieces joined at the end (no per-byte loops).

import struct

from node._compat import TYPE_CHECKING
from node.errors import LocalProtocolError, RemoteProtocolError
from node.sync.cid import CID
from node.sync.utf8 import decode_strict, first_invalid

if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 64

_UINT64_MAX = 0xFFFFFFFFFFFFFFFF
_CID_TAG_HEAD = b"\xd8\x2a"
_FALSE = b"\xf4"
_TRUE = b"\xf5"
_NULL = b"\xf6"
_FLOAT64 = 0xFB
_INF = float("inf")

# _SMALL_HEADS[major][n] for n < 24: the one-byte head of major type `major` with argument n.
_SMALL_HEADS = [[bytes(((major << 5) | n,)) for n in range(24)] for major in range(8)]


def _head(major: int, arg: int) -> bytes:
    """The shortest head for `major` with argument `arg` (0 <= arg < 2**64)."""
    if arg < 24:
        return _SMALL_HEADS[major][arg]
    base = major << 5
    if arg < 0x100:
        return bytes((base | 24, arg))
    if arg < 0x10000:
        return struct.pack(">BH", base | 25, arg)
    if arg < 0x100000000:
        return struct.pack(">BI", base | 26, arg)
    return struct.pack(">BQ", base | 27, arg)


def _map_key_order(item: "tuple[bytes, Any]") -> "tuple[int, bytes]":
    return len(item[0]), item[0]


def _encode_into(obj: "Any", out: "list[bytes]", depth: int) -> None:
    if obj is None:
        out.append(_NULL)
    elif obj is True:
        out.append(_TRUE)
    elif obj is False:
        out.append(_FALSE)
    elif type(obj) is int:
        if obj >= 0:
            if obj > _UINT64_MAX:
                raise LocalProtocolError("integer %d is above DAG-CBOR's 2**64-1" % obj)
            out.append(_head(0, obj))
        else:
            if obj < -_UINT64_MAX - 1:
                raise LocalProtocolError("integer %d is below DAG-CBOR's -2**64" % obj)
            out.append(_head(1, -1 - obj))
    elif type(obj) is str:
        try:
            raw = obj.encode("utf-8")
        except UnicodeError:
            raise LocalProtocolError("text is not encodable as UTF-8 (lone surrogate?)") from None
        out.append(_head(3, len(raw)))
        out.append(raw)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        out.append(_head(2, len(raw)))
        out.append(raw)
    elif isinstance(obj, dict):
        if depth >= MAX_DEPTH:
            raise LocalProtocolError("nesting deeper than %d" % MAX_DEPTH)
        items = []
        for key, value in obj.items():
            if type(key) is not str:
                raise LocalProtocolError("DAG-CBOR map keys must be str, got %r" % (key,))
            try:
                items.append((key.encode("utf-8"), value))
            except UnicodeError:
                raise LocalProtocolError("map key is not encodable as UTF-8") from None
        items.sort(key=_map_key_order)
        out.append(_head(5, len(items)))
        for raw_key, value in items:
            out.append(_head(3, len(raw_key)))
            out.append(raw_key)
            _encode_into(value, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise LocalProtocolError("nesting deeper than %d" % MAX_DEPTH)
        out.append(_head(4, len(obj)))
        for value in obj:
            _encode_into(value, out, depth + 1)
    elif isinstance(obj, CID):
        out.append(_CID_TAG_HEAD)
        binary = obj.to_bytes()
        out.append(_head(2, len(binary) + 1))
        out.append(b"\x00")
        out.append(binary)
    elif type(obj) is float:
        if obj != obj or obj == _INF or obj == -_INF:
            raise LocalProtocolError("DAG-CBOR forbids NaN and Infinity")
        out.append(struct.pack(">Bd", _FLOAT64, obj))
    elif isinstance(obj, int):  # an int subclass (bool was handled above)
        _encode_into(int(obj), out, depth)
    else:
        raise LocalProtocolError("cannot encode %s as DAG-CBOR" % type(obj).__name__)


def encode(obj: "Any") -> bytes:
    """Encode `obj` as strict DAG-CBOR.

    Args:
        obj: None, bool, int, finite float, bytes, str, list/tuple, dict with str keys, CID.

    Raises:
        LocalProtocolError: a value outside the data model (our caller's bug).
    """
    out: "list[bytes]" = []
    _encode_into(obj, out, 0)
    return b"".join(out)


def _fail(what: str, offset: int) -> RemoteProtocolError:
    return RemoteProtocolError("DAG-CBOR: %s at offset %d" % (what, offset))


def read_head(data: bytes, pos: int) -> "tuple[int, int, int]":
    """The one CBOR head parser: (major type, argument, offset past the head) of the item at `pos`.

    For major type 7 the argument is the additional info itself (the caller decides what it
    accepts). The decoder and the entry fast path (entry_fields.py) read every head with this.

    Raises:
        RemoteProtocolError: truncated, non-shortest, indefinite or reserved argument.
        IndexError: `pos` is past the end of `data`.
    """
    initial = data[pos]
    major = initial >> 5
    info = initial & 31
    if info < 24 or major == 7:
        return major, info, pos + 1
    if info == 24:
        if pos + 2 > len(data):
            raise _fail("truncated 1-byte argument", pos)
        arg = data[pos + 1]
        if arg < 24:
            raise _fail("non-shortest argument %d" % arg, pos)
        return major, arg, pos + 2
    if info == 25:
        if pos + 3 > len(data):
            raise _fail("truncated 2-byte argument", pos)
        arg = (data[pos + 1] << 8) | data[pos + 2]
        if arg < 0x100:
            raise _fail("non-shortest argument %d" % arg, pos)
        return major, arg, pos + 3
    if info == 26:
        if pos + 5 > len(data):
            raise _fail("truncated 4-byte argument", pos)
        arg = struct.unpack_from(">I", data, pos + 1)[0]
        if arg < 0x10000:
            raise _fail("non-shortest argument %d" % arg, pos)
        return major, arg, pos + 5
    if info == 27:
        if pos + 9 > len(data):
            raise _fail("truncated 8-byte argument", pos)
        arg = struct.unpack_from(">Q", data, pos + 1)[0]
        if arg < 0x100000000:
            raise _fail("non-shortest argument %d" % arg, pos)
        return major, arg, pos + 9
    if info == 31:
        raise _fail("indefinite length", pos)
    raise _fail("reserved additional info %d" % info, pos)


def _decode_text(data: bytes, pos: int, end: int, start: int) -> str:
    raw = data[pos:end]
    text = decode_strict(raw)
    if text is None:
        raise _fail("invalid UTF-8 in text (byte %d)" % (pos + first_invalid(raw)), start)
    return text


def _spend(budget: "list[int] | None", count: int, start: int) -> None:
    """Take `count` items from the caller's item budget before a container is built."""
    if budget is not None:
        budget[0] -= count
        if budget[0] < 0:
            raise _fail("more items than the %d allowed" % budget[1], start)


def _decode_item(
    data: bytes, pos: int, depth: int, budget: "list[int] | None"
) -> "tuple[Any, int]":
    start = pos
    initial = data[pos]
    pos += 1
    major = initial >> 5
    info = initial & 31
    if major == 7:
        if initial == 0xF6:
            return None, pos
        if initial == 0xF5:
            return True, pos
        if initial == 0xF4:
            return False, pos
        if initial == 0xFB:
            if pos + 8 > len(data):
                raise _fail("truncated float64", start)
            value = struct.unpack_from(">d", data, pos)[0]
            if value != value or value == _INF or value == -_INF:
                raise _fail("NaN or Infinity float", start)
            return value, pos + 8
        if initial == 0xF9 or initial == 0xFA:
            raise _fail("float narrower than 64 bits", start)
        if initial == 0xF7:
            raise _fail("undefined is not allowed", start)
        if initial == 0xFF:
            raise _fail("unexpected break (indefinite lengths are not allowed)", start)
        raise _fail("simple value 0x%02x is not allowed" % initial, start)
    if info >= 24:
        major, arg, pos = read_head(data, start)
    else:
        arg = info
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    remaining = len(data) - pos
    if major == 2:
        if arg > remaining:
            raise _fail("byte string of %d bytes but %d remain" % (arg, remaining), start)
        return data[pos : pos + arg], pos + arg
    if major == 3:
        if arg > remaining:
            raise _fail("text of %d bytes but %d remain" % (arg, remaining), start)
        return _decode_text(data, pos, pos + arg, start), pos + arg
    if major == 4:
        if arg > remaining:
            raise _fail("array of %d items but %d bytes remain" % (arg, remaining), start)
        if depth >= MAX_DEPTH:
            raise _fail("nesting deeper than %d" % MAX_DEPTH, start)
        _spend(budget, arg, start)
        items = []
        for _ in range(arg):
            if pos >= len(data):
                raise _fail("truncated array", start)
            value, pos = _decode_item(data, pos, depth + 1, budget)
            items.append(value)
        return items, pos
    if major == 5:
        if arg * 2 > remaining:
            raise _fail("map of %d pairs but %d bytes remain" % (arg, remaining), start)
        if depth >= MAX_DEPTH:
            raise _fail("nesting deeper than %d" % MAX_DEPTH, start)
        _spend(budget, arg, start)
        result = {}
        previous = b""
        first = True
        end = len(data)
        for _ in range(arg):
            key_at = pos
            if pos >= end:
                raise _fail("truncated map", start)
            if data[pos] >> 5 != 3:
                raise _fail("map key is not a text string", key_at)
            _, key_len, pos = read_head(data, pos)
            if key_len > end - pos:
                raise _fail("text of %d bytes but %d remain" % (key_len, end - pos), key_at)
            raw_key = data[pos : pos + key_len]
            if not first:
                if raw_key == previous:
                    raise _fail("duplicate map key", key_at)
                if len(raw_key) < len(previous) or (
                    len(raw_key) == len(previous) and raw_key < previous
                ):
                    raise _fail("map keys not in canonical order", key_at)
            first = False
            previous = raw_key
            key = _decode_text(data, pos, pos + key_len, key_at)
            pos += key_len
            if pos >= end:
                raise _fail("truncated map (value missing)", key_at)
            value, pos = _decode_item(data, pos, depth + 1, budget)
            result[key] = value
        return result, pos
    # major 6: a tag; only 42 (CID) exists in DAG-CBOR.
    if arg != 42:
        raise _fail("tag %d is not allowed (only 42)" % arg, start)
    if pos >= len(data):
        raise _fail("truncated CID tag content", start)
    content_at = pos
    if data[pos] >> 5 != 2:
        raise _fail("CID tag content is not a byte string", content_at)
    content, pos = _decode_item(data, pos, depth + 1, budget)
    if len(content) < 1 or content[0] != 0:
        raise _fail("CID byte string lacks the 0x00 multibase prefix", content_at)
    try:
        cid = CID.from_bytes(bytes(content[1:]))
    except RemoteProtocolError as exc:
        raise _fail("bad CID (%s)" % exc.message, content_at) from None
    return cid, pos


def decode(data: bytes, max_items: "int | None" = None) -> "Any":
    """Decode one strict DAG-CBOR item that must fill `data` exactly.

    Args:
        data: the block.
        max_items: if given, the most array items plus map pairs the whole block may announce;
            a container past it is refused from its head, before anything is built for it, so
            a caller that knows its schema pays for at most that many items.

    Raises:
        RemoteProtocolError: any departure from the subset above; the message names the offset.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data:
        raise _fail("empty input", 0)
    budget = None if max_items is None else [max_items, max_items]
    value, pos = _decode_item(data, 0, 0, budget)
    if pos != len(data):
        raise _fail("%d trailing bytes" % (len(data) - pos), pos)
    return value
