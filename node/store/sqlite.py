"""The relay's store on SQLite (L1): node.sync.store.Store on one database file.

Theory of operation
-------------------
The policy (what is stored, refused, evicted, expired; how heads are defined) lives once in
`node.sync.store.Store`; this module implements its storage primitives on SQLite, so the two stores
decide identically (tests/property/test_store_model.py runs them side by side).

Schema (version 4, `PRAGMA user_version`; `PRAGMA application_id` = 0x57535431, "WST1"):

    logs       (id, log_id UNIQUE, sign_pub, pinned, quota, entry_count, byte_count)
    entries    (id INTEGER PRIMARY KEY, cid, log, clock_time, digest, size, stored_at, refs)
               + UNIQUE INDEX (log, clock_time, digest)   the reconciliation keys, in order
               + INDEX (stored_at)                        expiry
               + INDEX (log) WHERE refs = 0               the heads
    blocks     (id = entries.id, data)                    exact DAG-CBOR bytes, append ordered
    links      (child id, parent CID) WITHOUT ROWID       every next-link, keyed by the child
    unresolved (log, parent CID, count) WITHOUT ROWID     links to parents not stored in the log
    stats      (name, value) WITHOUT ROWID                counters (stored, refused.<reason>, ...)
    cids       (prefix, row) WITHOUT ROWID, cids_merged (upto)    CID -> rows (version 4)

Write amplification is the reason for this shape. SQLite writes every dirty page whole, twice (into
the WAL at commit, into the database at checkpoint); a B-tree keyed by a random value (a CID) gets
about one dirty page per inserted entry once it is larger than a commit. Version 2 therefore writes
only append-ordered trees per entry: `entries`, `blocks` and `links` grow at their rowid/child end,
the key index at each log's time end, the age index at its end; the heads index is tiny. A CID is
found through CidTable (node/store/cidindex.py): digest prefixes on disk in `cids`, merged in bulk,
and a bounded buffer of the newest in memory; `cid` decides between rows sharing a prefix. Heads:
`refs` counts the stored entries of the same log that name the entry in `next` (0 = head); a link
whose parent is not stored in the child's log (yet, or any more) is counted in `unresolved` and
moves into the parent's `refs` when the parent is stored, back out when it is deleted. Uniqueness of
a CID is enforced by the duplicate check in put and by the key index (the digest is in the key).

Blocks sit in their own append-ordered rowid table so that scans of `entries` (eviction, opening)
never read block bodies (sync-perf.md §4.4). Migrations are functions in MIGRATIONS, applied in
order, each in its own transaction together with the new user_version; a database newer than
this program, of another application, or not a database at all raises StoreError. Version 1 (a
UNIQUE CID index, links keyed by (log, parent CID), a heads table) converts in place (_v1_to_v2).

Durability (group commit): `synchronous=FULL`, an exclusive lock, the journal of `store.journal`
(schema.configure: WAL, or a rollback journal; docs/store.md "Why WAL"). commit() returns once
durable: the CIDs it returns may be acked. A power cut loses exactly the work put since the last
commit(). A clean close leaves no journal or WAL beside the file (`left_open` sees one left).

Caches: per log, the entry/byte counts (read from `logs` at open) and, once used, the KeySet of
(lamport time, digest), loaded from the key index and kept within a byte budget
(node/store/keycache.py); the counters. Opening reads `logs` and `stats` only: no table scan of
entries (tests/test_store_open.py). They change with every write and are reloaded from the
database after a rollback. Every sqlite3.Error and OSError is translated to StoreError in
`_guard`; after one the open transaction is rolled back (its work is lost, unacknowledged) and the
caches are reloaded. Rows that make no sense (a hostile or corrupt file) raise StoreError too.

Every call holds one lock (the daemon commits on its commit thread, everything else on the loop).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from node.errors import StoreError
from node.store.cidindex import CidTable, digest_prefix
from node.store.keycache import DEFAULT_BUDGET, KeyCache, SQLiteLog
from node.store.schema import (  # MIGRATIONS and APPLICATION_ID are part of this module's API
    APPLICATION_ID,
    DAMAGED,
    MIGRATIONS,
    check_integrity,
    cid_col,
    configure,
    corrupt,
    entries_at,
    int_col,
    load_caches,
    migrate,
)
from node.store.space import DEFAULT_MIN_FREE_BYTES, DiskSpace, OncePer, is_disk_full
from node.store.space import log as logger
from node.sync.cid import CID
from node.sync.entry import Entry
from node.sync.keyset import KeySet
from node.sync.store import Candidate, Limits, LogInfo, LogRecord, PutResult, Store

__all__ = ["APPLICATION_ID", "FILENAME", "MIGRATIONS", "SQLiteStore"]

FILENAME = "store.sqlite3"
QUOTA_LOG_INTERVAL_S = 24 * 3600

# Statements of SQLiteStore._find: the stored CID first, then what the caller needs.
_CID_BY_ROW = "SELECT cid FROM entries WHERE id = ?"
_BLOCK_BY_ROW = "SELECT e.cid, b.data FROM entries e JOIN blocks b ON b.id = e.id WHERE e.id = ?"
_LOG_BY_ROW = "SELECT cid, id, log FROM entries WHERE id = ?"
_ENTRY_BY_ROW = "SELECT cid, id, log, clock_time, digest, size, refs FROM entries WHERE id = ?"

_CORRUPT, _NOTADB = sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB
if TYPE_CHECKING:
    from node.sync.keyset import Key
    from node.sync.store import Verify


class SQLiteStore(Store):
    """The Store on one SQLite database file (see the module docstring).

    Args:
        path: the database file (created if missing); see open_in() for the data directory.
        journal: "wal" or "rollback" (`store.journal`; schema.JOURNALS).
        verify: Ed25519 verify(public key, message, signature) -> bool, e.g. suite.ed25519_verify.
        limits: store limits (node.sync.store.Limits).
        min_free_bytes: disk space kept free (node/store/space.py).
        key_budget: bytes of logs' keys held in memory (node/store/keycache.py).

    Raises:
        StoreError: the file cannot be opened, is not a Waystation store, is newer, or is corrupt.
    """

    thread_safe = True  # one connection, every call under self._lock

    def __init__(
        self, path: str | Path, verify: Verify, limits: Limits | None = None,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES, key_budget: int = DEFAULT_BUDGET,
        journal: str = "wal",
    ) -> None:  # fmt: skip
        super().__init__(verify, limits)
        self.path = Path(path)
        self.space = DiskSpace(self.path.parent, min_free_bytes, self._free_page_bytes)
        self._window_bytes = 0  # block bytes put since the last commit
        self._quota_log = OncePer(QUOTA_LOG_INTERVAL_S)
        self._unsaved_logs: list[tuple[str, bytes, bool, int | None]] = []  # add_log since commit
        self._lock = threading.RLock()
        self._logs: dict[str, SQLiteLog] = {}
        self._by_row: dict[int, SQLiteLog] = {}
        self._dirty_logs: set[int] = set()
        self._stats: dict[str, int] = {}
        self._stat_deltas: dict[str, int] = {}
        self._bytes = 0
        self._conn: sqlite3.Connection | None = None
        self.keys = KeyCache(self._db, key_budget)
        self._cids = CidTable(self._db)
        # A journal (or an old store's WAL) beside the file: its last user did not close it.
        self.left_open = any(Path(str(self.path) + s).exists() for s in ("-journal", "-wal"))
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=0.0
            )
            configure(self._conn, journal)
            migrate(self._conn, MIGRATIONS)
            self._reload()
        except (sqlite3.Error, OSError) as exc:
            self._abandon()
            damaged = getattr(exc, "sqlite_errorcode", None) in (_CORRUPT, _NOTADB)
            raise StoreError(
                "cannot open store %s: %s%s" % (self.path, exc, DAMAGED if damaged else "")
            ) from exc
        except StoreError:
            self._abandon()
            raise

    @classmethod
    def open_in(
        cls, data_dir: str | Path, verify: Verify, limits: Limits | None = None,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES, key_budget: int = DEFAULT_BUDGET,
        journal: str = "wal",
    ) -> SQLiteStore:  # fmt: skip
        """Open (or create) the store file FILENAME in `data_dir`."""
        return cls(Path(data_dir) / FILENAME, verify, limits, min_free_bytes, key_budget, journal)

    def quick_check(self) -> None:
        """`PRAGMA quick_check` (the daemon's start when left_open); StoreError: one line."""
        with self._guard("quick_check") as conn:
            check_integrity(conn, self.path)

    @property
    def disk_full(self) -> str:
        """Why the store takes no entries now (the disk is full), or "" while it takes them."""
        return self.space.full

    # ---- opening ------------------------------------------------------------------------------

    def _reload(self) -> None:
        """(Re)build the caches from the database: the logs table and the counters, no entry."""
        conn = self._db()
        caches = load_caches(conn)
        self.keys.clear()
        try:
            self._cids.load()
        except ValueError as exc:
            raise corrupt(str(exc)) from None
        self._logs = {}
        self._by_row = {}
        self._bytes = 0
        for row, log_id, sign_pub, pinned, quota, entry_count, byte_count in caches.logs:
            record = SQLiteLog(log_id, sign_pub, pinned, quota, row, self.keys)
            record.entry_count = entry_count
            record.byte_count = byte_count
            self._logs[log_id] = record
            self._by_row[row] = record
            self._bytes += byte_count
        self._stats = caches.stats
        self._stat_deltas = {}
        self._dirty_logs = set()

    def _abandon(self) -> None:
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    # ---- the one place foreign errors become StoreError ---------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store %s is closed" % self.path)
        return self._conn

    @contextmanager
    def _guard(self, what: str, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._db()
            try:
                if write and not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
            except StoreError:
                if write:
                    self._recover()
                raise
            except (sqlite3.Error, OSError) as exc:
                if is_disk_full(exc):
                    self.space.failed("%s failed: %s" % (what, exc))
                self._recover()
                raise StoreError("store %s: %s failed: %s" % (self.path, what, exc)) from exc

    def _recover(self) -> None:
        """Roll back the open transaction (never acknowledged) and rebuild the caches.

        Everything put since the last commit is gone, whichever link put it: `generation` moves
        on, so the Committer acknowledges none of it. Logs registered since the last commit are
        registered again (a registration is not silently undone)."""
        self._acks = []
        self._ack_set = set()
        self.generation += 1
        self._window_bytes = 0
        unsaved, self._unsaved_logs = self._unsaved_logs, []
        try:
            conn = self._db()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._reload()
        except (sqlite3.Error, OSError, StoreError):
            self._abandon()  # unusable: every later call raises StoreError "closed"
            return
        try:
            for log_id, sign_pub, pinned, quota in unsaved:
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                self.add_log_unguarded(log_id, sign_pub, pinned, quota)
        except (sqlite3.Error, OSError) as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            with suppress(sqlite3.Error, OSError, StoreError):
                self._reload()
            logger.error("store %s: registrations since the last commit lost: %s", self.path, exc)

    def _free_page_bytes(self) -> int:
        conn = self._db()
        pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)

    # ---- public API (each call guarded) --------------------------------------------------------

    def add_log(
        self, log_id: str, sign_pub: bytes, pinned: bool = False, quota: int | None = None
    ) -> None:
        with self._guard("add_log", write=True):
            self.add_log_unguarded(log_id, sign_pub, pinned, quota)

    def add_log_unguarded(
        self, log_id: str, sign_pub: bytes, pinned: bool, quota: int | None
    ) -> None:
        """add_log inside an open transaction, remembered until the next commit."""
        super().add_log(log_id, sign_pub, pinned, quota)
        self._unsaved_logs.append((log_id, sign_pub, pinned, quota))

    def logs(self) -> list[str]:
        with self._guard("logs"):
            return super().logs()

    def log_info(self, log_id: str) -> LogInfo:
        with self._guard("log_info"):
            return super().log_info(log_id)

    def heads(self, log_id: str) -> list[CID]:
        with self._guard("heads"):
            return super().heads(log_id)

    def keyset(self, log_id: str) -> KeySet:
        with self._guard("keyset"):
            return super().keyset(log_id)

    def put_entries(self, entries: Iterable[Entry], now: int | float) -> list[PutResult]:
        with self._guard("put_entries", write=True):
            self.space.new_batch()
            return super().put_entries(entries, now)

    def commit(self) -> list[CID]:
        with self._guard("commit"):
            return super().commit()

    def expire(self, now: int | float) -> int:
        with self._guard("expire", write=True):
            return super().expire(now)

    def stats(self) -> dict[str, int]:
        with self._guard("stats"):
            return super().stats()

    def missing_parents(self, log_id: str) -> list[CID]:
        with self._guard("missing_parents"):
            return super().missing_parents(log_id)

    def has(self, cid: CID) -> bool:
        with self._guard("has"):
            return self._find(cid, _CID_BY_ROW) is not None

    def get_block(self, cid: CID) -> bytes | None:
        """The exact stored block, checked against its CID on the way out."""
        with self._guard("get_block"):
            block = self._block(cid)
            if block is not None and hashlib.sha256(block).digest() != cid.digest:
                raise corrupt("block %s does not hash to its CID" % cid)
            return block

    def entries_by_keys(self, log_id: str, keys: Iterable[Key]) -> list[Entry]:
        with self._guard("entries_by_keys") as conn:
            return entries_at(conn, self._known_log(log_id).row, keys)

    def close(self) -> None:
        """Close the database; work not committed is rolled back (it was never acknowledged)."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with suppress(sqlite3.Error):  # a rollback journal goes (not if the disk is full)
                    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "persist":
                        conn.execute("PRAGMA journal_mode = DELETE")
                conn.close()
            except sqlite3.Error as exc:
                raise StoreError("store %s: close failed: %s" % (self.path, exc)) from exc
            finally:
                self._conn = None

    # ---- storage primitives -------------------------------------------------------------------

    def _log(self, log_id: str) -> LogRecord | None:
        return self._logs.get(log_id)

    def _log_ids(self) -> list[str]:
        return list(self._logs)

    def _new_log(self, log_id: str, sign_pub: bytes, pinned: bool, quota: int | None) -> None:
        cursor = self._db().execute(
            "INSERT INTO logs (log_id, sign_pub, pinned, quota) VALUES (?, ?, ?, ?)",
            (log_id, sign_pub, int(pinned), quota),
        )
        row = cursor.lastrowid
        assert row is not None
        record = SQLiteLog(log_id, sign_pub, pinned, quota, row, self.keys, KeySet())
        self._logs[log_id] = record
        self._by_row[row] = record

    def _update_log(self, record: LogRecord) -> None:
        self._db().execute(
            "UPDATE logs SET pinned = ?, quota = ? WHERE id = ?",
            (int(record.pinned), record.quota, record.row),
        )

    def _heads(self, record: LogRecord) -> list[CID]:
        rows = self._db().execute(
            "SELECT cid FROM entries WHERE log = ? AND refs = 0 ORDER BY cid", (record.row,)
        )
        return [cid_col(cid) for (cid,) in rows]

    def _find(self, cid: CID, query: str) -> tuple[object, ...] | None:
        """The row of `query` (one of the _BY_ROW statements: the stored CID, then columns, of
        the entry with rowid ?) for the entry `cid`, or None when it is not stored.

        CidTable names the candidate rows; the stored CID decides (a prefix may be shared)."""
        rows = self._cids.rows(digest_prefix(cid.digest))
        if not rows:
            return None
        binary = cid.to_bytes()
        execute = self._db().execute
        for row in rows:
            found: tuple[object, ...] | None = execute(query, (row,)).fetchone()
            if found is not None and found[0] == binary:
                return found
        return None

    def _block(self, cid: CID) -> bytes | None:
        found = self._find(cid, _BLOCK_BY_ROW)
        if found is None:
            return None
        if not isinstance(found[1], bytes):
            raise corrupt("block %s is %s" % (cid, type(found[1]).__name__))
        return found[1]

    def _link(self, log: int, parent: CID, delta: int) -> None:
        """Count (+1) or uncount (-1) a stored child of `log` naming `parent` in `next`.

        A parent stored in the same log keeps the count in its `refs` (0 = a head); otherwise the
        count waits in `unresolved` until the parent is stored (out-of-order sync) or the last
        child naming it goes."""
        conn = self._db()
        found = self._find(parent, _LOG_BY_ROW)
        if found is not None and found[2] == log:
            conn.execute("UPDATE entries SET refs = refs + ? WHERE id = ?", (delta, found[1]))
        elif delta > 0:
            conn.execute(
                "INSERT INTO unresolved (log, parent, count) VALUES (?, ?, ?)"
                " ON CONFLICT (log, parent) DO UPDATE SET count = count + excluded.count",
                (log, parent.to_bytes(), delta),
            )
        else:
            binary = parent.to_bytes()
            conn.execute(
                "UPDATE unresolved SET count = count + ? WHERE log = ? AND parent = ?",
                (delta, log, binary),
            )
            conn.execute(
                "DELETE FROM unresolved WHERE log = ? AND parent = ? AND count <= 0", (log, binary)
            )

    def _insert(self, entry: Entry, record: LogRecord, now: int) -> None:
        conn = self._db()
        cid = entry.cid.to_bytes()
        size = len(entry.block)
        key = (entry.clock_time, entry.cid.digest)
        keys = record.keyset  # loaded (if it must be) before the rows change
        refs = 0
        waiting = conn.execute(
            "SELECT count FROM unresolved WHERE log = ? AND parent = ?", (record.row, cid)
        ).fetchone()
        if waiting is not None:
            refs = int_col(waiting[0], "unresolved count")
            conn.execute("DELETE FROM unresolved WHERE log = ? AND parent = ?", (record.row, cid))
        row = conn.execute(
            "INSERT INTO entries (cid, log, clock_time, digest, size, stored_at, refs)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cid, record.row, key[0], key[1], size, now, refs),
        ).lastrowid
        assert row is not None
        conn.execute("INSERT INTO blocks (id, data) VALUES (?, ?)", (row, entry.block))
        self._cids.add(digest_prefix(key[1]), row)
        parents = sorted(set(entry.next))
        if parents:
            conn.executemany(
                "INSERT INTO links (child, parent) VALUES (?, ?)",
                [(row, parent.to_bytes()) for parent in parents],
            )
            for parent in parents:
                self._link(record.row, parent, 1)
        keys.add(key)
        record.entry_count += 1
        record.byte_count += size
        self._bytes += size
        self._window_bytes += size
        self._dirty_logs.add(record.row)

    def _delete(self, cid: CID) -> None:
        conn = self._db()
        found = self._find(cid, _ENTRY_BY_ROW)
        if found is None:
            raise corrupt("entry %s vanished" % cid)
        _binary, row, log, clock_time, digest, size, refs = found
        record = self._by_row.get(int_col(log, "log id"))
        if record is None:
            raise corrupt("entry %s of unknown log %r" % (cid, log))
        assert isinstance(row, int) and isinstance(clock_time, int) and isinstance(digest, bytes)
        size = int_col(size, "entry size")
        keys = record.keyset  # loaded (if it must be) before the rows change
        parents = [p for (p,) in conn.execute("SELECT parent FROM links WHERE child = ?", (row,))]
        conn.execute("DELETE FROM links WHERE child = ?", (row,))
        conn.execute("DELETE FROM entries WHERE id = ?", (row,))
        conn.execute("DELETE FROM blocks WHERE id = ?", (row,))
        self._cids.remove(digest_prefix(digest), row)
        for parent in parents:
            self._link(record.row, cid_col(parent), -1)
        if int_col(refs, "refs"):
            # Its stored children still name it: it is not a head should it come back.
            conn.execute(
                "INSERT INTO unresolved (log, parent, count) VALUES (?, ?, ?)",
                (record.row, cid.to_bytes(), refs),
            )
        keys.remove((clock_time, digest))
        record.entry_count -= 1
        record.byte_count -= size
        self._bytes -= size
        self._dirty_logs.add(record.row)

    def _candidates(
        self, now: int, record: LogRecord | None, include_pinned: bool
    ) -> Iterator[Candidate]:
        where = []
        params: list[object] = []
        if record is not None:
            where.append("e.log = ?")
            params.append(record.row)
        if include_pinned:
            where.append("(l.pinned = 0 OR e.refs > 0)")
        else:
            where.append("l.pinned = 0")
        cursor = self._db().execute(
            "SELECT e.cid, e.size FROM entries e JOIN logs l ON l.id = e.log"
            " WHERE " + " AND ".join(where) + " ORDER BY l.pinned,"
            " max(? - e.stored_at, 0) * e.size DESC, l.log_id, e.clock_time, e.digest",
            [*params, now],
        )
        try:
            for cid, size in cursor:
                yield Candidate(cid_col(cid), int_col(size, "entry size"))
        finally:
            cursor.close()

    def _over_quota(self, record: LogRecord, key: Key, size: int) -> str:
        why = super()._over_quota(record, key, size)
        if why:  # the operator hears of each log over its quota once a day
            self._quota_log.say(
                record.log_id,
                "log %s is over its quota: %s; older entries are refused" % (record.log_id, why),
            )
        return why

    def _missing_parents(self, record: LogRecord) -> list[CID]:
        rows = self._db().execute("SELECT parent FROM unresolved WHERE log = ?", (record.row,))
        return [cid_col(parent) for (parent,) in rows]

    def _entry_at(self, record: LogRecord, key: Key) -> Candidate | None:
        row = (
            self._db()
            .execute(
                "SELECT cid, size FROM entries WHERE log = ? AND clock_time = ? AND digest = ?",
                (record.row, key[0], key[1]),
            )
            .fetchone()
        )
        return None if row is None else Candidate(cid_col(row[0]), int_col(row[1], "entry size"))

    def _stored_before(self, cutoff: int) -> list[tuple[CID, int]]:
        rows = self._db().execute(
            "SELECT cid, size FROM entries WHERE stored_at <= ? ORDER BY cid", (cutoff,)
        )
        return [(cid_col(cid), int_col(size, "entry size")) for cid, size in rows]

    def _total_bytes(self) -> int:
        return self._bytes

    def _count(self, name: str, delta: int) -> None:
        self._stats[name] = self._stats.get(name, 0) + delta
        self._stat_deltas[name] = self._stat_deltas.get(name, 0) + delta

    def _counters(self) -> dict[str, int]:
        return dict(self._stats)

    def _make_durable(self) -> None:
        conn = self._db()
        if not conn.in_transaction:
            return
        if self._stat_deltas:
            conn.executemany(
                "INSERT INTO stats (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                sorted(self._stat_deltas.items()),
            )
        if self._dirty_logs:
            conn.executemany(
                "UPDATE logs SET entry_count = ?, byte_count = ? WHERE id = ?",
                [
                    (self._by_row[row].entry_count, self._by_row[row].byte_count, row)
                    for row in sorted(self._dirty_logs)
                    if row in self._by_row
                ],
            )
        self._cids.flush()
        conn.execute("COMMIT")  # synchronous=FULL: returns once durable
        self._stat_deltas = {}
        self._dirty_logs = set()
        self._window_bytes = 0
        self._unsaved_logs = []

    def _disk_room(self, size: int) -> str:
        return self.space.room(self._window_bytes, size)
