"""A member device's state in one SQLite file, DATA/member.sqlite3 (stdlib sqlite3; CPython only).

Theory of operation. Before this file the member rewrote a JSON file per group on every command,
so a send cost time and memory in proportion to the group's history. Here everything that grows
with history is a row, touched only when it changes:

    account     one row: display name and the three account keys (node.member.account)
    groups      one row per group: GroupState.to_dict() as JSON (bounded: keys, ratchet window
                and queue, devices, names; node.member.group_state)
    logs        one row per log of a group: the fingerprint of the local store's key set when
                every entry of it had been handled (a command whose store still has that
                fingerprint has nothing new to look at), and `top`, the highest Lamport time
                this device has seen or written in it (a store that lost entries is noticed)
    handled     (log, digest) of every entry handled (never looked at again)
    messages    the opened messages of each group, in log order (group, clock time, CID)
    read_keys   the key of every message read, by CID (weshnet keeps them too), found by CID or
                by (group, device, counter) when an entry shows up again
    meta        named integers: `store_lost` (1 while the log store must be recovered from a relay)

Every change a command makes is one transaction (`with db.transaction():`), so a crash leaves the
state before or after it. The file is created mode 0600. The member layer may use sqlite3 because
it is the standard library and the member side runs on CPython only (DESIGN.md §5); nothing in L0
depends on this module.

Everything read back is checked (types, sizes): a damaged file or row is a MemberError naming the
file and what was wrong, never a traceback.
"""

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from node.member.errors import MemberError

