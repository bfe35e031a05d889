# The ordered set of keys of one log, with O(log n) range fingerprints (L0, portable).
#
# Theory of operation
# -------------------
# A key is (lamport time: 0 <= int < 2**64, digest: 32 bytes), the digest being the sha2-256
# digest inside the entry's CID. Keys are ordered as tuples: by time, then digest bytes.
# Reconciliation (node/sync/reconcile.py) asks for ranges by *index* (rank) and needs, for any
# index range, the count and the sum of the IDs mod 2**256 (each digest read as a little-endian
# 256-bit integer, as Negentropy does). fingerprint(lo, hi) hashes that pair to 16 bytes:
#
#     sha256( (sum mod 2**256).to_bytes(32, "little") || uvarint(count) )[:16]
#
# Storage is compact: no Python object per key. A key is packed into a RECORD (42) byte record
#
#     time (8 bytes, big-endian) || 00 || digest (32 bytes) || 00
#
# and the keys live in sorted chunks, each one `bytes` of about CHUNK records (split at 2 * CHUNK,
# dropped when empty). Records compare as bytes exactly as keys compare as tuples (fixed-width
# time, then the digest; the constant zero bytes change no order, also for probes packed the same
# way with a shorter digest). Key tuples are built only when asked for (key_at, iteration, ...).
# The zero bytes make a chunk's ID sums cheap without a per-key integer: read as one little-endian
# integer, a run of k <= 255 records is sum_i v_i * B**i with B = 2**336 and each record value
# v_i = time' + digest_id * 2**72 < 2**328 (time' < 2**64 is the time bytes read little-endian).
# Folding the high half of the digits onto the low half (x = low + high, repeated, O(size) in C)
# never carries between digits (k values < 2**328 sum below 2**336) and leaves sum_i v_i, whose
# bits 72 and up are the exact ID sum (the time' sum stays below 2**72). Per chunk we keep its ID
# sum and, built lazily once a query needs it (dropped when the chunk changes), the prefix sums at
# every STRIDE (16)-th record: ~6 bytes per key. A sum inside a chunk is then one such prefix plus
# or minus <= STRIDE / 2 IDs read one by one.
#
# Around the chunks: the last record of every chunk in `_maxes` for binary search and two Fenwick
# trees over the chunks: key counts and ID sums. So:
#   rank / contains        binary search over chunk maxima, then inside one chunk: O(log n)
#   key_at, prefix sum     one Fenwick descent (O(log n/CHUNK)) + <= STRIDE / 2 IDs in one chunk
#   fingerprint(lo, hi)    two prefix sums + one sha256: O(log n), never a scan of the range
#   add / remove           rebuild of one chunk's bytes (copy of <= 2 * CHUNK records) + Fenwick
#                          point update; a split or an emptied chunk rebuilds the Fenwick trees
#                          (O(n/CHUNK)), at most once per CHUNK inserts
#   from_sorted(keys)      bulk load in O(n) from any iterable (streamed: no list is kept)
# Sums are kept exact (not reduced) inside the trees and reduced mod 2**256 only for a fingerprint.
# Memory: 42 bytes per key plus ~300 bytes per chunk (~45 bytes per key on CPython and MicroPython),
# ~50 once queries have built the block prefix sums (bench/keyset_memory.py).
#
# Set-difference sketches (node/sync/sketch.py) are kept here too, so reconciliation never scans:
#   estimator_bytes(L)     the difference estimator (EST_LEVELS x 4 cells), maintained always
#                          (O(1) amortised per add/discard, built in O(n) by bulk load)
#   sketch(m)              the IBLT folded to m cells per sub-table: O(FULL) work. The full table
#                          (3 x 720 cells, ~0.3 MB on CPython) is built on first use (O(n)) and then
#                          maintained by add/discard (3 cell updates each)
#   find_item(time, p)     the key whose digest starts with p's bytes at that time, O(log n)

import hashlib

from node._compat import TYPE_CHECKING
from node.errors import LocalProtocolError
from node.sync.sketch import (
    EST_CELLS,
    EST_LEVELS,
    FULL,
    ID_BYTES,
    Table,
    est_fingerprint,
    est_slot,
)
from node.varint import encode_uvarint

if TYPE_CHECKING:
    from typing import Iterable, Iterator

    # (lamport time, 32-byte digest): the one declaration of the key every layer uses
    Key = tuple[int, bytes]

