"""SavedState: a member's GroupStates and their history rows in member.sqlite3, and the migration
from the JSON files that came before it.

Theory of operation. MemberClient works on GroupState objects; this module loads them from
node.member.memberdb and saves them back, each save one transaction: the group row (bounded) plus
this run's new rows (entries handled, messages opened, message keys read, log marks). What the
client needs to know about history it asks for in small pieces:

* fresh(state, address): the entries of a log not handled yet. When the store's key set of the
  log still has the fingerprint recorded after the last complete pass ("clean"), there are none
  and nothing is read; otherwise the handled digests of that log are compared with the key set.
* mark_clean(state, address): record the current fingerprint (and the highest Lamport time) once
  every entry of the log is handled; an entry this device appends to a clean log is handled at
  once, so the log stays clean and a send reads nothing of the past.
* recall_read_keys(state, ...): the read keys of the messages about to be offered to the ratchet,
  so that a replayed message is still recognised without loading every key ever read.

Legacy files (account.json and groups/<id>.json, mode 0600) are read once, checked (a damaged file
is a MemberError naming it), copied into a new member.sqlite3 in one transaction and renamed to
*.migrated; the group files' `done` CIDs are matched to their log through the store's key sets.
"""

import json
from pathlib import Path

from node.crypto.api import Suite
from node.member.account import Account
from node.member.errors import MemberError
from node.member.group_state import GroupState, MessageRecord
from node.member.memberdb import FILENAME, MemberDB
from node.member.store_files import parse_json, read_json, to_json_value
from node.sync.cid import CID
from node.sync.entry import Entry
from node.sync.store import Store

ACCOUNT_FILE = "account.json"  # before member.sqlite3
GROUPS_DIR = "groups"  # before member.sqlite3
MIGRATED = ".migrated"
STORE_LOST = "store_lost"


def has_account(data_dir: Path) -> bool:
    """True when `data_dir` holds a member account (member.sqlite3, or the JSON files before it)."""
    return (data_dir / FILENAME).exists() or (data_dir / ACCOUNT_FILE).exists()


class LogMark:
    """What member.sqlite3 says about one log: row id, fingerprint when clean, top time."""

    __slots__ = ("fingerprint", "row", "top")

    def __init__(self, row: int, fingerprint: bytes | None, top: int) -> None:
        self.row = row
        self.fingerprint = fingerprint
        self.top = top


