"""Disk space as a state of the SQLite store (L1): full, or taking entries.

Theory of operation
-------------------
SQLite learns that the disk is full only when it writes, and in WAL mode it writes at COMMIT; a
COMMIT that fails with SQLITE_FULL rolls the whole transaction back (measured on a 400 KB tmpfs).
So the store does not wait for SQLite to fail: before it takes an entry it asks `DiskSpace.room`
whether the commit window, this entry included, fits in the free space with a reserve:

    free  = statvfs(data directory).f_bavail * f_frsize + free pages inside the database file
    need  = min_free_bytes + WRITE_FACTOR * (block bytes put in this window + this entry)

WRITE_FACTOR (3) is the measured write amplification rounded up (docs/performance.md, store:
every page goes to the WAL, then to the database at checkpoint). An entry that does not fit is
refused "disk-full" (the sender is told why, nothing is lost); the entries before it in the same
window still commit, so a window larger than the free space makes progress instead of failing
whole. When even an empty window has no room, or SQLite itself reports SQLITE_FULL / ENOSPC, the
store is *full*: it refuses every new entry, keeps serving reads, logs that once, and measures again
at each batch; the first batch that finds room again logs that once and is taken. The free space
is measured once per batch (one statvfs and one PRAGMA), not per entry.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("waystation.store")

DEFAULT_MIN_FREE_BYTES = 1024 * 1024
WRITE_FACTOR = 3


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's SQLITE_FULL and for an OSError ENOSPC / EDQUOT."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class DiskSpace:
    """The store's view of its medium's free space (see the module docstring).

    Args:
        directory: the directory holding the database file.
        min_free_bytes: the reserve always left free (also room for the WAL to checkpoint).
        free_pages: returns how many bytes of free pages the database file holds.
    """

    def __init__(self, directory: Path, min_free_bytes: int, free_pages: Callable[[], int]) -> None:
        self.directory = directory
        self.min_free_bytes = min_free_bytes
        self._free_pages = free_pages
        self.full = ""  # why the store takes no entries, "" while it takes them
        self._free: int | None = None  # measured at the batch's first entry

    def new_batch(self) -> None:
        """Forget the last measurement: the next `room` measures again."""
        self._free = None

    def free_bytes(self) -> int:
        """Bytes the store may still write: free on the filesystem plus free database pages."""
        try:
            stat = os.statvfs(self.directory)
        except OSError as exc:
            log.warning("cannot measure free space in %s: %s", self.directory, exc)
            return 0
        return stat.f_bavail * stat.f_frsize + self._free_pages()

    def room(self, window_bytes: int, size: int) -> str:
        """Why `size` more block bytes do not fit after `window_bytes` uncommitted ones, or ""."""
        if self._free is None:
            self._free = self.free_bytes()
        need = self.min_free_bytes + WRITE_FACTOR * (window_bytes + size)
        if self._free >= need:
            if self.full:
                self.full = ""
                log.warning(
                    "store %s: disk has room again (%d bytes free): taking entries",
                    self.directory,
                    self._free,
                )
            return ""
        why = "relay disk is full: %d bytes free, %d needed" % (self._free, need)
        if self._free < self.min_free_bytes + WRITE_FACTOR * size:
            self.failed(why)  # not even an empty window fits
        return why

    def failed(self, why: str) -> None:
        """The disk is full (measured, or SQLite said so): log it once and refuse entries."""
        if not self.full:
            log.error(
                "store %s: %s; not taking entries until space returns (reads go on)",
                self.directory,
                why,
            )
        self.full = why
        self._free = 0


class OncePer:
    """Log a warning at most once per `interval` seconds for each key (e.g. each log)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}  # key -> monotonic time of its last line

    def say(self, key: str, message: str) -> None:
        """Log `message` unless `key` was logged within the interval."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= self.interval:
            self._last[key] = now
            log.warning("%s", message)