FILENAME = "member.sqlite3"
APPLICATION_ID = 0x5753_4D42  # "WSMB"
SCHEMA = (
    "CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,"
    " account_sk BLOB NOT NULL, account_proof_sk BLOB NOT NULL, device_sk BLOB NOT NULL)",
    "CREATE TABLE groups (group_id TEXT PRIMARY KEY, state TEXT NOT NULL)",
    "CREATE TABLE logs (id INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE,"
    " group_id TEXT NOT NULL, fingerprint BLOB, top INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE handled (log INTEGER NOT NULL, digest BLOB NOT NULL,"
    " PRIMARY KEY (log, digest)) WITHOUT ROWID",
    "CREATE TABLE messages (group_id TEXT NOT NULL, clock_time INTEGER NOT NULL,"
    " cid TEXT NOT NULL, device BLOB NOT NULL, counter INTEGER NOT NULL, type INTEGER NOT NULL,"
    " sent_date INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (group_id, clock_time, cid))"
    " WITHOUT ROWID",
    "CREATE TABLE read_keys (cid BLOB PRIMARY KEY, group_id TEXT NOT NULL, device BLOB NOT NULL,"
    " counter INTEGER NOT NULL, message_key BLOB NOT NULL)",
    "CREATE INDEX read_keys_by_counter ON read_keys (group_id, device, counter)",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
SCHEMA_VERSION = 1

MessageRow = tuple[str, int, str, bytes, int, int, int, str]
ReadKeyRow = tuple[bytes, str, bytes, int, bytes]


class MemberDB:
    """The member state file (see the module text).

    Args:
        path: the database file; created (mode 0600) when `create` is true and it is missing.
        create: create the file if it does not exist.

    Raises:
        MemberError: the file is missing (and create is false), cannot be opened, is not a
            Waystation member database, is of a newer schema, or is damaged.
    """

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise MemberError("%s does not exist" % self.path)
        if create and not self.path.exists():
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                raise MemberError("cannot create %s: %s" % (self.path, exc.strerror)) from exc
        try:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=0.0)
        except sqlite3.Error as exc:
            raise self.damaged("cannot open it (%s)" % exc) from None
        try:
            self._prepare()
        except sqlite3.Error as exc:
            self._conn.close()
            raise self.damaged(str(exc)) from None
        except MemberError:
            self._conn.close()
            raise

    def damaged(self, what: str) -> MemberError:
        """The error for a damaged file or row: names the file and what was wrong."""
        return MemberError(
            "%s is damaged: %s (move it away to start over; the group logs can be synced again"
            " from a relay, the keys in it cannot)" % (self.path, what)
        )

    def _prepare(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and app_id == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise self.damaged("not a Waystation member database (unknown tables)")
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute("PRAGMA application_id = %d" % APPLICATION_ID)
            conn.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
            conn.execute("COMMIT")
            return
        if app_id != APPLICATION_ID:
            raise self.damaged("not a Waystation member database (application id %#x)" % app_id)
        if version > SCHEMA_VERSION:
            raise MemberError(
                "%s has schema version %d, newer than this program's %d: upgrade waystation"
                % (self.path, version, SCHEMA_VERSION)
            )
        if version != SCHEMA_VERSION:
            raise self.damaged("schema version %d" % version)
        # No quick_check here: it reads the whole file, so opening would cost as much as the
        # history. A damaged page shows up as an sqlite3 error where it is read (damaged()).

    def close(self) -> None:
        """Close the file (everything is committed by then)."""
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change: committed (durably) when the block ends, rolled back on error."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise MemberError("cannot write %s: %s" % (self.path, exc)) from None
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise MemberError("cannot write %s: %s" % (self.path, exc)) from None

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self.damaged(str(exc)) from None

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        try:
            self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            raise MemberError("cannot write %s: %s" % (self.path, exc)) from None

    def _write_many(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise MemberError("cannot write %s: %s" % (self.path, exc)) from None

    # ---- account and groups -------------------------------------------------------------------

    def account(self) -> dict[str, Any] | None:
        """The account row as Account.from_dict takes it, or None if there is none."""
        rows = self._rows(
            "SELECT name, account_sk, account_proof_sk, device_sk FROM account WHERE id = 1"
        )
        if not rows:
            return None
        name, account_sk, proof_sk, device_sk = rows[0]
        return {
            "version": 1,
            "name": name,
            "account_sk": account_sk,
            "account_proof_sk": proof_sk,
            "device_sk": device_sk,
        }

    def put_account(self, data: dict[str, Any]) -> None:
        """Write the account row (inside a transaction)."""
        self._write(
            "INSERT OR REPLACE INTO account VALUES (1, ?, ?, ?, ?)",
            (data["name"], data["account_sk"], data["account_proof_sk"], data["device_sk"]),
        )

    def groups(self) -> list[tuple[str, str]]:
        """(group id, state JSON) of every group, by id."""
        out = []
        for group_id, state in self._rows("SELECT group_id, state FROM groups ORDER BY group_id"):
            if not isinstance(group_id, str) or not isinstance(state, str):
                raise self.damaged("a groups row holds %s, %s" % (_kind(group_id), _kind(state)))
            out.append((group_id, state))
        return out

    def put_group(self, group_id: str, state_json: str) -> None:
        """Write one group's state (inside a transaction)."""
        self._write("INSERT OR REPLACE INTO groups VALUES (?, ?)", (group_id, state_json))

    # ---- logs and handled entries -------------------------------------------------------------

    def log(self, address: str, group_id: str) -> tuple[int, bytes | None, int]:
        """(row id, fingerprint when last fully handled or None, top Lamport time) of a log;
        the row is created if missing (inside a transaction)."""
        rows = self._rows("SELECT id, fingerprint, top FROM logs WHERE address = ?", (address,))
        if not rows:
            self._write("INSERT INTO logs (address, group_id) VALUES (?, ?)", (address, group_id))
            rows = self._rows("SELECT id, fingerprint, top FROM logs WHERE address = ?", (address,))
        row, fingerprint, top = rows[0]
        if not isinstance(row, int) or not isinstance(top, int) or top < 0:
            raise self.damaged("the logs row of %s holds %r, %r" % (address, row, top))
        if fingerprint is not None and not isinstance(fingerprint, bytes):
            raise self.damaged("the fingerprint of %s is %s" % (address, _kind(fingerprint)))
        return row, fingerprint, top

    def set_log(self, row: int, fingerprint: bytes | None, top: int) -> None:
        """Record a log's fingerprint (None: look at every entry next time) and top time."""
        self._write(
            "UPDATE logs SET fingerprint = ?, top = ? WHERE id = ?", (fingerprint, top, row)
        )

    def handled(self, log: int) -> set[bytes]:
        """Digests of the handled entries of one log."""
        out = set()
        for (digest,) in self._rows("SELECT digest FROM handled WHERE log = ?", (log,)):
            if not isinstance(digest, bytes):
                raise self.damaged("a handled entry's digest is %s" % _kind(digest))
            out.add(digest)
        return out

    def add_handled(self, log: int, digests: Iterable[bytes]) -> None:
        """Mark entries of one log handled (inside a transaction)."""
        self._write_many("INSERT OR IGNORE INTO handled VALUES (?, ?)", ((log, d) for d in digests))

    # ---- messages and read keys ---------------------------------------------------------------

    def add_messages(self, rows: Iterable[MessageRow]) -> None:
        """Store opened messages: (group, clock time, cid, device, counter, type, sent, body)."""
        self._write_many("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def messages(self, group_id: str, last: int | None = None) -> list[MessageRow]:
        """A group's messages in log order; only the `last` newest when given."""
        if last is None:
            rows = self._rows(
                "SELECT * FROM messages WHERE group_id = ? ORDER BY clock_time, cid", (group_id,)
            )
        else:
            rows = self._rows(
                "SELECT * FROM (SELECT * FROM messages WHERE group_id = ?"
                " ORDER BY clock_time DESC, cid DESC LIMIT ?) ORDER BY clock_time, cid",
                (group_id, max(0, last)),
            )
        kinds = (str, int, str, bytes, int, int, int, str)
        for row in rows:
            for value, kind in zip(row, kinds, strict=True):
                if not isinstance(value, kind):
                    raise self.damaged(
                        "a message row of group %s holds %s where %s belongs"
                        % (group_id[:16], _kind(value), kind.__name__)
                    )
        return [tuple(row) for row in rows]

    def read_keys(
        self, group_id: str, cids: list[bytes], pairs: list[tuple[bytes, int]]
    ) -> list[ReadKeyRow]:
        """The saved read keys of these CIDs, and of these (device, counter) pairs."""
        found: dict[bytes, tuple[Any, ...]] = {}
        for cid in cids:
            for row in self._rows("SELECT * FROM read_keys WHERE cid = ?", (cid,)):
                found[row[0]] = row
        for device, counter in pairs:
            for row in self._rows(
                "SELECT * FROM read_keys WHERE group_id = ? AND device = ? AND counter = ?",
                (group_id, device, counter),
            ):
                found[row[0]] = row
        out = []
        kinds = (bytes, str, bytes, int, bytes)
        for row in found.values():
            if not all(isinstance(v, k) for v, k in zip(row, kinds, strict=True)):
                raise self.damaged("a read_keys row of group %s is malformed" % group_id[:16])
            out.append((row[0], row[1], row[2], row[3], row[4]))
        return out

    def add_read_keys(self, rows: Iterable[ReadKeyRow]) -> None:
        """Store read keys: (cid, group, device, counter, message key)."""
        self._write_many("INSERT OR IGNORE INTO read_keys VALUES (?, ?, ?, ?, ?)", rows)

    # ---- meta ---------------------------------------------------------------------------------

    def meta(self, name: str) -> int:
        """A named integer (0 when unset)."""
        rows = self._rows("SELECT value FROM meta WHERE name = ?", (name,))
        if not rows:
            return 0
        value = rows[0][0]
        if not isinstance(value, int):
            raise self.damaged("meta %s is %s" % (name, _kind(value)))
        return value

    def set_meta(self, name: str, value: int) -> None:
        """Set a named integer (inside a transaction)."""
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))


def _kind(value: object) -> str:
    return type(value).__name__
