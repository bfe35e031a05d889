"""Logging for the daemon: one structured line per record on stderr (journald keeps it).

Lines look like `time=2026-12-04T18:00:00.123Z level=info logger=waystation.link msg="…"`; under
journald (systemd sets `$JOURNAL_STREAM` for a service whose stderr goes to the journal) the
`time=` field is left out, because the journal stamps every line itself. Repeated
warnings about hostile peers go through `RateLimited`, so a flood costs a few lines, not a disk.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping


class KeyValueFormatter(logging.Formatter):
    """`[time=…] level=… logger=… msg="…"`, with the message quoted and newlines escaped.

    Args:
        timestamps: start each line with `time=` (UTC, milliseconds, ISO 8601).
    """

    def __init__(self, timestamps: bool = False) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        line = 'level=%s logger=%s msg="%s"' % (record.levelname.lower(), record.name, message)
        if self.timestamps:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            line = "time=%s.%03dZ %s" % (stamp, int(record.msecs), line)
        if record.exc_info:
            line += ' exc="%s"' % self.formatException(record.exc_info).replace("\n", "\\n")
        return line


def under_journald(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr goes to the journal (`$JOURNAL_STREAM` names stderr's device and inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        found = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # stderr replaced or closed
        return False
    return (found.st_dev, found.st_ino) == (int(device), int(inode))


def setup_logging(level: str, timestamps: bool | None = None) -> None:
    """Send the `waystation` loggers to stderr at `level` (debug, info, warning, error).

    Args:
        level: the least severe level logged.
        timestamps: stamp each line; by default, unless stderr goes to journald.
    """
    handler = logging.StreamHandler(sys.stderr)
    stamp = not under_journald() if timestamps is None else timestamps
    handler.setFormatter(KeyValueFormatter(timestamps=stamp))
    root = logging.getLogger("waystation")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # A peer that misbehaves costs a few lines, not a disk: per message template, at most 30
    # lines a minute from the link logger.
    link = logging.getLogger("waystation.link")
    link.filters[:] = [RateLimited()]
    # One line per link ending is useful, but not 100 a second from a connection flood: status.json
    # counts every link anyway.
    logging.getLogger("waystation.daemon").filters[:] = [RateLimited(burst=120)]


class RateLimited(logging.Filter):
    """Let at most `burst` records per `period` seconds through for each logger+message template."""

    def __init__(self, burst: int = 30, period: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.period = period
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.period:
            start, count = now, 0
        count += 1
        if len(self._windows) > 1000:
            self._windows.clear()
        self._windows[key] = (start, count)
        return count <= self.burst