CHUNK = 128  # records per chunk after a bulk load; a chunk splits at 2 * CHUNK (<= 255 kept)
FINGERPRINT_BYTES = 16
MASK256 = (1 << 256) - 1
TIME_LIMIT = 1 << 64
STRIDE = 16  # records per block of the lazily built in-chunk prefix sums
RECORD = 42  # packed key: time (8, big-endian) || 00 || digest (32) || 00
_DIGIT_BITS = 8 * RECORD
_ID_SHIFT = 72  # bit offset of the digest in a record read little-endian
_TIME_END = 8
_DIGEST_AT = 9
_DIGEST_END = 41
_ID_END = _DIGEST_AT + ID_BYTES

# Below this many keys a sketch is built on demand instead of cached (see KeySet.sketch).
SKETCH_CACHE_MIN = 4 * FULL


def id_int(digest: bytes) -> int:
    """The digest as a little-endian integer (the unit the fingerprints sum)."""
    return int.from_bytes(digest, "little")


def fingerprint_of(total: int, count: int) -> bytes:
    """16-byte fingerprint of an ID sum (any size, reduced mod 2**256) and a count."""
    data = (total & MASK256).to_bytes(32, "little") + encode_uvarint(count)
    return hashlib.sha256(data).digest()[:FINGERPRINT_BYTES]


def check_key(key: "Key") -> None:
    """Raise LocalProtocolError unless `key` is (0 <= int < 2**64, 32 bytes)."""
    if type(key) is not tuple or len(key) != 2:
        raise LocalProtocolError("key must be a (time, digest) tuple: %r" % (key,))
    time, digest = key
    if (
        type(time) is not int
        or not 0 <= time < TIME_LIMIT
        or type(digest) is not bytes
        or len(digest) != 32
    ):
        raise LocalProtocolError("key must be (0 <= int < 2**64, 32-byte digest): %r" % (key,))


def pack_key(time: int, digest: bytes) -> bytes:
    """The record of a key (or of a probe with any digest bytes; 0 <= time < 2**64)."""
    return (time << 8).to_bytes(9, "big") + digest + b"\x00"


def _probe(key: "Key") -> "bytes | None":
    """A bytes value ordered among records as `key` is among keys; None if above them all."""
    time = key[0]
    if time < 0:
        return b""
    if time >= TIME_LIMIT:
        return None
    return pack_key(time, key[1])


def _unpack(chunk: bytes, at: int) -> "Key":
    return (
        int.from_bytes(chunk[at : at + _TIME_END], "big"),
        chunk[at + _DIGEST_AT : at + _DIGEST_END],
    )


def _record_sum(chunk: bytes, lo: int, hi: int) -> int:
    """Exact sum of the IDs of records [lo, hi) of a chunk (hi - lo <= 255)."""
    count = hi - lo
    if count <= 0:
        return 0
    x = int.from_bytes(chunk[lo * RECORD : hi * RECORD], "little")
    while count > 1:
        half = (count + 1) >> 1
        shift = half * _DIGIT_BITS
        x = (x & ((1 << shift) - 1)) + (x >> shift)
        count = half
    return x >> _ID_SHIFT


def _few_ids(chunk: bytes, lo: int, hi: int) -> int:
    """Sum of the IDs of records [lo, hi), one by one: small allocations only (MicroPython's
    allocator is slow to find long free runs in a fragmented heap), as fast as a fold for <= 8."""
    total = 0
    for at in range(lo * RECORD + _DIGEST_AT, hi * RECORD, RECORD):
        total += int.from_bytes(chunk[at : at + 32], "little")
    return total


def _bisect_list(items: "list[bytes]", probe: bytes) -> int:
    lo = 0
    hi = len(items)
    while lo < hi:
        mid = (lo + hi) >> 1
        if items[mid] < probe:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _bisect_chunk(chunk: bytes, probe: bytes) -> int:
    lo = 0
    hi = len(chunk) // RECORD
    while lo < hi:
        mid = (lo + hi) >> 1
        at = mid * RECORD
        if chunk[at : at + RECORD] < probe:
            lo = mid + 1
        else:
            hi = mid
    return lo


