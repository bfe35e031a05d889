# A small strict protobuf (proto3) wire codec with declarative schemas (L0).
#
# Theory of operation
# -------------------
# A message schema is a `Schema` listing `Field`s: number, name, kind and cardinality. Values are
# plain dicts keyed by field name. `encode(schema, values)` writes fields in field-number order,
# the order Go's protobuf (and every deterministic serializer) uses, and skips proto3 defaults:
# 0, False, b"", "", empty repeated fields and empty maps. A sub-message field is present when its
# value is not None (an empty dict encodes as the two bytes `tag 00`, as Go writes
# `ProtocolMetadata: &ProtocolMetadata{}`). Map entries are written sorted by key, each with both
# key and value (Go writes map entries that way, defaults included). Repeated numeric fields are
# written packed (the proto3 default).
#
# `decode(schema, data)` returns a dict with every field of the schema: absent scalars get their
# default, absent sub-messages None, repeated fields [] and maps {}. It follows proto3: unknown
# fields are skipped (their wire form must still be well-formed), repeated numeric fields are
# accepted packed and unpacked. It is stricter than proto3 where that costs no interoperability
# with what Go's Marshal emits, so that one message has one reading:
#   * a truncated or over-long varint (> 10 bytes, or a 10th byte above 1), a length beyond the
#     buffer, a fixed-width value cut short, field number 0, wire types 3/4 (groups) and 6/7,
#     a known field with the wrong wire type, a second occurrence of a singular known field,
#     a repeated map key, a string that is not UTF-8, a bool other than 0/1 and a value out of
#     range for its kind are all rejected with RemoteProtocolError naming the byte offset
#     (offsets count from the start of the outermost buffer);
#   * sizes are bounded: the whole input (`max_size`, default MAX_MESSAGE_BYTES) and the nesting
#     depth of sub-messages (MAX_DEPTH).
#
# Kinds: UINT64, UINT32, INT64, INT32, ENUM (int32 on the wire), BOOL (varint); FIXED64,
# SFIXED64 (I64); FIXED32, SFIXED32 (I32); BYTES, STRING, MESSAGE (length-delimited).
# zigzag (sint32/sint64) is not needed by any weshnet message and is not implemented.

import struct

from node.errors import REASON_TOO_LARGE, LocalProtocolError, RemoteProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WIRE_VARINT = 0
WIRE_I64 = 1
WIRE_LEN = 2
WIRE_SGROUP = 3
WIRE_EGROUP = 4
WIRE_I32 = 5

UINT64 = "uint64"
UINT32 = "uint32"
INT64 = "int64"
INT32 = "int32"
ENUM = "enum"
BOOL = "bool"
FIXED64 = "fixed64"
SFIXED64 = "sfixed64"
FIXED32 = "fixed32"
SFIXED32 = "sfixed32"
BYTES = "bytes"
STRING = "string"
MESSAGE = "message"

WIRE_OF_KIND = {
    UINT64: WIRE_VARINT,
    UINT32: WIRE_VARINT,
    INT64: WIRE_VARINT,
    INT32: WIRE_VARINT,
    ENUM: WIRE_VARINT,
    BOOL: WIRE_VARINT,
    FIXED64: WIRE_I64,
    SFIXED64: WIRE_I64,
    FIXED32: WIRE_I32,
    SFIXED32: WIRE_I32,
    BYTES: WIRE_LEN,
    STRING: WIRE_LEN,
    MESSAGE: WIRE_LEN,
}
# Inclusive value ranges of the numeric kinds.
RANGE_OF_KIND = {
    UINT64: (0, (1 << 64) - 1),
    FIXED64: (0, (1 << 64) - 1),
    UINT32: (0, (1 << 32) - 1),
    FIXED32: (0, (1 << 32) - 1),
    INT64: (-(1 << 63), (1 << 63) - 1),
    SFIXED64: (-(1 << 63), (1 << 63) - 1),
    INT32: (-(1 << 31), (1 << 31) - 1),
    ENUM: (-(1 << 31), (1 << 31) - 1),
    SFIXED32: (-(1 << 31), (1 << 31) - 1),
}
MAP_KEY_KINDS = (UINT64, UINT32, INT64, INT32, BOOL, FIXED64, SFIXED64, FIXED32, SFIXED32, STRING)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # go-orbit-db's direct-channel limit; callers may lower it
MAX_DEPTH = 16
MAX_FIELD_NUMBER = (1 << 29) - 1
_U64 = 1 << 64


