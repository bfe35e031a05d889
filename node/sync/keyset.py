# The ordered set of keys of one log, with O(log n) range fingerprints (L0, portable).
#
# Theory of operation
# -------------------
# A key is (lamport time: int >= 0, digest: 32 bytes), the digest being the sha2-256 digest inside
# the entry's CID. Keys are ordered as tuples: by time, then digest bytes. Reconciliation
# (node/sync/reconcile.py) asks for ranges by *index* (rank) and needs, for any index range, the
# count and the sum of the IDs mod 2**256 (each digest read as a little-endian 256-bit integer, as
# Negentropy does). fingerprint(lo, hi) hashes that pair to 16 bytes:
#
#     sha256( (sum mod 2**256).to_bytes(32, "little") || uvarint(count) )[:16]
#
# Storage is a list of sorted chunks (about CHUNK keys each, split at 2 * CHUNK, merged when one
# empties), the last key of every chunk in `_maxes` for binary search, and two Fenwick trees over
# the chunks: key counts and ID sums. Inside a chunk a prefix-sum array is rebuilt lazily after the
# chunk changes. So:
#   rank / contains        binary search over chunk maxima, then inside one chunk: O(log n)
#   key_at, prefix sum     one Fenwick descent (O(log n/CHUNK)) + one chunk-prefix lookup
#   fingerprint(lo, hi)    two prefix sums + one sha256: O(log n), never a scan of the range
#   add / remove           list insert in one chunk (memmove of <= 2*CHUNK pointers) + Fenwick
#                          point update; a split or an emptied chunk rebuilds the Fenwick trees
#                          (O(n/CHUNK)), at most once per CHUNK inserts
#   from_sorted(keys)      bulk load in O(n) (one int.from_bytes per key), no per-key insert
# Sums are kept exact (not reduced) inside the trees and reduced mod 2**256 only for a fingerprint.
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
    MASK128,
    Table,
    est_fingerprint,
    est_slot,
)
from node.sync.varint import encode_uvarint

if TYPE_CHECKING:
    from typing import Iterable, Iterator

    Key = tuple[int, bytes]

CHUNK = 128
FINGERPRINT_BYTES = 16
MASK256 = (1 << 256) - 1


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
    """Raise LocalProtocolError unless `key` is (int >= 0, 32 bytes)."""
    if type(key) is not tuple or len(key) != 2:
        raise LocalProtocolError("key must be a (time, digest) tuple: %r" % (key,))
    time, digest = key
    if type(time) is not int or time < 0 or type(digest) is not bytes or len(digest) != 32:
        raise LocalProtocolError("key must be (int >= 0, 32-byte digest): %r" % (key,))


