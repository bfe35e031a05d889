# The byte level of reconciliation frames (L0, sans-IO, portable): op and mode codes, bounds,
# and the writer and readers of frames and RANGES sections. node/sync/reconcile.py decides what
# to say; this module only says it. Wire format byte by byte: docs/protocol.md, "Reconciliation".
#
# Theory of operation: a frame is VERSION, flags (FINAL ends a turn), then self-contained
# sections `log index, op, body`. _Writer packs sections into frames of at most max_frame bytes;
# _Reader walks a received frame and refuses what is truncated or out of range (RemoteProtocolError
# "malformed" naming the offset). A bound is a key (time, digest prefix) written as the time
# relative to the previous bound + 1 and the digest prefix without its trailing zeros; every
# bound received must be one we can write back (time < 2**63 - 1).

from node._compat import TYPE_CHECKING
from node.errors import REASON_MALFORMED, LocalProtocolError, RemoteProtocolError
from node.varint import MAX_UVARINT, decode_uvarint, encode_uvarint

if TYPE_CHECKING:
    from node.sync.keyset import Key, KeySet

    Bound = Key | None  # None is +infinity

VERSION = 0x57
FLAG_FINAL = 0x01

OP_OPEN = 1
OP_AHEAD = 2
OP_CUTS = 3
OP_RANGES = 4
OP_SKETCH = 5
OP_DIFF = 6

MODE_SKIP = 0
MODE_FP = 1
MODE_IDS = 2
MODE_FULLIDS = 3
MODE_NEED = 4

CUT_BYTES = 8
# The largest time a bound may carry: a bound is written as time - previous time + 1 (the first of
# a RANGES section against 0), so time + 1 must itself be a uvarint (< 2**63).
MAX_BOUND_TIME = MAX_UVARINT - 1
MAX_CUTS = 63
MIN_FRAME = 256
ZERO32 = bytes(32)
FF32 = b"\xff" * 32


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError("reconcile: " + message, REASON_MALFORMED)


def _strip_zeros(digest: bytes) -> bytes:
    end = len(digest)
    while end > 0 and digest[end - 1] == 0:
        end -= 1
    return digest[:end]


def bound_between(prev: "Key", nxt: "Key") -> "Key":
    """The shortest bound b with prev < b <= nxt (as a key: time, zero-padded digest prefix)."""
    if prev[0] != nxt[0]:
        return (nxt[0], ZERO32)
    a = prev[1]
    b = nxt[1]
    i = 0
    while a[i] == b[i]:
        i += 1
    return (nxt[0], b[: i + 1] + bytes(31 - i))


def bound_after(key: "Key") -> "Key":
    """The smallest bound greater than `key`."""
    if key[1] == FF32:
        return (key[0] + 1, ZERO32)
    return (key[0], (int.from_bytes(key[1], "big") + 1).to_bytes(32, "big"))


class _Writer:
    """Encodes sections into frames of at most max_frame bytes."""

    __slots__ = ("current", "frames", "max_frame")

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self.frames: list[bytearray] = []
        self.current = bytearray((VERSION, 0))

    def room(self) -> int:
        return self.max_frame - len(self.current)

    def add(self, section: bytes) -> None:
        if len(section) > self.max_frame - 2:
            raise LocalProtocolError("reconcile: section larger than a frame")
        if len(section) > self.room():
            self.frames.append(self.current)
            self.current = bytearray((VERSION, 0))
        self.current.extend(section)

    def finish(self) -> "list[bytes]":
        self.current[1] = FLAG_FINAL
        self.frames.append(self.current)
        out = [bytes(f) for f in self.frames]
        self.frames = []
        self.current = bytearray((VERSION, 0))
        return out


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def uvarint(self) -> int:
        value, self.pos = decode_uvarint(self.data, self.pos)
        return value

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _bad("truncated at offset %d" % self.pos)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise _bad("truncated: %d bytes wanted at offset %d" % (size, self.pos))
        value = bytes(self.data[self.pos : end])
        self.pos = end
        return value

    def bound(self, prev_time: int) -> "Bound":
        start = self.pos
        code = self.uvarint()
        if code == 0:
            return None
        length = self.uvarint()
        if length > 32:
            raise _bad("bound prefix longer than 32 bytes at offset %d" % start)
        prefix = self.take(length)
        time = prev_time + code - 1
        if time > MAX_BOUND_TIME:
            raise _bad("bound time %d past 2**63 - 2 at offset %d" % (time, start))
        return (time, prefix + bytes(32 - length))


def _encode_bound(bound: "Bound", prev_time: int) -> bytes:
    if bound is None:
        return b"\x00"
    if bound[0] < prev_time:
        raise LocalProtocolError("reconcile: bounds must increase")
    prefix = _strip_zeros(bound[1])
    return encode_uvarint(bound[0] - prev_time + 1) + encode_uvarint(len(prefix)) + prefix


