"""The logs' KeySets the SQLite store keeps in memory, within a byte budget (L1).

Theory of operation
-------------------
A log's KeySet (node/sync/keyset.py: its reconciliation keys in order, range fingerprints,
sketches) costs about KEY_BYTES per key, and its full IBLT, once a reconciliation has asked for
one, SKETCH_BYTES more. Held for every log that is ~47 MB at a million entries, and loading them
all at open scanned `entries` (seconds). So the store loads a log's KeySet when it is first asked
for, from the key index alone (`entries_by_key` covers (log, clock_time, digest): a range scan of
that one log, no table rows read), and this cache keeps the sets most recently used within
`budget` bytes:

- every use (SQLiteLog.keyset) moves the log to the young end and counts its cost; an IBLT is
  built by the reconciliation after the use that returned its set, so every RECOUNT_EVERY uses
  all held sets are counted again;
- when the sets held cost more than the budget, the oldest lose their IBLT first (it is rebuilt
  from the keys, O(n), when asked for again), then are dropped whole, oldest first; the set just
  used is never dropped, so a log larger than the budget still works (it costs its own size);
- a dropped set is remembered by a weak reference: while a link still holds it (reconciling
  against it), the next use takes that same object back instead of loading a second copy. There is
  never more than one live KeySet per log, so a write always reaches the set a link reads.

Writes go through SQLiteLog.keyset too (node/sync/store.py's policy and SQLiteStore's _insert
and _delete take it before changing rows), so a set in memory always equals the log's rows in the
store's connection (committed or not). After a rollback the store builds new records and this
cache starts empty.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator

from node.errors import NodeError
from node.store.schema import corrupt, int_col
from node.sync.keyset import KeySet
from node.sync.storetypes import LogRecord

KEY_BYTES = 48  # a KeySet's memory per key on CPython, prefix sums built (bench/keyset_memory.py)
SKETCH_BYTES = 240 * 1024  # its full IBLT (node/sync/sketch.py: 3 x 720 cells)
DEFAULT_BUDGET = 6 * 1024 * 1024  # ~130k keys: one log of 100k keys with its IBLT fits
RECOUNT_EVERY = 32  # uses between recounts of every held set (an IBLT is built after a use)


class KeyCache:
    """Loads logs' KeySets from the database and keeps the recently used within `budget` bytes.

    Args:
        conn: gives the store's connection (the caller holds the store's lock).
        budget: bytes of KeySets (and their IBLTs) to keep; see the module docstring.
    """

    def __init__(
        self, conn: Callable[[], sqlite3.Connection], budget: int = DEFAULT_BUDGET
    ) -> None:
        self._conn = conn
        self.budget = budget
        self._held: OrderedDict[int, SQLiteLog] = OrderedDict()  # log row -> record, LRU first
        self._costs: dict[int, int] = {}  # log row -> its cost when last used
        self.total = 0  # bytes the held sets cost by this module's estimate, as last used
        self.loads = 0  # sets read from the database (tests, status)
        self._uses = 0

    def __len__(self) -> int:
        return len(self._held)

    def load(self, record: SQLiteLog) -> KeySet:
        """The log's keys from the key index (no table rows read); checked against its count."""
        self.loads += 1

        def keys() -> Iterator[tuple[int, bytes]]:
            for clock_time, digest in self._conn().execute(
                "SELECT clock_time, digest FROM entries WHERE log = ? ORDER BY clock_time, digest",
                (record.row,),
            ):
                if not isinstance(digest, bytes) or len(digest) != 32:
                    raise corrupt("an entry of %s has a bad digest" % record.log_id)
                yield int_col(clock_time, "clock_time"), digest

        try:
            loaded = KeySet.from_sorted(keys())
        except NodeError as exc:
            raise corrupt("keys of log %s: %s" % (record.log_id, exc)) from exc
        if len(loaded) != record.entry_count:
            raise corrupt(
                "log %s counts %d entries and holds %d"
                % (record.log_id, record.entry_count, len(loaded))
            )
        return loaded

    def used(self, record: SQLiteLog) -> None:
        """`record`'s set was just used: keep it young and the rest within the budget."""
        held = self._held
        if record.row in held:
            held.move_to_end(record.row)
        else:
            held[record.row] = record
        self._uses += 1
        if self._uses % RECOUNT_EVERY == 0:  # IBLTs built since their set's last use
            for row in held:
                self._recount(row)
        else:
            self._recount(record.row)
        if self.total <= self.budget or len(held) == 1:
            return
        for row in list(held):  # oldest first: IBLTs go before keys
            if self.total <= self.budget or row == record.row:
                break
            keys = held[row].held_keys()
            if keys is not None and keys.sketch_built():
                keys.drop_sketch()
                self._recount(row)
        for row in list(held):
            if self.total <= self.budget or row == record.row:
                break
            self.forget(held[row])

    def _recount(self, row: int) -> None:
        cost = _cost(self._held[row].held_keys())
        self.total += cost - self._costs.get(row, 0)
        self._costs[row] = cost

    def clear(self) -> None:
        """Hold nothing (the store rebuilds its records after a rollback)."""
        for record in list(self._held.values()):
            self.forget(record)

    def forget(self, record: SQLiteLog) -> None:
        """Stop holding `record`'s set (a link still holding it keeps it alive)."""
        if self._held.pop(record.row, None) is not None:
            self.total -= self._costs.pop(record.row, 0)
            record.release()


def _cost(keys: KeySet | None) -> int:
    if keys is None:
        return 0
    return len(keys) * KEY_BYTES + (SKETCH_BYTES if keys.sketch_built() else 0)


class SQLiteLog(LogRecord):
    """A log of the SQLite store: its KeySet is loaded on use and may be dropped (KeyCache)."""

    __slots__ = ("_cache", "_keys", "_weak")

    def __init__(
        self,
        log_id: str,
        sign_pub: bytes,
        pinned: bool,
        quota: int | None,
        row: int,
        cache: KeyCache,
        keys: KeySet | None = None,
    ) -> None:
        self._cache = cache
        self._keys: KeySet | None = None
        self._weak: weakref.ReferenceType[KeySet] | None = None
        super().__init__(log_id, sign_pub, pinned, quota, KeySet() if keys is None else keys, row)
        self._keys = keys  # None: loaded on first use

    @property
    def keyset(self) -> KeySet:
        """The log's keys: held, taken back from a link that still holds them, or loaded."""
        keys = self._keys
        if keys is None:
            keys = self._weak() if self._weak is not None else None
            if keys is None:
                keys = self._cache.load(self)
            self._keys = keys
            self._weak = None
        self._cache.used(self)
        return keys

    @keyset.setter
    def keyset(self, keys: KeySet) -> None:
        self._keys = keys
        self._weak = None

    def held_keys(self) -> KeySet | None:
        """The set if held now (no load, no use)."""
        return self._keys

    def release(self) -> None:
        """Drop the set; a link still holding it keeps it alive for the next use."""
        if self._keys is not None:
            self._weak = weakref.ref(self._keys)
            self._keys = None