class Field:
    """One field of a schema.

    Attributes:
        number: the field number (1 .. 2**29-1).
        name: the key used in value dicts.
        kind: one of the kind constants.
        repeated: a list of values (numeric kinds are packed on output).
        message: the Schema of a MESSAGE field (or of a map's message values).
        key_kind: for a map field, the kind of its keys (kind is then the value kind).
    """

    __slots__ = ("key_kind", "kind", "message", "name", "number", "repeated", "wire")

    def __init__(
        self,
        number: int,
        name: str,
        kind: str,
        repeated: bool = False,
        message: "Schema | None" = None,
        key_kind: "str | None" = None,
    ) -> None:
        if kind not in WIRE_OF_KIND:
            raise LocalProtocolError("unknown protobuf kind %r" % (kind,))
        if not 1 <= number <= MAX_FIELD_NUMBER:
            raise LocalProtocolError("field number out of range: %d" % number)
        if (kind == MESSAGE) != (message is not None):
            raise LocalProtocolError("field %s: a schema goes with MESSAGE, and only there" % name)
        if key_kind is not None and (repeated or key_kind not in MAP_KEY_KINDS):
            raise LocalProtocolError("field %s: bad map declaration" % name)
        self.number = number
        self.name = name
        self.kind = kind
        self.repeated = repeated
        self.message = message
        self.key_kind = key_kind
        self.wire = WIRE_OF_KIND[kind]

    def __repr__(self) -> str:
        return "Field(%d, %r, %r)" % (self.number, self.name, self.kind)


def map_field(
    number: int, name: str, key_kind: str, value_kind: str, message: "Schema | None" = None
) -> Field:
    """A `map<key_kind, value_kind>` field (value dicts hold a Python dict)."""
    return Field(number, name, value_kind, message=message, key_kind=key_kind)


class Schema:
    """A message type: a name (for error messages) and its fields."""

    __slots__ = ("by_number", "fields", "name")

    def __init__(self, name: str, fields: "list[Field]") -> None:
        self.name = name
        self.fields = sorted(fields, key=lambda f: f.number)
        self.by_number: dict[int, Field] = {}
        names = set()
        for f in self.fields:
            if f.number in self.by_number or f.name in names:
                raise LocalProtocolError("%s: duplicate field %d %s" % (name, f.number, f.name))
            self.by_number[f.number] = f
            names.add(f.name)

    def __repr__(self) -> str:
        return "Schema(%r)" % (self.name,)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_varint(value: int) -> bytes:
    """The base-128 varint of a non-negative int below 2**64."""
    if value < 0 or value >= _U64:
        raise LocalProtocolError("varint out of range: %d" % value)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return encode_varint((number << 3) | wire)


def _check_range(kind: str, value: "Any", where: str) -> int:
    if value is True or value is False or type(value) is not int:
        raise LocalProtocolError("%s: %s wants an int, got %r" % (where, kind, value))
    low, high = RANGE_OF_KIND[kind]
    if not low <= value <= high:
        raise LocalProtocolError("%s: %d out of range for %s" % (where, value, kind))
    return value


def _encode_scalar(kind: str, value: "Any", where: str, depth: int) -> bytes:
    """The payload of one value (without tag; with the length prefix for LEN kinds)."""
    if kind == BOOL:
        if value is not True and value is not False:
            raise LocalProtocolError("%s: bool wants True or False, got %r" % (where, value))
        return b"\x01" if value else b"\x00"
    if kind in (BYTES, STRING, MESSAGE):
        if kind == BYTES:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise LocalProtocolError("%s: bytes wanted, got %r" % (where, type(value)))
            data = bytes(value)
        elif kind == STRING:
            if not isinstance(value, str):
                raise LocalProtocolError("%s: str wanted, got %r" % (where, type(value)))
            data = value.encode()
        else:
            raise LocalProtocolError("%s: message values go through _encode_message" % where)
        return encode_varint(len(data)) + data
    number = _check_range(kind, value, where)
    if kind == FIXED64:
        return struct.pack("<Q", number)
    if kind == SFIXED64:
        return struct.pack("<q", number)
    if kind == FIXED32:
        return struct.pack("<I", number)
    if kind == SFIXED32:
        return struct.pack("<i", number)
    return encode_varint(number % _U64)  # negative int32/int64/enum: 10-byte two's complement


