"""Helpers for the console tests: a daemon in a thread, a null-modem pair of pseudo-terminals,
and a client that waits for text with a deadline (never a sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import socket
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import serial

from node.app.config import parse_config
from node.app.console_commands import ConsoleActions
from node.app.console_server import console_socket_path
from node.app.daemon import Daemon
from node.crypto._nacl import NaclSuite

DEADLINE_S = 20.0


class NullModem:
    """Two pseudo-terminals joined at their masters, like a null-modem cable: what is written to
    one slave is read from the other. `daemon_end` is the path the daemon opens, `user_end` the
    one the test opens with pyserial."""

    def __init__(self) -> None:
        self._m1, self._s1 = os.openpty()
        self._m2, self._s2 = os.openpty()
        self.daemon_end = os.ttyname(self._s1)
        self.user_end = os.ttyname(self._s2)
        # Raw, as a terminal program leaves them: a cooked pty echoes what the relay says back
        # to it (the shell then falls silent for a second; see node/console/shell.py).
        tty.setraw(self._s1)
        tty.setraw(self._s2)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._copy, daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        peers = {self._m1: self._m2, self._m2: self._m1}
        while True:
            ready, _, _ = select.select([self._m1, self._m2, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                with contextlib.suppress(OSError):
                    os.write(peers[fd], data)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(DEADLINE_S)
        for fd in (self._m1, self._s1, self._m2, self._s2, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Terminal:
    """The user's end: send bytes, wait for text (regex) with a deadline."""

    def __init__(self, read_fd: int, write: object) -> None:
        self._fd = read_fd
        self._write = write
        self.seen = b""

    def send(self, data: bytes) -> None:
        self._write(data)  # type: ignore[operator]

    def expect(self, pattern: bytes, deadline: float = DEADLINE_S) -> bytes:
        """Read until `pattern` (a regex) matches; return everything read up to its end."""
        end = time.monotonic() + deadline
        while True:
            found = re.search(pattern, self.seen, re.S)
            if found:
                got, self.seen = self.seen[: found.end()], self.seen[found.end() :]
                return got
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r within %s s; got %r" % (pattern, deadline, self.seen))
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready:
                try:
                    data = os.read(self._fd, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError("closed before %r; got %r" % (pattern, self.seen))
                self.seen += data

    def settle(self, prompt: bytes = rb"relay-console> ") -> None:
        """Read past whatever was waiting (a greeting, an earlier test's prompt): a line that
        answers with a mark, then the prompt after it."""
        self.send(b"\x03help settle-mark\r")
        self.expect(rb"help: no command 'settle-mark'.*?" + prompt)

    def command(self, line: str, prompt: bytes = rb"relay-console> ") -> str:
        """Type `line` + CR and return the answer up to the next prompt (CRLF as LF)."""
        self.send(line.encode() + b"\r")
        got = self.expect(prompt)
        return got.decode("utf-8", "replace").replace("\r\n", "\n")


class RunningDaemon:
    """A relay daemon on its own event loop in a thread."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            running = asyncio.create_task(self.daemon.run())
            started = asyncio.create_task(self.daemon.started.wait())
            await asyncio.wait([running, started], return_when=asyncio.FIRST_COMPLETED)
            if self.daemon.started.is_set():
                assert self.daemon.consoles is not None
                for port in self.daemon.consoles.serial:
                    await port.connected.wait()
            self._ready.set()
            await running

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test
            self.error = exc
        finally:
            self._ready.set()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(DEADLINE_S), "daemon did not start"
        if self.error is not None:
            raise self.error

    def call(self, fn: object) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)  # type: ignore[arg-type]

    def wait_until_no_links(self) -> None:
        """Block until the daemon has no link open (each closed link fully recorded)."""
        assert self.loop is not None

        async def no_links() -> None:
            async with asyncio.timeout(DEADLINE_S):
                await self.daemon._links_done.wait()

        asyncio.run_coroutine_threadsafe(no_links(), self.loop).result(DEADLINE_S + 1)

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.daemon.stop)
        self._thread.join(DEADLINE_S)
        assert not self._thread.is_alive(), "daemon did not stop"


def make_daemon(
    data_dir: Path, ports: list[str], extra: str = "", actions: ConsoleActions | None = None
) -> Daemon:
    text = (
        '[node]\nname = "relay-console"\n'
        '[lan]\nlisten = "127.0.0.1:0"\nzeroconf = false\n'
        "[console]\nports = [%s]\n%s" % (", ".join('"%s"' % p for p in ports), extra)
    )
    return Daemon(parse_config(text), NaclSuite(), data_dir, actions)


@contextlib.contextmanager
def running(daemon: Daemon) -> Iterator[RunningDaemon]:
    runner = RunningDaemon(daemon)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def serial_terminal(path: str) -> tuple[serial.SerialBase, Terminal]:
    port = serial.serial_for_url(path, baudrate=115200, timeout=0, write_timeout=5)
    return port, Terminal(port.fileno(), port.write)


def socket_terminal(data_dir: Path) -> tuple[socket.socket, Terminal]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(console_socket_path(data_dir)))
    return sock, Terminal(sock.fileno(), sock.sendall)