class SavedState:
    """The member's saved state (see the module text).

    Args:
        suite: the crypto suite.
        store: the log store (for key sets, and the legacy migration).
        data_dir: the member data directory.

    Raises:
        MemberError: no account, or a damaged file (named).
    """

    def __init__(self, suite: Suite, store: Store, data_dir: Path) -> None:
        self.suite = suite
        self.store = store
        self.data_dir = data_dir
        self.path = data_dir / FILENAME
        self.marks: dict[str, LogMark] = {}
        if not self.path.exists() and (data_dir / ACCOUNT_FILE).exists():
            self._migrate()
        if not self.path.exists():
            raise MemberError(
                "no member account in %s: run `waystation peer init --data %s --name NAME` first"
                % (data_dir, data_dir)
            )
        self.db = MemberDB(self.path)
        try:
            self.account, self.groups = self._load()
            with self.db.transaction():
                for state in self.groups.values():
                    for address in (state.metadata_address, state.messages_address):
                        row, fingerprint, top = self.db.log(address, state.group_id)
                        self.marks[address] = LogMark(row, fingerprint, top)
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def create(cls, suite: Suite, store: Store, data_dir: Path, account: Account) -> "SavedState":
        """A new member.sqlite3 holding `account`.

        Raises:
            MemberError: an account already exists in `data_dir`.
        """
        if has_account(data_dir):
            raise MemberError("%s already holds a member account" % data_dir)
        db = MemberDB(data_dir / FILENAME, create=True)
        try:
            with db.transaction():
                db.put_account(account.to_dict())
        finally:
            db.close()
        return cls(suite, store, data_dir)

    def close(self) -> None:
        """Close member.sqlite3."""
        self.db.close()

    def _load(self) -> tuple[Account, dict[str, GroupState]]:
        data = self.db.account()
        if data is None:
            raise MemberError("%s holds no account: it is damaged or was not finished" % self.path)
        try:
            account = Account.from_dict(self.suite, data)
        except MemberError as exc:
            raise self.db.damaged(str(exc)) from None
        groups = {}
        for group_id, text in self.db.groups():
            source = "%s (group %s)" % (self.path, group_id[:16])
            try:
                state = GroupState.from_dict(self.suite, parse_json(text, source))
            except MemberError as exc:
                raise self.db.damaged("group %s: %s" % (group_id[:16], str(exc))) from None
            if state.group_id != group_id:
                raise self.db.damaged("group %s holds group %s" % (group_id[:16], state.group_id))
            groups[group_id] = state
        return account, groups

    # ---- saving -------------------------------------------------------------------------------

    def add_group(self, state: GroupState) -> None:
        """Save a new group and create its log rows."""
        with self.db.transaction():
            for address in (state.metadata_address, state.messages_address):
                row, fingerprint, top = self.db.log(address, state.group_id)
                self.marks[address] = LogMark(row, fingerprint, top)
            self._write(self.db, state)

    def save(self, state: GroupState) -> None:
        """Save a group's state and this run's new rows, in one transaction."""
        with self.db.transaction():
            self._write(self.db, state)

    def _write(self, db: MemberDB, state: GroupState) -> None:
        db.put_group(state.group_id, json.dumps(to_json_value(state.to_dict()), sort_keys=True))
        for address, digests in state.new_done.items():
            db.add_handled(self.marks[address].row, digests)
        group_id = state.group_id
        db.add_messages(
            (group_id, m.clock_time, m.cid, m.device_pk, m.counter, m.type, m.sent_date, m.body)
            for m in state.new_messages
        )
        read_keys = state.ratchet.read_keys
        db.add_read_keys(
            (cid, group_id, device, counter, key)
            for cid, (device, counter, key) in read_keys.items()
            if cid not in state.saved_read_keys
        )
        for address in (state.metadata_address, state.messages_address):
            mark = self.marks[address]
            db.set_log(mark.row, mark.fingerprint, mark.top)
        state.new_done.clear()
        state.new_messages.clear()
        state.saved_read_keys.update(read_keys)

    # ---- history, in small pieces -------------------------------------------------------------

    def is_clean(self, address: str) -> bool:
        """True when every entry of the log in the store has been handled."""
        keyset = self.store.keyset(address)
        fingerprint = self.marks[address].fingerprint
        return fingerprint is not None and fingerprint == keyset.fingerprint(0, len(keyset))

    def fresh(self, state: GroupState, address: str, look_anyway: bool) -> list[Entry]:
        """The entries of a log not handled yet (and not waiting in the ratchet queue), in log
        order; none without reading anything when the log is clean and not `look_anyway`."""
        if not look_anyway and self.is_clean(address):
            return []
        mark = self.marks[address]
        mark.fingerprint = None
        done = self.db.handled(mark.row)
        done.update(state.new_done.get(address, ()))
        if address == state.messages_address:
            done.update(CID.from_bytes(cid).digest for cid, _pk, _n in state.ratchet.queued())
        keyset = self.store.keyset(address)
        keys = [key for key in keyset.keys_between(0, len(keyset)) if key[1] not in done]
        entries = self.store.entries_by_keys(address, keys)
        entries.sort(key=Entry.sort_key)
        return entries

    def mark_clean(self, address: str) -> None:
        """Every entry of the log is handled: record its fingerprint and top time."""
        keyset = self.store.keyset(address)
        mark = self.marks[address]
        mark.fingerprint = keyset.fingerprint(0, len(keyset))
        if len(keyset):
            mark.top = max(mark.top, keyset.key_at(len(keyset) - 1)[0])

    def missing(self) -> list[tuple[str, int, int]]:
        """(address, top time in the store, top time this device saw) of every log whose store
        copy lost entries this device had (the store was deleted, damaged or replaced)."""
        out = []
        for address in sorted(self.marks):
            keyset = self.store.keyset(address)
            have = keyset.key_at(len(keyset) - 1)[0] if len(keyset) else 0
            if have < self.marks[address].top:
                out.append((address, have, self.marks[address].top))
        return out

    def recall_read_keys(
        self, state: GroupState, cids: list[bytes], pairs: list[tuple[bytes, int]]
    ) -> None:
        """Put the saved read keys of these CIDs and (device, counter) pairs into the ratchet."""
        rows = self.db.read_keys(state.group_id, cids, pairs)
        for cid, _group, device, counter, key in rows:
            state.ratchet.read_keys[cid] = (device, counter, key)
            state.ratchet.read_by_counter[(device, counter)] = cid
            state.saved_read_keys.add(cid)

    def messages(self, state: GroupState, last: int | None) -> list[MessageRecord]:
        """A group's saved messages in log order (only the `last` newest when given)."""
        return [
            MessageRecord(cid, clock_time, device, counter, kind, sent, body)
            for _g, clock_time, cid, device, counter, kind, sent, body in self.db.messages(
                state.group_id, last
            )
        ]

    def store_lost(self) -> bool:
        """True while the log store must be recovered from a relay before this device writes."""
        return self.db.meta(STORE_LOST) != 0

    def set_store_lost(self, lost: bool) -> None:
        """Record that the log store was lost (or recovered)."""
        with self.db.transaction():
            self.db.set_meta(STORE_LOST, 1 if lost else 0)

    # ---- the JSON files before member.sqlite3 -------------------------------------------------

    def _migrate(self) -> None:
        """Copy account.json and groups/*.json into a new member.sqlite3 (see the module text)."""
        suite = self.suite
        account_path = self.data_dir / ACCOUNT_FILE
        try:
            account = Account.from_dict(suite, read_json(account_path))
        except MemberError as exc:
            raise MemberError("%s: %s" % (account_path, str(exc))) from None
        states = []
        groups_dir = self.data_dir / GROUPS_DIR
        for path in sorted(groups_dir.glob("*.json")) if groups_dir.is_dir() else []:
            try:
                state = GroupState.from_dict(suite, read_json(path))
            except MemberError as exc:
                message = str(exc)
                text = message if str(path) in message else "%s: %s" % (path, message)
                raise MemberError(text) from None
            for address in (state.metadata_address, state.messages_address):
                self.store.add_log(address, state.group.sign_pub, pinned=True)
            states.append(state)
        self.store.commit()
        db = MemberDB(self.path, create=True)
        try:
            with db.transaction():
                db.put_account(account.to_dict())
                for state in states:
                    self._migrate_group(db, state)
        except BaseException:
            db.close()
            self.path.unlink(missing_ok=True)
            raise
        db.close()
        account_path.rename(account_path.with_name(ACCOUNT_FILE + MIGRATED))
        if groups_dir.is_dir():
            groups_dir.rename(groups_dir.with_name(GROUPS_DIR + MIGRATED))

    def _migrate_group(self, db: MemberDB, state: GroupState) -> None:
        done = {CID.from_bytes(cid).digest for cid in state.legacy_done}
        for address in (state.metadata_address, state.messages_address):
            row, _fingerprint, top = db.log(address, state.group_id)
            keyset = self.store.keyset(address)
            keys = keyset.keys_between(0, len(keyset))
            state.new_done[address] = {digest for _t, digest in keys if digest in done}
            # no fingerprint: the first run looks at every entry once
            self.marks[address] = LogMark(row, None, max([top] + [t for t, _d in keys[-1:]]))
        self._write(db, state)
