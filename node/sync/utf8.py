# Strict UTF-8 checks shared by the codecs (L0, portable).
#
# Theory of operation: valid UTF-8 is what RFC 3629 (and Go's unicode/utf8, and CPython's strict
# codec) accept: shortest forms only, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF. The
# lead byte fixes the length and the allowed range of the second byte:
#     00..7F        1 byte
#     C2..DF        2 bytes, second 80..BF
#     E0            3 bytes, second A0..BF (no overlongs)
#     E1..EC EE..EF 3 bytes, second 80..BF
#     ED            3 bytes, second 80..9F (no surrogates)
#     F0            4 bytes, second 90..BF (no overlongs)
#     F1..F3        4 bytes, second 80..BF
#     F4            4 bytes, second 80..8F (nothing above U+10FFFF)
# and every further byte is 80..BF. CPython's strict decoder already enforces exactly this, so on
# CPython we let it run at C speed and only scan by hand to report where it failed. MicroPython's
# decoder accepts overlongs, surrogates and code points above U+10FFFF, so there we always scan.

from node._compat import IS_MICROPYTHON


def sequence_length(data: bytes, pos: int) -> int:
    """Length (1..4) of the valid UTF-8 sequence starting at `pos`, or 0 if it is invalid there."""
    lead = data[pos]
    if lead < 0x80:
        return 1
    end = len(data)
    if 0xC2 <= lead <= 0xDF:
        if pos + 1 < end and 0x80 <= data[pos + 1] <= 0xBF:
            return 2
        return 0
    if 0xE0 <= lead <= 0xEF:
        low, high = 0x80, 0xBF
        if lead == 0xE0:
            low = 0xA0
        elif lead == 0xED:
            high = 0x9F
        if pos + 2 < end and low <= data[pos + 1] <= high and 0x80 <= data[pos + 2] <= 0xBF:
            return 3
        return 0
    if 0xF0 <= lead <= 0xF4:
        low, high = 0x80, 0xBF
        if lead == 0xF0:
            low = 0x90
        elif lead == 0xF4:
            high = 0x8F
        if (
            pos + 3 < end
            and low <= data[pos + 1] <= high
            and 0x80 <= data[pos + 2] <= 0xBF
            and 0x80 <= data[pos + 3] <= 0xBF
        ):
            return 4
        return 0
    return 0


def first_invalid(data: bytes) -> int:
    """Offset of the first byte that does not start a valid UTF-8 sequence, or -1."""
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] < 0x80:
            pos += 1
            continue
        size = sequence_length(data, pos)
        if not size:
            return pos
        pos += size
    return -1


def decode_strict(data: bytes) -> "str | None":
    """`data` as str if it is valid UTF-8, else None."""
    if IS_MICROPYTHON:
        if first_invalid(data) >= 0:
            return None
        return str(data, "utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeError:
        return None