def _bisect_left(items: "list[Key]", key: "Key") -> int:
    lo = 0
    hi = len(items)
    while lo < hi:
        mid = (lo + hi) >> 1
        if items[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


class KeySet:
    """The sorted set of (lamport time, digest) keys of one log.

    Indexes are ranks: key_at(0) is the oldest key. Ranges are half-open index ranges [lo, hi).
    """

    __slots__ = (
        "_est_count",
        "_est_xor",
        "_fcount",
        "_fsum",
        "_ids",
        "_keys",
        "_len",
        "_maxes",
        "_pre",
        "_stale",
        "_table",
    )

    def __init__(self, keys: "Iterable[Key] | None" = None) -> None:
        """An empty set, or the keys given (any order, duplicates collapse)."""
        self._keys: list[list[Key]] = []
        self._ids: list[list[int]] = []
        self._pre: list[list[int] | None] = []
        self._maxes: list[Key] = []
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
    def from_sorted(cls, keys: "list[Key]") -> "KeySet":
        """Bulk load from a strictly increasing list of keys (checked), in O(n)."""
        previous = None
        for key in keys:
            check_key(key)
            if previous is not None and not previous < key:
                raise LocalProtocolError("from_sorted needs strictly increasing keys")
            previous = key
        ks = cls()
        ks._load(list(keys))
        return ks

    def _load(self, items: "list[Key]") -> None:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            self._keys.append(chunk)
            self._ids.append([id_int(k[1]) for k in chunk])
            self._pre.append(None)
            self._maxes.append(chunk[-1])
        self._len = len(items)
        self._rebuild()
        est_count = self._est_count
        est_xor = self._est_xor
        for ids in self._ids:
            for value in ids:
                p = value & MASK128
                level, cell = est_slot(p)
                for slot in range(cell, (level + 1) * EST_CELLS, EST_CELLS):
                    est_count[slot] += 1
                    est_xor[slot] ^= p

    def _account(self, time: int, value: int, sign: int) -> None:
        """Keep the estimator and (if built) the IBLT in step with one add (1) or discard (-1)."""
        p = value & MASK128
        level, cell = est_slot(p)
        for slot in range(cell, (level + 1) * EST_CELLS, EST_CELLS):
            self._est_count[slot] += sign
            self._est_xor[slot] ^= p
        if self._table is not None:
            self._table.toggle(time, p, sign)

    # -- Fenwick trees over chunks ------------------------------------------------------------

    def _rebuild(self) -> None:
        size = len(self._keys)
        fcount = [0] * (size + 1)
        fsum = [0] * (size + 1)
        for i in range(size):
            j = i + 1
            fcount[j] += len(self._keys[i])
            ids = self._ids[i]
            total = 0
            for value in ids:
                total += value
            fsum[j] += total
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
        size = len(self._keys)
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
        size = len(self._keys)
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

    def _chunk_prefix(self, chunk: int) -> "list[int]":
        pre = self._pre[chunk]
        if pre is None:
            pre = [0]
            total = 0
            for value in self._ids[chunk]:
                total += value
                pre.append(total)
            self._pre[chunk] = pre
        return pre

    # -- queries ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: object) -> bool:
        chunk = _bisect_left(self._maxes, key)  # type: ignore[arg-type]
        if chunk == len(self._maxes):
            return False
        keys = self._keys[chunk]
        pos = _bisect_left(keys, key)  # type: ignore[arg-type]
        return pos < len(keys) and keys[pos] == key

    def __repr__(self) -> str:
        return "KeySet(%d keys)" % self._len

    def rank(self, key: "Key") -> int:
        """Number of keys strictly less than `key` (need not be a member)."""
        chunk = _bisect_left(self._maxes, key)
        if chunk == len(self._maxes):
            return self._len
        return self._chunks_before(chunk) + _bisect_left(self._keys[chunk], key)

    def key_at(self, index: int) -> "Key":
        """The key of rank `index` (0 <= index < len); IndexError otherwise."""
        if index < 0 or index >= self._len:
            raise IndexError("KeySet index out of range: %d" % index)
        chunk, offset, _ = self._descend(index)
        return self._keys[chunk][offset]

    def prefix_sum(self, index: int) -> int:
        """Exact (unreduced) sum of the IDs of keys [0, index), 0 <= index <= len."""
        if index <= 0:
            return 0
        if index >= self._len:
            index = self._len
            if self._stale:
                self._rebuild()
            total = 0
            j = len(self._keys)
            while j > 0:
                total += self._fsum[j]
                j -= j & -j
            return total
        chunk, offset, total = self._descend(index)
        return total + self._chunk_prefix(chunk)[offset]

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
            part = self._keys[chunk][offset : offset + need]
            out.extend(part)
            need -= len(part)
            chunk += 1
            offset = 0
        return out

    def find_item(self, time: int, prefix: bytes) -> "Key | None":
        """The key at `time` whose digest starts with `prefix` (ID_BYTES), or None."""
        probe = (time, prefix + bytes(32 - len(prefix)))
        index = self.rank(probe)
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

    def build_sketch(self) -> None:
        """Build the full IBLT now (O(n)); afterwards add/discard keep it current."""
        if self._table is not None:
            return
        table = Table(FULL)
        for chunk in self._keys:
            for key in chunk:
                table.toggle(key[0], int.from_bytes(key[1][:ID_BYTES], "little"), 1)
        self._table = table

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
            for chunk in self._keys:
                for key in chunk:
                    table.toggle(key[0], int.from_bytes(key[1][:ID_BYTES], "little"), 1)
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
        maxes = self._maxes
        if not maxes:
            self._keys.append([key])
            self._ids.append([id_int(key[1])])
            self._pre.append(None)
            maxes.append(key)
            self._len = 1
            self._rebuild()
            self._account(key[0], self._ids[0][0], 1)
            return True
        chunk = _bisect_left(maxes, key)
        if chunk == len(maxes):
            chunk -= 1
        keys = self._keys[chunk]
        pos = _bisect_left(keys, key)
        if pos < len(keys) and keys[pos] == key:
            return False
        value = id_int(key[1])
        self._account(key[0], value, 1)
        keys.insert(pos, key)
        self._ids[chunk].insert(pos, value)
        self._pre[chunk] = None
        if pos == len(keys) - 1:
            maxes[chunk] = key
        self._len += 1
        if len(keys) >= 2 * CHUNK:
            half = len(keys) >> 1
            ids = self._ids[chunk]
            self._keys[chunk : chunk + 1] = [keys[:half], keys[half:]]
            self._ids[chunk : chunk + 1] = [ids[:half], ids[half:]]
            self._pre[chunk : chunk + 1] = [None, None]
            maxes[chunk : chunk + 1] = [keys[half - 1], keys[-1]]
            self._stale = True
        else:
            self._fenwick_add(chunk, 1, value)
        return True

    def discard(self, key: "Key") -> bool:
        """Remove `key` if present; True if it was."""
        chunk = _bisect_left(self._maxes, key)
        if chunk == len(self._maxes):
            return False
        keys = self._keys[chunk]
        pos = _bisect_left(keys, key)
        if pos >= len(keys) or keys[pos] != key:
            return False
        del keys[pos]
        value = self._ids[chunk].pop(pos)
        self._account(key[0], value, -1)
        self._pre[chunk] = None
        self._len -= 1
        if not keys:
            del self._keys[chunk]
            del self._ids[chunk]
            del self._pre[chunk]
            del self._maxes[chunk]
            self._stale = True
        else:
            if pos == len(keys):
                self._maxes[chunk] = keys[-1]
            self._fenwick_add(chunk, -1, -value)
        return True

    def remove(self, key: "Key") -> None:
        """Remove `key`; KeyError if absent."""
        if not self.discard(key):
            raise KeyError(key)

    def __iter__(self) -> "Iterator[Key]":
        for chunk in self._keys:
            yield from chunk
