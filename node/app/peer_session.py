"""An opened member data directory for `waystation peer`: one command at a time, a store that
opens, and a clear refusal of a relay's directory.

PeerSession takes an flock on DIR/peer.lock (a second command is told "another waystation peer
command is using DIR" instead of meeting SQLite's "database is locked"), opens DIR/store.sqlite3
(moving a damaged one aside to store.sqlite3.damaged-N: the client then recovers its log from a
relay on the next sync) and the MemberClient over DIR/member.sqlite3.
"""

import fcntl
import os
from pathlib import Path
from types import TracebackType

from node.crypto._nacl import NaclSuite
from node.errors import StoreError
from node.member.client import MemberClient, is_initialised
from node.member.errors import MemberError
from node.member.memberdb import FILENAME as MEMBER_FILE
from node.member.saved import ACCOUNT_FILE
from node.store.sqlite import FILENAME as STORE_FILE
from node.store.sqlite import SQLiteStore

LOCK_FILE = "peer.lock"
RELAY_MARKERS = ("node.key", "waystation.lock", "status.json")  # a relay data directory
MEMBER_MARKERS = (MEMBER_FILE, ACCOUNT_FILE)  # what a member's data directory holds


def relay_dir_marker(data_dir: Path) -> str | None:
    """The relay file in `data_dir` if it is a relay's data directory (and no member's)."""
    if any((data_dir / name).exists() for name in MEMBER_MARKERS):
        return None
    for name in RELAY_MARKERS:
        if (data_dir / name).exists():
            return name
    return None


def member_dir_marker(data_dir: Path) -> str | None:
    """The member file in `data_dir` if it is a member's data directory: `waystation run` refuses
    such a directory (the daemon's exclusive store lock would lock the member out)."""
    for name in MEMBER_MARKERS:
        if (data_dir / name).exists():
            return name
    return None


class DirectoryLock:
    """One `waystation peer` command at a time per data directory (flock on DIR/peer.lock).

    Raises:
        MemberError: another command holds it ("another waystation peer command is using DIR").
    """

    def __init__(self, data_dir: Path) -> None:
        path = data_dir / LOCK_FILE
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise MemberError("cannot open %s: %s" % (path, exc.strerror)) from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise MemberError(
                "another waystation peer command is using %s: wait until it ends" % data_dir
            ) from None

    def release(self) -> None:
        """Let the next command in."""
        os.close(self._fd)


def _damaged_store(exc: StoreError) -> bool:
    """A store that cannot be opened because of its content (not a lock, not a newer version)."""
    text = str(exc)
    return "newer" not in text and "locked" not in text


class PeerSession:
    """An opened member data directory: suite, store and client. Close it (or use `with`).

    A store.sqlite3 that is damaged is moved to store.sqlite3.damaged-N and replaced by an empty
    one; the client then says, until a sync recovers its log, that it must sync before writing
    (`notice`).
    """

    def __init__(self, data_dir: Path, create_name: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.suite = NaclSuite()
        self.notice = ""
        marker = relay_dir_marker(self.data_dir)
        if marker is not None:
            raise MemberError(
                "%s is a relay's data directory (it holds %s): give the member a directory of its"
                " own with --data" % (self.data_dir, marker)
            )
        if create_name is None and not is_initialised(self.data_dir):
            raise MemberError(
                "no member account in %s: run `waystation peer init --data %s --name NAME` first"
                % (self.data_dir, self.data_dir)
            )
        if create_name is not None:
            if is_initialised(self.data_dir):
                raise MemberError("%s already holds a member account" % self.data_dir)
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise MemberError("cannot create %s: %s" % (self.data_dir, exc)) from exc
        self._lock = DirectoryLock(self.data_dir)
        try:
            self.store, moved = self._open_store()
            try:
                if create_name is not None:
                    self.client = MemberClient.init(
                        self.suite, self.store, self.data_dir, create_name
                    )
                else:
                    self.client = MemberClient(self.suite, self.store, self.data_dir)
            except BaseException:
                self.store.close()
                raise
            if moved:
                self.client.mark_store_lost()
                self.notice = "the log store was damaged and moved to %s; " % moved
        except BaseException:
            self._lock.release()
            raise

    def _open_store(self) -> tuple[SQLiteStore, str]:
        try:
            return SQLiteStore.open_in(self.data_dir, self.suite.ed25519_verify), ""
        except StoreError as exc:
            if not _damaged_store(exc) or not is_initialised(self.data_dir):
                raise
        number = 1
        while (self.data_dir / ("%s.damaged-%d" % (STORE_FILE, number))).exists():
            number += 1
        moved = self.data_dir / ("%s.damaged-%d" % (STORE_FILE, number))
        for suffix in ("", "-journal", "-wal", "-shm"):
            path = self.data_dir / (STORE_FILE + suffix)
            if path.exists():
                path.rename(moved.with_name(moved.name + suffix))
        return SQLiteStore.open_in(self.data_dir, self.suite.ed25519_verify), str(moved)

    def close(self) -> None:
        """Close the client and the store (everything is committed), and release the lock."""
        try:
            self.client.close()
            self.store.close()
        finally:
            self._lock.release()

    def __enter__(self) -> "PeerSession":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
