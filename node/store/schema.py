"""The SQLite store's schema: DDL, migrations, opening pragmas, and row checks (L1).

Split out of node/store/sqlite.py (see its docstring for the schema and why it has this shape).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from node.errors import NodeError, StoreError
from node.sync.cid import CID
from node.sync.entry import Entry, decode_entry

if TYPE_CHECKING:
    from node.sync.keyset import Key

APPLICATION_ID = 0x57535431  # "WST1"
DAMAGED = (
    ": the file is damaged; stop the daemon, move the file aside and start again with an empty"
    " store (peers send their entries again), or restore a backup"
)
MAX_INT64 = (1 << 63) - 1


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in (
        """CREATE TABLE logs (
            id INTEGER PRIMARY KEY,
            log_id TEXT NOT NULL UNIQUE,
            sign_pub BLOB NOT NULL,
            pinned INTEGER NOT NULL,
            quota INTEGER,
            entry_count INTEGER NOT NULL DEFAULT 0,
            byte_count INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            cid BLOB NOT NULL UNIQUE,
            log INTEGER NOT NULL,
            clock_time INTEGER NOT NULL,
            digest BLOB NOT NULL,
            size INTEGER NOT NULL,
            stored_at INTEGER NOT NULL)""",
        "CREATE UNIQUE INDEX entries_by_key ON entries (log, clock_time, digest)",
        "CREATE INDEX entries_by_age ON entries (stored_at)",
        "CREATE TABLE blocks (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
        """CREATE TABLE links (
            log INTEGER NOT NULL, parent BLOB NOT NULL, child INTEGER NOT NULL,
            PRIMARY KEY (log, parent, child)) WITHOUT ROWID""",
        "CREATE INDEX links_by_child ON links (child)",
        """CREATE TABLE heads (
            log INTEGER NOT NULL, entry INTEGER NOT NULL,
            PRIMARY KEY (log, entry)) WITHOUT ROWID""",
        """CREATE TABLE stats (
            name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID""",
    ):
        conn.execute(statement)


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Version 2: no random-key B-tree is written per entry (see the module docstring).

    `entries` is rebuilt without the UNIQUE CID index and with `refs`, the number of stored
    entries of its log naming it in `next` (filled from the v1 links); `links` is re-keyed by
    child; links to parents not stored in the child's log become `unresolved` counts; the
    `heads` table becomes a partial index on refs = 0.
    """
    for statement in (
        """CREATE TABLE entries_v2 (
            id INTEGER PRIMARY KEY,
            cid BLOB NOT NULL,
            log INTEGER NOT NULL,
            clock_time INTEGER NOT NULL,
            digest BLOB NOT NULL,
            size INTEGER NOT NULL,
            stored_at INTEGER NOT NULL,
            refs INTEGER NOT NULL DEFAULT 0)""",
        """INSERT INTO entries_v2 (id, cid, log, clock_time, digest, size, stored_at, refs)
            SELECT e.id, e.cid, e.log, e.clock_time, e.digest, e.size, e.stored_at,
                   (SELECT count(*) FROM links l WHERE l.log = e.log AND l.parent = e.cid)
            FROM entries e ORDER BY e.id""",
        """CREATE TABLE unresolved (
            log INTEGER NOT NULL, parent BLOB NOT NULL, count INTEGER NOT NULL,
            PRIMARY KEY (log, parent)) WITHOUT ROWID""",
        """INSERT INTO unresolved (log, parent, count)
            SELECT l.log, l.parent, count(*) FROM links l
            WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.cid = l.parent AND e.log = l.log)
            GROUP BY l.log, l.parent""",
        """CREATE TABLE links_v2 (
            child INTEGER NOT NULL, parent BLOB NOT NULL,
            PRIMARY KEY (child, parent)) WITHOUT ROWID""",
        "INSERT INTO links_v2 (child, parent) SELECT child, parent FROM links ORDER BY child",
        "DROP TABLE links",
        "DROP TABLE heads",
        "DROP TABLE entries",
        "ALTER TABLE entries_v2 RENAME TO entries",
        "ALTER TABLE links_v2 RENAME TO links",
        "CREATE UNIQUE INDEX entries_by_key ON entries (log, clock_time, digest)",
        "CREATE INDEX entries_by_age ON entries (stored_at)",
        "CREATE INDEX entries_heads ON entries (log) WHERE refs = 0",
    ):
        conn.execute(statement)


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    """Version 3: paired devices and relays (node/store/devices.py) and the logs they registered."""
    for statement in (
        """CREATE TABLE devices (
            static_key BLOB NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            quota INTEGER NOT NULL,
            created INTEGER NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE device_logs (
            static_key BLOB NOT NULL, log_id TEXT NOT NULL,
            PRIMARY KEY (static_key, log_id)) WITHOUT ROWID""",
    ):
        conn.execute(statement)


def _v3_to_v4(conn: sqlite3.Connection) -> None:
    """Version 4: the CID -> rows map lives on disk, merged in bulk (node/store/cidindex.py).

    Versions 2 and 3 kept all of it in memory, rebuilt by a scan of `entries` at every open."""
    for statement in (
        """CREATE TABLE cids (
            prefix BLOB NOT NULL, row INTEGER NOT NULL,
            PRIMARY KEY (prefix, row)) WITHOUT ROWID""",
        "CREATE TABLE cids_merged (upto INTEGER NOT NULL)",
        "INSERT INTO cids (prefix, row) SELECT substr(digest, 1, 8), id FROM entries ORDER BY 1, 2",
        "INSERT INTO cids_merged (upto) SELECT coalesce(max(id), 0) FROM entries",
    ):
        conn.execute(statement)


# Migration i (0-based) takes the schema from version i to version i + 1. A new database runs
# them all (the v1 tables are empty when v2 converts them).
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _create_v1, _v1_to_v2, _v2_to_v3, _v3_to_v4,
]  # fmt: skip


