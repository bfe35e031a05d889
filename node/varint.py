# Unsigned LEB128 varints as multiformats uses them (L0; shared by node.sync and node.proto).
#
# Theory of operation: a value is written 7 bits at a time, least significant group first; every
# byte except the last has its high bit (0x80) set. Multiformats requires the minimal encoding (no
# trailing 0x00 continuation group) and caps varints at 9 bytes, i.e. 63 bits. decode_uvarint
# enforces both, so every value has exactly one accepted encoding, and a hostile peer cannot make
# us build a huge integer.

from node.errors import LocalProtocolError, RemoteProtocolError

MAX_UVARINT_BYTES = 9
MAX_UVARINT = (1 << 63) - 1


def encode_uvarint(value: int) -> bytes:
    """Minimal unsigned varint of `value` (0 <= value < 2**63)."""
    if type(value) is not int or value < 0 or value > MAX_UVARINT:
        raise LocalProtocolError("uvarint value out of range [0, 2**63): %r" % (value,))
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes, offset: int = 0) -> "tuple[int, int]":
    """Decode one minimal uvarint starting at `offset`.

    Returns:
        (value, offset just past the varint).

    Raises:
        RemoteProtocolError: truncated, longer than 9 bytes, or not minimally encoded; the
            message names the byte offset where the varint starts.
    """
    value = 0
    shift = 0
    pos = offset
    end = len(data)
    while True:
        if pos >= end:
            raise RemoteProtocolError("truncated uvarint at offset %d" % offset)
        if pos - offset >= MAX_UVARINT_BYTES:
            raise RemoteProtocolError("uvarint longer than 9 bytes at offset %d" % offset)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and pos - offset > 1:
                raise RemoteProtocolError("non-minimal uvarint at offset %d" % offset)
            return value, pos
        shift += 7
