"""The console's front ends in the daemon: DATA/console.sock and one SerialConsole per port.

Theory of operation
-------------------
Both front ends move bytes only: each connection or serial session gets its own ConsoleShell
(node/console/shell.py), whose `ask` is the control endpoint's own `answer` (so every command
runs the one control handler a script reaches through DATA/control.sock). `waystation console`
attaches to DATA/console.sock (mode 0600, the same uid check as the control socket) and is a
dumb pipe between the user's raw-mode terminal and the shell.

A socket session ends when the user leaves (Ctrl-D, `exit`), when the client disconnects, or
after IDLE_DEADLINE_S without a byte; at most MAX_CLIENTS are served at once. Output is written
with a deadline, so a client that stops reading is cut.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from node.app.console_commands import console_texts, pin_checker
from node.app.control import ControlServer, OwnerSocket, encode_reply
from node.console.serial import SerialConsole
from node.console.shell import ConsoleShell, PinGate

log = logging.getLogger("waystation.console")

SOCKET_NAME = "console.sock"
MAX_CLIENTS = 4
IDLE_DEADLINE_S = 3600.0
WRITE_DEADLINE_S = 10.0
READ_CHUNK = 4096


def console_socket_path(data_dir: Path) -> Path:
    """Where the daemon of `data_dir` serves `waystation console`."""
    return data_dir / SOCKET_NAME


def shell_factory(
    name: str, control: ControlServer, pin_hash: str
) -> Callable[[], Callable[[], ConsoleShell]]:
    """Per port, a maker of console sessions that ask `control` (one path for every command).

    The sessions of one port share its PinGate: a wrong PIN's delay outlives the session.
    """
    check = pin_checker(pin_hash)

    def ask(cmd: str, args: dict[str, object]) -> dict[str, object]:
        return control.answer(encode_reply({"cmd": cmd, "args": args, "id": None}))

    def dumps(value: object) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    texts = console_texts()

    def for_port() -> Callable[[], ConsoleShell]:
        gate = PinGate(check) if check is not None else None
        return lambda: ConsoleShell(name, ask, dumps, texts=texts, gate=gate)

    return for_port


class Consoles:
    """The console socket and the serial ports of one daemon.

    Args:
        data_dir: where console.sock goes.
        ports: serial devices (`console.ports`).
        baud: their line speed.
        port_sessions: per port (each serial port, and console.sock), a maker of its sessions.
        count: the daemon's counter.
    """

    def __init__(
        self,
        data_dir: Path,
        ports: tuple[str, ...],
        baud: int,
        port_sessions: Callable[[], Callable[[], ConsoleShell]],
        count: Callable[[str], None],
    ) -> None:
        self.path = console_socket_path(data_dir)
        self._new_session = port_sessions()
        self._count = count
        self.serial = [SerialConsole(p, baud, port_sessions(), count) for p in ports]
        self._socket = OwnerSocket(
            self.path,
            "console",
            MAX_CLIENTS,
            self._session,
            lambda writer, _code, message: _send(writer, message.encode("utf-8") + b"\r\n"),
            count,
        )

    async def open(self) -> None:
        """Bind console.sock (owner-only); on failure log and count, never raise."""
        try:
            await self._socket.open()
        except OSError as exc:
            self._count("console.errors")
            log.error("console socket %s unavailable: %s", self.path, exc.strerror or exc)

    async def serve(self) -> None:
        """Serve the serial ports and the socket until cancelled."""
        try:
            async with asyncio.TaskGroup() as tasks:
                for port in self.serial:
                    tasks.create_task(port.serve())
                await asyncio.Event().wait()
        finally:
            self._socket.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        shell = self._new_session()
        if not await _send(writer, shell.start()):
            return
        while not shell.left:
            try:
                async with asyncio.timeout(IDLE_DEADLINE_S):
                    data = await reader.read(READ_CHUNK)
            except (TimeoutError, OSError):
                await _send(writer, b"\r\nidle for too long; bye\r\n")
                return
            if not data:
                return  # the client went away, perhaps mid-line: the partial line is dropped
            if not await _send(writer, shell.feed(data, time.monotonic())):
                return


async def _send(writer: asyncio.StreamWriter, data: bytes) -> bool:
    try:
        writer.write(data)
        async with asyncio.timeout(WRITE_DEADLINE_S):
            await writer.drain()
    except (OSError, TimeoutError):
        return False
    return True