def corrupt(what: str) -> StoreError:
    return StoreError("store database is corrupt or not ours: " + what)


def int_col(value: object, what: str, low: int = 0, high: int = MAX_INT64) -> int:
    if type(value) is not int or not low <= value <= high:
        raise corrupt("%s is %r" % (what, value))
    return value


def cid_col(value: object) -> CID:
    if not isinstance(value, bytes):
        raise corrupt("a CID column holds %s" % type(value).__name__)
    try:
        return CID.from_bytes(value)
    except NodeError as exc:
        raise corrupt("bad CID %s: %s" % (value.hex(), exc)) from exc


# store.journal -> (SQLite journal_mode, page size of a new store); docs/store.md "Why WAL".
JOURNALS = {"wal": ("wal", 4096), "rollback": ("persist", 2048)}
JOURNAL_SIZE_LIMIT = 4 << 20  # rollback: a persistent journal is cut to this after a commit


def configure(conn: sqlite3.Connection, journal: str = "wal") -> None:
    """Journal (`store.journal`), synchronous=FULL, an exclusive lock (see node/store/sqlite.py).

    "wal": every page is written twice (WAL, then checkpoint), one fsync per commit. "rollback"
    (PERSIST): new pages are written once, four fsyncs per commit. A store made in the other mode
    converts here (leaving WAL checkpoints it); a page size applies only to a new store."""
    if journal not in JOURNALS:
        raise StoreError("unknown store journal %r (one of %s)" % (journal, ", ".join(JOURNALS)))
    mode, page_size = JOURNALS[journal]
    # Exclusive before WAL: no shared-memory index, and a second process gets "locked".
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        conn.execute("PRAGMA page_size = %d" % page_size)
    got = conn.execute("PRAGMA journal_mode = %s" % mode).fetchone()
    if got is None or str(got[0]).lower() != mode:
        raise StoreError("store database refused journal mode %s (got %r)" % (mode, got))
    conn.execute("PRAGMA journal_size_limit = %d" % JOURNAL_SIZE_LIMIT)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = OFF")


