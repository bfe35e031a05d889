"""Where a block's CID is stored: digest prefix -> database rows (L1).

Theory of operation
-------------------
SQLiteStore finds entries by CID (duplicate check, parents of a new entry, has/get_block,
eviction). An on-disk index keyed by a random key (the CID, or any hash prefix) costs about one
dirty B-tree page per inserted entry once the index is larger than a commit, and SQLite writes
every dirty page whole, twice (WAL, then checkpoint): that was most of the store's write
amplification with schema 1 (docs/performance.md). Schema 2 kept the whole map in memory instead
(16 bytes per entry, rebuilt by a scan of `entries` at every open: 16 MB and seconds at 1M).

Schema 4 (CidTable) splits it the way a log-structured merge does, in two levels:

- on disk, table `cids (prefix BLOB, row) WITHOUT ROWID`, the first 8 digest bytes of every entry
  up to rowid `cids_merged.upto`; written only in bulk, sorted, BUFFER entries at a time, so one
  merge dirties each index page at most once for many entries;
- in memory, a CidIndex of the entries added since (rowid > upto): two sorted arrays plus a small
  dict of recent additions (below). At open it is rebuilt from `entries WHERE id > upto`, a rowid
  range of at most BUFFER rows: never a scan of the table.

When the buffer holds BUFFER entries, the commit that follows (flush(), inside the commit's
transaction) inserts them into `cids` and moves `upto`, atomically with the entries themselves.
Rows deleted from `entries` are deleted from `cids` in the same bulk step (kept in `_gone` until
then); a lookup never depends on that, because every candidate row is checked against the stored
CID (a deleted row is not found; a reused rowid holds another CID). So a crash between a delete
and the next merge leaves a few stale `cids` rows that cost nothing but their bytes. An entry
stored under a rowid at or below `upto` (SQLite reuses the largest rowid after it is deleted) is
written to `cids` at the next flush, as the range scan at open would not see it.

CidIndex layout: the first 8 bytes of the sha2-256 digest as an unsigned int (the "prefix"),
paired with the entry's rowid. The bulk sits in two parallel sorted `array('Q')`/`array('q')` (16
bytes per entry; looked up with bisect); recent additions sit in a small dict and removals of bulk
pairs in a tombstone set, both folded into the arrays once they reach 1/8 of the bulk (at least
MERGE_MIN). A prefix may map to several rows (distinct digests that share 8 bytes, e.g. crafted
by a peer): callers check the full CID of every row returned.
"""

from __future__ import annotations

import sqlite3
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from heapq import merge

MERGE_MIN = 1024
BUFFER = 65536  # entries held in memory before they are merged into `cids` (~1 MB)


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

    def pairs(self) -> Iterable[tuple[int, int]]:
        """Every (prefix, rowid) held, in order."""
        self._fold()
        return zip(self._prefixes, self._rows, strict=True)

    def _maybe_merge(self) -> None:
        if self._recent_count + len(self._gone) < max(MERGE_MIN, len(self._prefixes) >> 3):
            return
        self._fold()

    def _fold(self) -> None:
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


def _blob(prefix: int) -> bytes:
    return prefix.to_bytes(8, "big")


class CidTable:
    """digest prefix -> rowids, on disk and in a bounded buffer (see the module docstring).

    Args:
        conn: gives the store's connection (the caller holds the store's lock).
        buffer: entries kept in memory before a merge (BUFFER; tests use a few).
    """

    def __init__(self, conn: Callable[[], sqlite3.Connection], buffer: int = BUFFER) -> None:
        self._conn = conn
        self.buffer = buffer
        self._recent = CidIndex()
        self._low: list[tuple[int, int]] = []  # added at or below upto: written at flush
        self._gone: list[tuple[int, int]] = []  # deleted from the disk level: deleted at flush
        self.upto = 0
        self.merges = 0

    def load(self) -> None:
        """Read `upto` and rebuild the buffer from the rows after it (a rowid range)."""
        conn = self._conn()
        (upto,) = conn.execute("SELECT upto FROM cids_merged").fetchone()
        self.upto = int(upto)
        pairs = []
        for row, digest in conn.execute(
            "SELECT id, digest FROM entries WHERE id > ? ORDER BY id", (self.upto,)
        ):
            if not isinstance(digest, bytes) or len(digest) != 32:
                raise ValueError("an entry has a bad digest")
            pairs.append((digest_prefix(digest), int(row)))
        self._recent = CidIndex(pairs)
        self._low = []
        self._gone = []

    def __len__(self) -> int:
        """Entries held in memory (the buffer)."""
        return len(self._recent)

    def rows(self, prefix: int) -> list[int]:
        """The rowids that may hold a block whose digest starts with `prefix`."""
        found = self._recent.rows(prefix)
        for (row,) in self._conn().execute(
            "SELECT row FROM cids WHERE prefix = ?", (_blob(prefix),)
        ):
            found.append(int(row))
        return found

    def add(self, prefix: int, row: int) -> None:
        """Record that `row` holds a block whose digest starts with `prefix`."""
        self._recent.add(prefix, row)
        if row <= self.upto:
            self._low.append((prefix, row))

    def remove(self, prefix: int, row: int) -> None:
        """Forget `row` under `prefix`."""
        if row in self._recent.rows(prefix):
            self._recent.remove(prefix, row)
        if row <= self.upto:
            self._gone.append((prefix, row))

    def flush(self) -> None:
        """Inside the commit's transaction: merge the buffer into `cids` when it is full, and
        write what must not wait (rows at or below `upto`)."""
        conn = self._conn()
        if len(self._recent) >= self.buffer:
            pairs = list(self._recent.pairs())
            conn.executemany(
                "INSERT OR IGNORE INTO cids (prefix, row) VALUES (?, ?)",
                [(_blob(prefix), row) for prefix, row in pairs],
            )
            self.upto = max([self.upto] + [row for _prefix, row in pairs])
            conn.execute("UPDATE cids_merged SET upto = ?", (self.upto,))
            self._recent = CidIndex()
            self._low = []
            self.merges += 1
        if self._low:
            conn.executemany(
                "INSERT OR IGNORE INTO cids (prefix, row) VALUES (?, ?)",
                [(_blob(prefix), row) for prefix, row in sorted(self._low)],
            )
            self._low = []
        if self._gone and (len(self._gone) >= self.buffer // 8 or not len(self._recent)):
            conn.executemany(
                "DELETE FROM cids WHERE prefix = ? AND row = ?",
                [(_blob(prefix), row) for prefix, row in sorted(self._gone)],
            )
            self._gone = []