def _is_default(kind: str, value: "Any") -> bool:
    if kind == BOOL:
        return value is False
    if kind == BYTES:
        return len(value) == 0
    if kind == STRING:
        return bool(value == "")
    return bool(value is not False and value == 0)


def _encode_value(f: Field, value: "Any", where: str, depth: int) -> bytes:
    if f.kind == MESSAGE:
        if not isinstance(value, dict):
            raise LocalProtocolError("%s: dict wanted for a message, got %r" % (where, type(value)))
        assert f.message is not None
        body = _encode_message(f.message, value, depth + 1)
        return encode_varint(len(body)) + body
    return _encode_scalar(f.kind, value, where, depth)


def _encode_message(schema: Schema, values: "dict[str, Any]", depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise LocalProtocolError("%s: nested deeper than %d" % (schema.name, MAX_DEPTH))
    known = {f.name for f in schema.fields}
    for key in values:
        if key not in known:
            raise LocalProtocolError("%s has no field %r" % (schema.name, key))
    out = []
    for f in schema.fields:
        value = values.get(f.name)
        if value is None:
            continue
        where = schema.name + "." + f.name
        if f.key_kind is not None:
            if not isinstance(value, dict):
                raise LocalProtocolError("%s: dict wanted for a map" % where)
            tag = _tag(f.number, WIRE_LEN)
            for key in sorted(value):
                entry = _tag(1, WIRE_OF_KIND[f.key_kind]) + _encode_scalar(
                    f.key_kind, key, where, depth
                )
                item = value[key]
                if item is None:
                    raise LocalProtocolError("%s[%r]: None is not a map value" % (where, key))
                entry += _tag(2, f.wire) + _encode_value(f, item, where, depth)
                out.append(tag + encode_varint(len(entry)) + entry)
        elif f.repeated:
            if not isinstance(value, (list, tuple)):
                raise LocalProtocolError("%s: list wanted for a repeated field" % where)
            if not value:
                continue
            if f.wire == WIRE_LEN:
                tag = _tag(f.number, WIRE_LEN)
                for item in value:
                    out.append(tag + _encode_value(f, item, where, depth))
            else:
                packed = b"".join(_encode_scalar(f.kind, item, where, depth) for item in value)
                out.append(_tag(f.number, WIRE_LEN) + encode_varint(len(packed)) + packed)
        elif f.kind == MESSAGE:
            out.append(_tag(f.number, WIRE_LEN) + _encode_value(f, value, where, depth))
        else:
            encoded = _encode_scalar(f.kind, value, where, depth)
            if not _is_default(f.kind, value):
                out.append(_tag(f.number, f.wire) + encoded)
    return b"".join(out)


def encode(schema: Schema, values: "dict[str, Any]") -> bytes:
    """Serialize `values` (a dict keyed by field name) as `schema`, deterministically.

    Raises:
        LocalProtocolError: a value of the wrong type or range, or a name the schema lacks.
    """
    return _encode_message(schema, values, 0)


# ---------------------------------------------------------------------------------------------
# Decoding


def _malformed(schema: Schema, what: str, offset: int) -> RemoteProtocolError:
    return RemoteProtocolError("protobuf %s: %s at offset %d" % (schema.name, what, offset))


def _read_varint(data: bytes, pos: int, end: int, schema: Schema) -> "tuple[int, int]":
    """(value, new position) of the varint at `pos`; strict about length."""
    start = pos
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _malformed(schema, "truncated varint", start)
        byte = data[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise _malformed(schema, "varint overflows 64 bits", start)
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _malformed(schema, "varint longer than 10 bytes", start)


def _skip_field(data: bytes, pos: int, end: int, wire: int, schema: Schema, at: int) -> int:
    """Position after an unknown field's value (which must still be well-formed)."""
    if wire == WIRE_VARINT:
        return _read_varint(data, pos, end, schema)[1]
    if wire == WIRE_I64:
        if pos + 8 > end:
            raise _malformed(schema, "truncated fixed64", pos)
        return pos + 8
    if wire == WIRE_I32:
        if pos + 4 > end:
            raise _malformed(schema, "truncated fixed32", pos)
        return pos + 4
    if wire == WIRE_LEN:
        length, pos = _read_varint(data, pos, end, schema)
        if length > end - pos:
            raise _malformed(schema, "length %d beyond the buffer" % length, pos)
        return pos + length
    raise _malformed(schema, "wire type %d (groups and 6/7 are refused)" % wire, at)


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _read_scalar(
    data: bytes, pos: int, end: int, kind: str, schema: Schema, depth: int, at: int
) -> "tuple[Any, int]":
    """Decode one value of `kind` whose wire type has been checked; return (value, new pos)."""
    wire = WIRE_OF_KIND[kind]
    if wire == WIRE_VARINT:
        raw, new = _read_varint(data, pos, end, schema)
        if kind == BOOL:
            if raw > 1:
                raise _malformed(schema, "bool value %d" % raw, pos)
            return raw == 1, new
        if kind == INT64:
            return _signed(raw, 64), new
        if kind in (INT32, ENUM):
            value = _signed(raw, 64)
        else:
            value = raw
        low, high = RANGE_OF_KIND[kind]
        if not low <= value <= high:
            raise _malformed(schema, "%d out of range for %s" % (value, kind), pos)
        return value, new
    if wire == WIRE_I64:
        if pos + 8 > end:
            raise _malformed(schema, "truncated fixed64", pos)
        fmt = "<q" if kind == SFIXED64 else "<Q"
        return struct.unpack(fmt, data[pos : pos + 8])[0], pos + 8
    if wire == WIRE_I32:
        if pos + 4 > end:
            raise _malformed(schema, "truncated fixed32", pos)
        fmt = "<i" if kind == SFIXED32 else "<I"
        return struct.unpack(fmt, data[pos : pos + 4])[0], pos + 4
    length, body = _read_varint(data, pos, end, schema)
    if length > end - body:
        raise _malformed(schema, "length %d beyond the buffer" % length, body)
    stop = body + length
    if kind == BYTES:
        return bytes(data[body:stop]), stop
    if kind == STRING:
        try:
            return bytes(data[body:stop]).decode(), stop
        except UnicodeError:
            raise _malformed(schema, "string is not UTF-8", body) from None
    raise _malformed(schema, "internal: message kind in _read_scalar", at)


def _read_value(
    data: bytes, pos: int, end: int, f: Field, schema: Schema, depth: int, at: int
) -> "tuple[Any, int]":
    if f.kind != MESSAGE:
        return _read_scalar(data, pos, end, f.kind, schema, depth, at)
    length, body = _read_varint(data, pos, end, schema)
    if length > end - body:
        raise _malformed(schema, "length %d beyond the buffer" % length, body)
    assert f.message is not None
    return _decode_message(f.message, data, body, body + length, depth + 1), body + length


def _read_map_entry(
    data: bytes, pos: int, end: int, f: Field, schema: Schema, depth: int
) -> "tuple[Any, Any, int]":
    """(key, value, new pos) of one map entry (a nested message with key = 1, value = 2)."""
    length, body = _read_varint(data, pos, end, schema)
    if length > end - body:
        raise _malformed(schema, "length %d beyond the buffer" % length, body)
    stop = body + length
    assert f.key_kind is not None
    key: Any = _default(f.key_kind)
    value: Any = None
    seen_key = False
    p = body
    while p < stop:
        at = p
        tag, p = _read_varint(data, p, stop, schema)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _malformed(schema, "field number 0", at)
        if number == 1 or number == 2:
            kind = f.key_kind if number == 1 else f.kind
            if wire != WIRE_OF_KIND[kind]:
                raise _malformed(
                    schema, "map %s entry field %d wire type %d" % (f.name, number, wire), at
                )
            if (number == 1 and seen_key) or (number == 2 and value is not None):
                raise _malformed(schema, "map %s entry repeats field %d" % (f.name, number), at)
            if number == 1:
                key, p = _read_scalar(data, p, stop, kind, schema, depth, at)
                seen_key = True
            elif f.kind == MESSAGE:
                value, p = _read_value(data, p, stop, f, schema, depth, at)
            else:
                value, p = _read_scalar(data, p, stop, kind, schema, depth, at)
        else:
            p = _skip_field(data, p, stop, wire, schema, at)
    if value is None:  # an absent value is the default (an empty message for message values)
        if f.message is not None:
            value = _decode_message(f.message, b"", 0, 0, depth + 1)
        else:
            value = _default(f.kind)
    return key, value, stop


def _default(kind: str) -> "Any":
    if kind == BOOL:
        return False
    if kind == BYTES:
        return b""
    if kind == STRING:
        return ""
    if kind == MESSAGE:
        return None
    return 0


def _decode_message(
    schema: Schema, data: bytes, pos: int, end: int, depth: int
) -> "dict[str, Any]":
    if depth > MAX_DEPTH:
        raise RemoteProtocolError(
            "protobuf %s: nested deeper than %d at offset %d" % (schema.name, MAX_DEPTH, pos),
            REASON_TOO_LARGE,
        )
    out: dict[str, Any] = {}
    for f in schema.fields:
        if f.key_kind is not None:
            out[f.name] = {}
        elif f.repeated:
            out[f.name] = []
        else:
            out[f.name] = _default(f.kind)
    seen = set()
    while pos < end:
        at = pos
        tag, pos = _read_varint(data, pos, end, schema)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _malformed(schema, "field number 0", at)
        if number > MAX_FIELD_NUMBER:
            raise _malformed(schema, "field number %d too large" % number, at)
        found = schema.by_number.get(number)
        if found is None:
            pos = _skip_field(data, pos, end, wire, schema, at)
            continue
        f = found
        if f.key_kind is not None:
            if wire != WIRE_LEN:
                raise _malformed(schema, "field %s has wire type %d" % (f.name, wire), at)
            key, value, pos = _read_map_entry(data, pos, end, f, schema, depth)
            if key in out[f.name]:
                raise _malformed(schema, "map %s repeats key %r" % (f.name, key), at)
            out[f.name][key] = value
            continue
        if f.repeated and wire == WIRE_LEN and f.wire != WIRE_LEN:  # packed numbers
            length, body = _read_varint(data, pos, end, schema)
            if length > end - body:
                raise _malformed(schema, "length %d beyond the buffer" % length, body)
            stop = body + length
            while body < stop:
                value, body = _read_scalar(data, body, stop, f.kind, schema, depth, body)
                out[f.name].append(value)
            pos = stop
            continue
        if wire != f.wire:
            raise _malformed(schema, "field %s has wire type %d" % (f.name, wire), at)
        value, pos = _read_value(data, pos, end, f, schema, depth, at)
        if f.repeated:
            out[f.name].append(value)
        else:
            if number in seen:
                raise _malformed(schema, "field %s occurs twice" % f.name, at)
            seen.add(number)
            out[f.name] = value
    return out


def decode(schema: Schema, data: bytes, max_size: int = MAX_MESSAGE_BYTES) -> "dict[str, Any]":
    """Parse `data` as `schema`; return a dict with every field (defaults for absent ones).

    Raises:
        RemoteProtocolError: malformed input (the message names the byte offset), or input larger
            than `max_size` (reason too-large).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LocalProtocolError("decode wants bytes, got %r" % (type(data),))
    if len(data) > max_size:
        raise RemoteProtocolError(
            "protobuf %s: %d bytes exceed the limit of %d at offset 0"
            % (schema.name, len(data), max_size),
            REASON_TOO_LARGE,
        )
    data = bytes(data)
    return _decode_message(schema, data, 0, len(data), 0)
