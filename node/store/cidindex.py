"""An in-memory map from a block's digest prefix to the database rows that may hold it (L1).

Theory of operation
-------------------
SQLiteStore finds entries by CID (duplicate check, parents of a new entry, has/get_block,
eviction). An on-disk index keyed by a random key (the CID, or any hash prefix) costs about one
dirty B-tree page per inserted entry once the index is larger than a commit, and SQLite writes
every dirty page whole, twice (WAL, then checkpoint): that was most of the store's write
amplification (docs/performance.md). This index lives in memory instead and is rebuilt from the
`entries` table whenever the store (re)loads its caches, so it costs no disk writes at all.

Layout: the first 8 bytes of the sha2-256 digest as an unsigned int (the "prefix"), paired with
the entry's rowid. The bulk sits in two parallel sorted `array('Q')`/`array('q')` (16 bytes per
entry; looked up with bisect); recent additions sit in a small dict and removals of bulk pairs in
a tombstone set, both folded into the arrays once they reach 1/8 of the bulk (at least
MERGE_MIN), so the arrays are rebuilt O(1) times per 1/8 growth. A prefix may map to several rows
(distinct digests that share 8 bytes, e.g. crafted by a peer): callers check the full CID of every
row returned.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from heapq import merge

MERGE_MIN = 1024


def digest_prefix(digest: bytes) -> int:
    """The index key of a 32-byte digest: its first 8 bytes, big-endian, unsigned."""
    return int.from_bytes(digest[:8], "big")


class CidIndex:
    """digest prefix -> rowids (see the module docstring).

    Args:
        pairs: (prefix, rowid) of every stored entry, in any order.
    """

    __slots__ = ("_gone", "_prefixes", "_recent", "_recent_count", "_rows")

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        ordered = sorted(pairs)
        self._prefixes = array("Q", [prefix for prefix, _row in ordered])
        self._rows = array("q", [row for _prefix, row in ordered])
        self._recent: dict[int, list[int]] = {}
        self._recent_count = 0
        self._gone: set[tuple[int, int]] = set()

    @classmethod
    def from_sorted(cls, pairs: Iterable[tuple[int, int]]) -> CidIndex:
        """Build from (prefix, rowid) pairs already sorted by prefix, keeping no list of them."""
        index = cls()
        prefixes, rows = index._prefixes, index._rows
        last = -1
        for prefix, row in pairs:
            if prefix < last:
                raise ValueError("CidIndex.from_sorted: pairs are not sorted by prefix")
            last = prefix
            prefixes.append(prefix)
            rows.append(row)
        return index

    def __len__(self) -> int:
        return len(self._prefixes) - len(self._gone) + self._recent_count

    def rows(self, prefix: int) -> list[int]:
        """The rowids stored under `prefix` (usually none or one)."""
        prefixes = self._prefixes
        at = bisect_left(prefixes, prefix)
        if at < len(prefixes) and prefixes[at] == prefix:
            found = [self._rows[at]]
            at += 1
            while at < len(prefixes) and prefixes[at] == prefix:
                found.append(self._rows[at])
                at += 1
            if self._gone:
                found = [row for row in found if (prefix, row) not in self._gone]
        else:
            found = []
        if self._recent:
            recent = self._recent.get(prefix)
            if recent:
                found.extend(recent)
        return found

    def add(self, prefix: int, row: int) -> None:
        """Record that `row` holds a block whose digest starts with `prefix`."""
        self._recent.setdefault(prefix, []).append(row)
        self._recent_count += 1
        self._maybe_merge()

    def remove(self, prefix: int, row: int) -> None:
        """Forget `row` under `prefix` (it must have been added)."""
        recent = self._recent.get(prefix)
        if recent and row in recent:
            recent.remove(row)
            if not recent:
                del self._recent[prefix]
            self._recent_count -= 1
            return
        self._gone.add((prefix, row))
        self._maybe_merge()

    def _maybe_merge(self) -> None:
        if self._recent_count + len(self._gone) < max(MERGE_MIN, len(self._prefixes) >> 3):
            return
        gone = self._gone
        bulk = (
            (prefix, row)
            for prefix, row in zip(self._prefixes, self._rows, strict=True)
            if (prefix, row) not in gone
        )
        recent = sorted((prefix, row) for prefix, rows in self._recent.items() for row in rows)
        ordered = list(merge(bulk, recent))
        self._prefixes = array("Q", [prefix for prefix, _row in ordered])
        self._rows = array("q", [row for _prefix, row in ordered])
        self._recent = {}
        self._recent_count = 0
        self._gone = set()