class KeySet:
    """The sorted set of (lamport time, digest) keys of one log.

    Indexes are ranks: key_at(0) is the oldest key. Ranges are half-open index ranges [lo, hi).
    """

    # "__weakref__": a store's cache may drop a set that a link still holds (CPython).
    __slots__ = (
        "__weakref__", "_chunks", "_est_count", "_est_xor", "_fcount", "_fsum", "_len", "_maxes",
        "_pre", "_stale", "_sums", "_table",
    )

    def __init__(self, keys: "Iterable[Key] | None" = None) -> None:
        """An empty set, or the keys given (any order, duplicates collapse)."""
        self._chunks: list[bytes] = []
        self._sums: list[int] = []
        self._pre: list[list[int] | None] = []
        self._maxes: list[bytes] = []
        self._fcount: list[int] = [0]
        self._fsum: list[int] = [0]
        self._len = 0
        self._stale = False
        self._est_count = [0] * (EST_LEVELS * EST_CELLS)
        self._est_xor = [0] * (EST_LEVELS * EST_CELLS)
        self._table: Table | None = None
        if keys is not None:
            items = sorted(set(keys))
            for key in items:
                check_key(key)
            self._load(items)

    @classmethod
    def from_sorted(cls, keys: "Iterable[Key]") -> "KeySet":
        """Bulk load from strictly increasing keys (checked), in O(n).

        `keys` may be a list or any iterable (e.g. a generator over database rows); it is read
        once and not kept.
        """
        ks = cls()
        ks._load(keys)
        return ks

    def _load(self, keys: "Iterable[Key]") -> None:
        """Append strictly increasing keys (checked) to an empty set."""
        est_count = self._est_count
        est_xor = self._est_xor
        parts: list[bytes] = []
        previous = b""
        for key in keys:
            check_key(key)
            record = pack_key(key[0], key[1])
            if not previous < record:
                raise LocalProtocolError("from_sorted needs strictly increasing keys")
            previous = record
            parts.append(record)
            p = int.from_bytes(key[1][:ID_BYTES], "little")
            level, cell = est_slot(p)
            for slot in range(cell, (level + 1) * EST_CELLS, EST_CELLS):
                est_count[slot] += 1
                est_xor[slot] ^= p
            if len(parts) == CHUNK:
                self._append_chunk(b"".join(parts))
                parts = []
        if parts:
            self._append_chunk(b"".join(parts))
        self._rebuild()

    def _append_chunk(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._sums.append(_record_sum(chunk, 0, len(chunk) // RECORD))
        self._pre.append(None)
        self._maxes.append(chunk[-RECORD:])
        self._len += len(chunk) // RECORD

    def _account(self, time: int, digest: bytes, sign: int) -> None:
        """Keep the estimator and (if built) the IBLT in step with one add (1) or discard (-1)."""
        p = int.from_bytes(digest[:ID_BYTES], "little")
        level, cell = est_slot(p)
        for slot in range(cell, (level + 1) * EST_CELLS, EST_CELLS):
            self._est_count[slot] += sign
            self._est_xor[slot] ^= p
        if self._table is not None:
            self._table.toggle(time, p, sign)

    # -- Fenwick trees over chunks ------------------------------------------------------------

    def _rebuild(self) -> None:
        size = len(self._chunks)
        fcount = [0] * (size + 1)
        fsum = [0] * (size + 1)
        for i in range(size):
            j = i + 1
            fcount[j] += len(self._chunks[i]) // RECORD
            fsum[j] += self._sums[i]
            parent = j + (j & -j)
            if parent <= size:
                fcount[parent] += fcount[j]
                fsum[parent] += fsum[j]
        self._fcount = fcount
        self._fsum = fsum
        self._stale = False

    def _fenwick_add(self, chunk: int, count: int, value: int) -> None:
        if self._stale:
            return
        size = len(self._chunks)
        j = chunk + 1
        fcount = self._fcount
        fsum = self._fsum
        while j <= size:
            fcount[j] += count
            fsum[j] += value
            j += j & -j

    def _chunks_before(self, chunk: int) -> int:
        """Number of keys in chunks [0, chunk)."""
        if self._stale:
            self._rebuild()
        total = 0
        fcount = self._fcount
        j = chunk
        while j > 0:
            total += fcount[j]
            j -= j & -j
        return total

    def _descend(self, index: int) -> "tuple[int, int, int]":
        """For 0 <= index < len: (chunk, offset in chunk, ID sum of all chunks before it)."""
        if self._stale:
            self._rebuild()
        fcount = self._fcount
        fsum = self._fsum
        size = len(self._chunks)
        pos = 0
        rem = index
        total = 0
        step = 1
        while step * 2 <= size:
            step *= 2
        while step:
            nxt = pos + step
            if nxt <= size and fcount[nxt] <= rem:
                pos = nxt
                rem -= fcount[nxt]
                total += fsum[nxt]
            step >>= 1
        return pos, rem, total

    def _find(self, key: object) -> "tuple[int, int, bytes] | None":
        """(chunk, position, record) of a member `key`; None if absent or not a key."""
        if type(key) is not tuple or len(key) != 2:
            return None
        time, digest = key
        if type(time) is not int or not 0 <= time < TIME_LIMIT or type(digest) is not bytes:
            return None
        record = pack_key(time, digest)
        chunk = _bisect_list(self._maxes, record)
        if chunk == len(self._maxes):
            return None
        data = self._chunks[chunk]
        pos = _bisect_chunk(data, record)
        at = pos * RECORD
        if data[at : at + RECORD] != record:
            return None
        return chunk, pos, record

    # -- queries ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: object) -> bool:
        return self._find(key) is not None

    def __repr__(self) -> str:
        return "KeySet(%d keys)" % self._len

    def rank(self, key: "Key") -> int:
        """Number of keys strictly less than `key` (need not be a member)."""
        probe = _probe(key)
        if probe is None:
            return self._len
        chunk = _bisect_list(self._maxes, probe)
        if chunk == len(self._maxes):
            return self._len
        return self._chunks_before(chunk) + _bisect_chunk(self._chunks[chunk], probe)

    def key_at(self, index: int) -> "Key":
        """The key of rank `index` (0 <= index < len); IndexError otherwise."""
        if index < 0 or index >= self._len:
            raise IndexError("KeySet index out of range: %d" % index)
        chunk, offset, _ = self._descend(index)
        return _unpack(self._chunks[chunk], offset * RECORD)

    def prefix_sum(self, index: int) -> int:
        """Exact (unreduced) sum of the IDs of keys [0, index), 0 <= index <= len."""
        if index <= 0:
            return 0
        if index >= self._len:
            if self._stale:
                self._rebuild()
            total = 0
            j = len(self._chunks)
            while j > 0:
                total += self._fsum[j]
                j -= j & -j
            return total
        chunk, offset, total = self._descend(index)
        data = self._chunks[chunk]
        pre = self._pre[chunk]
        if pre is None:
            pre = self._block_prefix(chunk)
        block = offset // STRIDE
        start = block * STRIDE
        end = min(start + STRIDE, len(data) // RECORD)
        if 2 * (offset - start) <= end - start:
            return total + pre[block] + _few_ids(data, start, offset)
        return total + pre[block + 1] - _few_ids(data, offset, end)

    def _block_prefix(self, chunk: int) -> "list[int]":
        """ID sums of the chunk's records [0, j * STRIDE) for each j, and of all of them."""
        data = self._chunks[chunk]
        count = len(data) // RECORD
        pre = [0]
        total = 0
        for start in range(0, count, STRIDE):
            total += _record_sum(data, start, min(start + STRIDE, count))
            pre.append(total)
        self._pre[chunk] = pre
        return pre

    def sum_between(self, lo: int, hi: int) -> int:
        """Sum of the IDs of keys [lo, hi) mod 2**256."""
        lo, hi = self._clamp(lo, hi)
        return (self.prefix_sum(hi) - self.prefix_sum(lo)) & MASK256

    def fingerprint(self, lo: int, hi: int) -> bytes:
        """16-byte fingerprint of the keys [lo, hi) (count and ID sum), in O(log n)."""
        lo, hi = self._clamp(lo, hi)
        return fingerprint_of(self.prefix_sum(hi) - self.prefix_sum(lo), hi - lo)

    def keys_between(self, lo: int, hi: int) -> "list[Key]":
        """The keys [lo, hi) in order (O(log n + hi - lo))."""
        lo, hi = self._clamp(lo, hi)
        out: list[Key] = []
        if lo >= hi:
            return out
        chunk, offset, _ = self._descend(lo)
        need = hi - lo
        while need > 0:
            data = self._chunks[chunk]
            end = min(len(data), (offset + need) * RECORD)
            for at in range(offset * RECORD, end, RECORD):
                out.append(_unpack(data, at))
            need -= end // RECORD - offset
            chunk += 1
            offset = 0
        return out

    def find_item(self, time: int, prefix: bytes) -> "Key | None":
        """The key at `time` whose digest starts with `prefix` (ID_BYTES), or None."""
        index = self.rank((time, prefix + bytes(32 - len(prefix))))
        if index >= self._len:
            return None
        key = self.key_at(index)
        if key[0] == time and key[1][: len(prefix)] == prefix:
            return key
        return None

    # -- sketches (node/sync/sketch.py) ---------------------------------------------------------

    def estimator_bytes(self, levels: int) -> bytes:
        """4-bit fingerprints of the estimator cells of levels [0, levels), two per byte."""
        count = self._est_count
        xor = self._est_xor
        out = bytearray(levels * EST_CELLS // 2)
        for i in range(0, levels * EST_CELLS, 2):
            low = est_fingerprint(count[i], xor[i])
            out[i >> 1] = low | (est_fingerprint(count[i + 1], xor[i + 1]) << 4)
        return bytes(out)

    def _fill(self, table: Table) -> None:
        for data in self._chunks:
            for at in range(0, len(data), RECORD):
                time = int.from_bytes(data[at : at + _TIME_END], "big")
                p = int.from_bytes(data[at + _DIGEST_AT : at + _ID_END], "little")
                table.toggle(time, p, 1)

    def build_sketch(self) -> None:
        """Build the full IBLT now (O(n)); afterwards add/discard keep it current."""
        if self._table is not None:
            return
        table = Table(FULL)
        self._fill(table)
        self._table = table

    def sketch_built(self) -> bool:
        """True while the full IBLT is kept (it costs SKETCH_BYTES of memory on CPython)."""
        return self._table is not None

    def drop_sketch(self) -> None:
        """Forget the full IBLT (a memory budget's choice); the next sketch() rebuilds it."""
        self._table = None

    def sketch(self, m: int) -> Table:
        """A fresh copy of the IBLT folded to m cells per sub-table (m divides FULL).

        A small set (fewer than SKETCH_CACHE_MIN keys) gets its table built directly, O(n), and
        keeps nothing: the full table (~0.23 MB on CPython) is cached and maintained only for sets
        large enough that it costs less than the keys themselves.
        """
        if FULL % m:
            raise LocalProtocolError("sketch size %d does not divide %d" % (m, FULL))
        if self._table is None and self._len < SKETCH_CACHE_MIN:
            table = Table(m)
            self._fill(table)
            return table
        self.build_sketch()
        assert self._table is not None
        return self._table.fold(m)

    def _clamp(self, lo: int, hi: int) -> "tuple[int, int]":
        if lo < 0:
            lo = 0
        if hi > self._len:
            hi = self._len
        if hi < lo:
            hi = lo
        return lo, hi

    # -- updates ------------------------------------------------------------------------------

    def add(self, key: "Key") -> bool:
        """Insert `key`; False if it was already present."""
        check_key(key)
        time, digest = key
        record = pack_key(time, digest)
        maxes = self._maxes
        if not maxes:
            self._append_chunk(record)
            self._rebuild()
            self._account(time, digest, 1)
            return True
        chunk = _bisect_list(maxes, record)
        if chunk == len(maxes):
            chunk -= 1
        data = self._chunks[chunk]
        at = _bisect_chunk(data, record) * RECORD
        if data[at : at + RECORD] == record:
            return False
        self._account(time, digest, 1)
        data = data[:at] + record + data[at:]
        value = id_int(digest)
        self._chunks[chunk] = data
        self._sums[chunk] += value
        self._pre[chunk] = None
        if at + RECORD == len(data):
            maxes[chunk] = record
        self._len += 1
        count = len(data) // RECORD
        if count >= 2 * CHUNK:
            half = count >> 1
            cut = half * RECORD
            low = _record_sum(data, 0, half)
            self._chunks[chunk : chunk + 1] = [data[:cut], data[cut:]]
            self._sums[chunk : chunk + 1] = [low, self._sums[chunk] - low]
            self._pre[chunk : chunk + 1] = [None, None]
            maxes[chunk : chunk + 1] = [data[cut - RECORD : cut], data[-RECORD:]]
            self._stale = True
        else:
            self._fenwick_add(chunk, 1, value)
        return True

    def discard(self, key: "Key") -> bool:
        """Remove `key` if present; True if it was."""
        found = self._find(key)
        if found is None:
            return False
        chunk, pos, _ = found
        time, digest = key
        data = self._chunks[chunk]
        at = pos * RECORD
        data = data[:at] + data[at + RECORD :]
        value = id_int(digest)
        self._account(time, digest, -1)
        self._len -= 1
        if not data:
            del self._chunks[chunk]
            del self._sums[chunk]
            del self._pre[chunk]
            del self._maxes[chunk]
            self._stale = True
            return True
        self._chunks[chunk] = data
        self._sums[chunk] -= value
        self._pre[chunk] = None
        if at == len(data):
            self._maxes[chunk] = data[-RECORD:]
        self._fenwick_add(chunk, -1, -value)
        return True

    def remove(self, key: "Key") -> None:
        """Remove `key`; KeyError if absent."""
        if not self.discard(key):
            raise KeyError(key)

    def __iter__(self) -> "Iterator[Key]":
        for data in self._chunks:
            for at in range(0, len(data), RECORD):
                yield _unpack(data, at)