def _less(a: "Bound", b: "Bound") -> bool:
    if a is None:
        return False
    if b is None:
        return True
    return a < b


class _RangeOut:
    """Collects the ranges of one RANGES reply, filling gaps with SKIP and splitting to fit."""

    __slots__ = ("first", "index", "max_frame", "parts", "prev", "prev_time", "size", "writer")

    def __init__(self, writer: _Writer, max_frame: int, index: int, lower: "Key") -> None:
        self.writer = writer
        self.max_frame = max_frame
        self.index = index
        self.first: Key | None = None
        self.prev: Bound = lower
        self.prev_time = 0
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, lower: "Key", upper: "Bound", payload: bytes) -> None:
        budget = self.max_frame - 2 - 24
        if self.first is not None and self.prev != lower:
            self._add(lower, bytes((MODE_SKIP,)), budget)
        self._add(upper, payload, budget, lower)

    def _add(self, upper: "Bound", payload: bytes, budget: int, lower: "Key | None" = None) -> None:
        if self.first is None:
            start = lower if lower is not None else self.prev
            assert start is not None
            self.first = start
            self.prev_time = start[0]
            self.size = len(_encode_bound(start, 0))
        encoded = _encode_bound(upper, self.prev_time) + payload
        if self.parts and self.size + len(encoded) > budget:
            self.close()
            start = self.prev
            assert start is not None
            self.first = start
            self.prev_time = start[0]
            self.size = len(_encode_bound(start, 0))
            encoded = _encode_bound(upper, self.prev_time) + payload
        self.parts.append(encoded)
        self.size += len(encoded)
        self.prev = upper
        if upper is not None:
            self.prev_time = upper[0]

    def close(self) -> None:
        if not self.parts or self.first is None:
            return
        body = (
            encode_uvarint(self.index)
            + bytes((OP_RANGES,))
            + encode_uvarint(len(self.parts))
            + _encode_bound(self.first, 0)
            + b"".join(self.parts)
        )
        self.writer.add(body)
        self.parts = []
        self.first = None


def id_pieces(
    out: _RangeOut,
    keyset: "KeySet",
    lower: "Key",
    upper: "Bound",
    lo_index: int,
    hi_index: int,
    mode: int,
    size: int,
    max_frame: int,
) -> "list[tuple[Key, Bound, list[Key]]]":
    """Write keys [lo_index, hi_index) of `keyset` as IDS/FULLIDS ranges cut to fit a frame.

    Returns:
        (lower, upper, keys) of each piece written, for the caller to remember.
    """
    per_piece = max(1, (max_frame - 2 - 120) // (size + 9 if mode == MODE_FULLIDS else size))
    pieces: "list[tuple[Key, Bound, list[Key]]]" = []
    start = lo_index
    piece_lower = lower
    while True:
        end = min(hi_index, start + per_piece)
        keys = keyset.keys_between(start, end)
        if end < hi_index:
            piece_upper: Bound = bound_between(keys[-1], keyset.key_at(end))
        else:
            piece_upper = upper
        head = bytes((mode,)) if mode == MODE_FULLIDS else bytes((mode, size))
        body = bytearray(head + encode_uvarint(len(keys)))
        for key in keys:
            if mode == MODE_FULLIDS:
                body.extend(encode_uvarint(key[0]))
                body.extend(key[1])
            else:
                body.extend(key[1][:size])
        out.add(piece_lower, piece_upper, bytes(body))
        pieces.append((piece_lower, piece_upper, keys))
        if end >= hi_index:
            return pieces
        start = end
        piece_lower = piece_upper  # type: ignore[assignment]


def split_range(
    out: _RangeOut,
    keyset: "KeySet",
    lower: "Key",
    upper: "Bound",
    lo_index: int,
    hi_index: int,
    buckets: int,
) -> None:
    """Write keys [lo_index, hi_index) of `keyset` as up to `buckets` fingerprinted ranges."""
    count = hi_index - lo_index
    prev_lower = lower
    prev_index = lo_index
    for b in range(1, buckets + 1):
        if b == buckets:
            cut = hi_index
            bucket_upper: Bound = upper
        else:
            cut = lo_index + count * b // buckets
            if cut <= prev_index:
                continue
            bucket_upper = bound_between(keyset.key_at(cut - 1), keyset.key_at(cut))
        fp = keyset.fingerprint(prev_index, cut)
        out.add(prev_lower, bucket_upper, bytes((MODE_FP,)) + fp)
        prev_index = cut
        prev_lower = bucket_upper  # type: ignore[assignment]
