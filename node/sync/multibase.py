# Multibase text forms used for CIDs (L0, portable): base32 and base58btc.
#
# Theory of operation:
#   * base32: RFC 4648 alphabet in lower case ("abcdefghijklmnopqrstuvwxyz234567"), no padding;
#     multibase prefix "b". Input bits are taken 5 at a time, most significant first; the last group
#     is padded with zero bits. Decoding is strict: only the lower-case alphabet, no "=", a length
#     whose remainder mod 8 is 0, 2, 4, 5 or 7 (others cannot come from whole bytes), and the unused
#     low bits of the last character must be zero (so each byte string has one text form).
#   * base58btc: Bitcoin alphabet; multibase prefix "z". The bytes are read as one big-endian
#     integer written in base 58; each leading 0x00 byte becomes a leading "1".
# The functions here handle the bare encodings; `multibase_encode/decode` add/strip the prefix.
# Hostile text raises RemoteProtocolError naming the character offset.

from node.errors import LocalProtocolError, RemoteProtocolError

BASE32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

BASE32_PREFIX = "b"
BASE58BTC_PREFIX = "z"

_B32_INDEX = {}
for _i in range(32):
    _B32_INDEX[BASE32_ALPHABET[_i]] = _i
_B58_INDEX = {}
for _i in range(58):
    _B58_INDEX[BASE58_ALPHABET[_i]] = _i

# Valid base32 text lengths mod 8 -> number of unused low bits in the last character.
_B32_TAIL_BITS = {0: 0, 2: 2, 4: 4, 5: 1, 7: 3}


def base32_encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding."""
    out = []
    acc = 0
    bits = 0
    alphabet = BASE32_ALPHABET
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append(alphabet[(acc >> bits) & 31])
        acc &= (1 << bits) - 1
    if bits:
        out.append(alphabet[(acc << (5 - bits)) & 31])
    return "".join(out)


def base32_decode(text: str, first_offset: int = 0) -> bytes:
    """Strict inverse of base32_encode; raises RemoteProtocolError naming the offset.

    `first_offset` is added to offsets in messages (1 when a multibase prefix was stripped).
    """
    tail = _B32_TAIL_BITS.get(len(text) % 8)
    if tail is None:
        raise RemoteProtocolError(
            "base32 text has impossible length %d, ends at offset %d"
            % (len(text), len(text) + first_offset)
        )
    out = bytearray()
    acc = 0
    bits = 0
    index = _B32_INDEX
    for pos, ch in enumerate(text):
        value = index.get(ch)
        if value is None:
            raise RemoteProtocolError(
                "invalid base32 character %r at offset %d" % (ch, pos + first_offset)
            )
        acc = (acc << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
            acc &= (1 << bits) - 1
    if acc:
        raise RemoteProtocolError(
            "base32 text has non-zero padding bits at offset %d" % (len(text) - 1 + first_offset)
        )
    return bytes(out)


def base58_encode(data: bytes) -> str:
    """base58btc (Bitcoin alphabet)."""
    zeros = 0
    for byte in data:
        if byte:
            break
        zeros += 1
    num = int.from_bytes(data, "big")
    out = []
    alphabet = BASE58_ALPHABET
    while num:
        num, rem = divmod(num, 58)
        out.append(alphabet[rem])
    out.append("1" * zeros)
    out.reverse()
    return "".join(out)


def base58_decode(text: str, first_offset: int = 0) -> bytes:
    """Inverse of base58_encode; raises RemoteProtocolError naming the offset (+first_offset)."""
    zeros = 0
    for ch in text:
        if ch != "1":
            break
        zeros += 1
    num = 0
    index = _B58_INDEX
    for pos, ch in enumerate(text):
        value = index.get(ch)
        if value is None:
            raise RemoteProtocolError(
                "invalid base58 character %r at offset %d" % (ch, pos + first_offset)
            )
        num = num * 58 + value
    body = b""
    if num:
        length = 0
        probe = num
        while probe:
            probe >>= 8
            length += 1
        body = num.to_bytes(length, "big")
    return bytes(zeros) + body


def multibase_encode(prefix: str, data: bytes) -> str:
    """Prefix + encoding, for prefix "b" (base32) or "z" (base58btc)."""
    if prefix == BASE32_PREFIX:
        return prefix + base32_encode(data)
    if prefix == BASE58BTC_PREFIX:
        return prefix + base58_encode(data)
    raise LocalProtocolError("unsupported multibase prefix %r" % (prefix,))


def multibase_decode(text: str) -> "tuple[str, bytes]":
    """Returns (prefix, bytes) for base32 "b..." or base58btc "z..." text.

    Raises:
        RemoteProtocolError: empty text, other multibase prefixes, or bad characters (offsets
            count from the start of `text`, prefix included).
    """
    if not text:
        raise RemoteProtocolError("empty multibase text")
    prefix = text[0]
    if prefix == BASE32_PREFIX:
        return prefix, base32_decode(text[1:], 1)
    if prefix == BASE58BTC_PREFIX:
        return prefix, base58_decode(text[1:], 1)
    raise RemoteProtocolError("unsupported multibase prefix %r at offset 0" % (prefix,))
