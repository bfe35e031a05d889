"""Logging for the daemon: one structured line per record on stderr (journald keeps it).

Lines look like `level=info logger=waystation.link msg="tcp:127.0.0.1:5: closed: ok"`. Repeated
warnings about hostile peers go through `RateLimited`, so a flood costs a few lines, not a disk.
"""

from __future__ import annotations

import logging
import sys
import time


class KeyValueFormatter(logging.Formatter):
    """`level=… logger=… msg="…"`, with the message quoted and newlines escaped."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        line = 'level=%s logger=%s msg="%s"' % (record.levelname.lower(), record.name, message)
        if record.exc_info:
            line += ' exc="%s"' % self.formatException(record.exc_info).replace("\n", "\\n")
        return line


def setup_logging(level: str) -> None:
    """Send the `waystation` loggers to stderr at `level` (debug, info, warning, error)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
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