def migrate(
    conn: sqlite3.Connection, migrations: list[Callable[[sqlite3.Connection], None]]
) -> None:
    """Bring the schema to len(migrations), one transaction per step; refuse what is not ours."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id not in (0, APPLICATION_ID):
        raise StoreError("not a Waystation store: application_id 0x%08x" % app_id)
    if version > len(migrations):
        raise StoreError(
            "store schema version %d is newer than this program's %d; refusing to open"
            % (version, len(migrations))
        )
    if version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise StoreError("not a Waystation store: schema version 0 with %d objects" % tables)
    elif app_id != APPLICATION_ID:
        raise StoreError("not a Waystation store: application_id 0")
    while version < len(migrations):
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrations[version](conn)
            version += 1
            conn.execute("PRAGMA user_version = %d" % version)
            conn.execute("PRAGMA application_id = %d" % APPLICATION_ID)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class Caches:
    """What SQLiteStore keeps in memory, as loaded from the database."""

    def __init__(
        self, logs: list[tuple[int, str, bytes, bool, int | None, int, int]], stats: dict[str, int]
    ) -> None:
        self.logs = logs  # (row, log_id, sign_pub, pinned, quota, entry_count, byte_count)
        self.stats = stats


def load_caches(conn: sqlite3.Connection) -> Caches:
    """The store's caches from the `logs` and `stats` tables (at open and after a rollback).

    No entry is read: a log's counts are the ones its last commit wrote, and its keys are loaded
    when first used (node/store/keycache.py)."""
    logs: list[tuple[int, str, bytes, bool, int | None, int, int]] = []
    for row, log_id, sign_pub, pinned, quota, entry_count, byte_count in conn.execute(
        "SELECT id, log_id, sign_pub, pinned, quota, entry_count, byte_count FROM logs"
    ):
        if not isinstance(log_id, str) or not log_id:
            raise corrupt("log %r has a bad id" % (row,))
        if not isinstance(sign_pub, bytes) or len(sign_pub) != 32:
            raise corrupt("log %s has a bad sign_pub" % log_id)
        if pinned not in (0, 1):
            raise corrupt("log %s has pinned=%r" % (log_id, pinned))
        if quota is not None:
            int_col(quota, "quota of " + log_id, 1)
        logs.append((
            int_col(row, "log id"), log_id, sign_pub, pinned == 1, quota,
            int_col(entry_count, "entry count of " + log_id),
            int_col(byte_count, "byte count of " + log_id),
        ))  # fmt: skip
    stats: dict[str, int] = {}
    for name, value in conn.execute("SELECT name, value FROM stats"):
        if not isinstance(name, str):
            raise corrupt("a counter has name %r" % (name,))
        stats[name] = int_col(value, "counter " + name)
    return Caches(logs, stats)


def entries_at(conn: sqlite3.Connection, log: int, keys: Iterable[Key]) -> list[Entry]:
    """The stored entries of log (row) `log` at `keys` (those not stored are left out)."""
    found: list[Entry] = []
    for clock_time, digest in keys:
        row = conn.execute(
            "SELECT e.cid, b.data FROM entries e JOIN blocks b ON b.id = e.id"
            " WHERE e.log = ? AND e.clock_time = ? AND e.digest = ?",
            (log, clock_time, digest),
        ).fetchone()
        if row is None:
            continue
        cid = cid_col(row[0])
        try:
            entry = decode_entry(row[1])
        except NodeError as exc:
            raise corrupt("block %s does not decode: %s" % (cid, exc)) from exc
        if entry.cid != cid or entry.clock_time != clock_time:
            raise corrupt("block %s does not match its index row" % cid)
        found.append(entry)
    return found


def check_integrity(conn: sqlite3.Connection, path: object) -> None:
    """`PRAGMA quick_check`; StoreError (one line: the file, what SQLite found, what to do)."""
    found = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    if found != ["ok"]:
        raise StoreError(
            "store %s failed its integrity check (%s)%s" % (path, "; ".join(found)[:300], DAMAGED)
        )
