"""The daemon's claim on its data directory: one daemon per directory, checked before opening.

At start the daemon claims the directory (`claim_data_dir`) before it reads the node key or opens
the store, and holds the claim until it stops. Each check ends in one StoreError line that names
the path and what to do, instead of a traceback or SQLite's "database is locked":

* the directory is read-only (or not writable by this user);
* another daemon holds it: an exclusive `flock` on `waystation.lock`, which also holds that
  daemon's pid (the kernel drops the lock when the process dies, kill -9 included, so a stale
  file never locks anyone out);
* the store file is empty (0 bytes) while the node key exists: the store was lost or truncated
  (a node that never stored anything has no store file or a non-empty one).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from node.app.identity import NODE_KEY_FILE
from node.errors import StoreError
from node.store.sqlite import FILENAME

LOCK_FILE = "waystation.lock"


class DataDirClaim:
    """An exclusive claim on a data directory; `release()` (or process exit) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the directory up (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def claim_data_dir(data_dir: Path) -> DataDirClaim:
    """Check the data directory and claim it for this process.

    Raises:
        StoreError: read-only, used by another daemon (with its pid), or an empty store file
            next to an existing node key.
    """
    lock_path = data_dir / LOCK_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the node key does
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StoreError(
                "data directory %s is read-only (%s): remount it read-write or give the daemon"
                " a writable data directory" % (data_dir, exc.strerror)
            ) from exc
        raise StoreError("cannot use data directory %s: %s" % (data_dir, exc.strerror)) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _holder(fd)
        os.close(fd)
        raise StoreError(
            "data directory %s is in use by another waystation daemon (pid %s): stop that one"
            " first, or give this one another data directory" % (data_dir, pid)
        ) from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        store = data_dir / FILENAME
        if (data_dir / NODE_KEY_FILE).exists() and store.exists() and store.stat().st_size == 0:
            raise StoreError(
                "store %s is empty (0 bytes) but the node key %s exists: the store was lost or"
                " truncated; restore it from a backup, or delete it to start with an empty store"
                " (peers send their entries again)" % (store, data_dir / NODE_KEY_FILE)
            )
    except OSError as exc:
        os.close(fd)
        raise StoreError("cannot use data directory %s: %s" % (data_dir, exc.strerror)) from exc
    except StoreError:
        os.close(fd)
        raise
    return DataDirClaim(data_dir, fd)
