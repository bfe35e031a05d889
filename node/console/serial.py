"""The console on serial ports (L1: pyserial; the only module that imports `serial`).

Theory of operation
-------------------
`SerialConsole` owns one configured port (`/dev/ttyGS0`, `/dev/serial0`, or any pyserial URL).
`serve()` loops for ever: open the port with pyserial (raw mode, non-blocking), start a session
(a `Session`, in practice node/console/shell.py's ConsoleShell built by the daemon), and move
bytes: the event loop's reader callback reads what is there (no busy loop, no thread), feeds the
session and writes its answer. When the device vanishes (a USB gadget unplugged: the read fails
with EIO, or returns end of file) the port is closed, the partial line is lost, and the port is
opened again every `retry_s` seconds until it is back; a fresh session then starts. Ctrl-D or
`exit` on a serial line also starts a fresh session (there is nobody to hang up on).

Bounded everywhere: a read takes at most READ_CHUNK bytes; output waiting for a slow or absent
reader is capped at MAX_PENDING_OUTPUT bytes (the excess is dropped and counted, so a terminal
that stops reading cannot grow the daemon's memory).

`open_port` is the laptop side (`waystation console --port /dev/ttyUSB0`): the same pyserial
opening with its errors translated to LinkError here, the one place for this library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

import serial

from node.errors import LinkError

log = logging.getLogger("waystation.console")

READ_CHUNK = 4096
MAX_PENDING_OUTPUT = 64 * 1024
RETRY_S = 2.0


class Session(Protocol):
    """One console session: bytes typed in, bytes to write out."""

    def start(self) -> bytes:
        """The greeting and prompt."""

    def feed(self, data: bytes, now: float) -> bytes:
        """Typed bytes in, answer out; `now` in seconds (monotonic)."""

    @property
    def left(self) -> bool:
        """The user ended the session (Ctrl-D, exit)."""


def open_port(url: str, baud: int) -> serial.SerialBase:
    """Open `url` (a device path or pyserial URL) raw and non-blocking.

    Raises:
        LinkError: the port cannot be opened; `cause` is the pyserial or OS error.
    """
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=0, write_timeout=0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkError("%s: %s" % (url, exc), type(exc).__name__) from exc


class SerialConsole:
    """Serves console sessions on one serial port (see the module docstring).

    Args:
        url: the device path or pyserial URL.
        baud: line speed.
        new_session: builds a fresh session.
        count: the daemon's counter (`console.*` names).
        retry_s: seconds between attempts to open a missing port.
    """

    def __init__(
        self,
        url: str,
        baud: int,
        new_session: Callable[[], Session],
        count: Callable[[str], None] = lambda _name: None,
        retry_s: float = RETRY_S,
    ) -> None:
        self.url = url
        self.baud = baud
        self._new_session = new_session
        self._count = count
        self.retry_s = retry_s
        self.connected = asyncio.Event()  # the port is open (tests wait on it)
        self.opened = 0  # times the port was opened
        self._pending = bytearray()
        self._fd = -1
        self._gone = asyncio.Event()

    @property
    def state(self) -> str:
        """`open` or `waiting` (for `status`)."""
        return "open" if self.connected.is_set() else "waiting"

    async def serve(self) -> None:
        """Serve until cancelled, reopening the port whenever it vanishes."""
        missing_logged = False
        while True:
            try:
                port = open_port(self.url, self.baud)
            except LinkError as exc:
                if not missing_logged:
                    log.warning("console port %s unavailable (retrying): %s", self.url, exc)
                    missing_logged = True
                self._count("console.port_unavailable")
                await asyncio.sleep(self.retry_s)
                continue
            missing_logged = False
            try:
                await self._serve_open(port)
            finally:
                self._close(port)
            log.info("console port %s went away; waiting for it", self.url)
            await asyncio.sleep(self.retry_s)

    async def _serve_open(self, port: serial.SerialBase) -> None:
        loop = asyncio.get_running_loop()
        self._fd = port.fileno()
        self._pending.clear()
        self._gone.clear()
        self.opened += 1
        session = self._new_session()
        self._write(session.start())
        log.info("console on %s at %d baud", self.url, self.baud)

        def readable() -> None:
            nonlocal session
            try:
                data = os.read(self._fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._gone.set()
                loop.remove_reader(self._fd)
                return
            try:
                self._write(session.feed(data, time.monotonic()))
                if session.left:
                    session = self._new_session()
                    self._write(session.start())
            except Exception:  # a bug in a session costs that session, never the daemon
                self._count("console.errors")
                log.exception("console session on %s failed; starting a new one", self.url)
                session = self._new_session()
                self._write(session.start())

        loop.add_reader(self._fd, readable)
        self.connected.set()
        try:
            await self._gone.wait()
        finally:
            self.connected.clear()
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(self._fd)
                loop.remove_writer(self._fd)

    def _write(self, data: bytes) -> None:
        room = MAX_PENDING_OUTPUT - len(self._pending)
        if len(data) > room:
            self._count("console.output_dropped")
            data = data[: max(0, room)]
        self._pending += data
        self._flush()

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            try:
                written = os.write(self._fd, self._pending)
            except BlockingIOError:
                loop.add_writer(self._fd, self._flush)
                return
            except OSError:
                self._pending.clear()
                self._gone.set()
                return
            del self._pending[:written]
        with contextlib.suppress(ValueError, OSError):
            loop.remove_writer(self._fd)

    def _close(self, port: serial.SerialBase) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()
        self._fd = -1
