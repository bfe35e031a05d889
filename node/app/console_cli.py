"""`waystation console`: attach this terminal to a relay's console.

Without `--port`, it connects to DATA/console.sock of a daemon on this machine; with `--port
/dev/ttyUSB0` it opens a serial line to a relay (a laptop on the relay's USB gadget or UART).
Either way it is a dumb pipe: the terminal is put in raw mode (the relay echoes and edits the
line), bytes go both ways until the relay ends the session (Ctrl-D or `exit`) or the line drops;
then the terminal is restored. Over a serial line the relay never hangs up, so Ctrl-] leaves.
`--hash-pin` prints a `console.pin_hash` value for a PIN read without echo.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import select
import selectors
import socket
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path

from node.app.console_commands import hash_pin
from node.app.console_server import console_socket_path
from node.app.control import _short_path
from node.console.serial import open_port
from node.errors import LinkError

ESCAPE = 0x1D  # Ctrl-], as in telnet and picocom's habit of a leave key
CHUNK = 4096
EXIT_NOT_RUNNING = 3
EXIT_LOST = 4


def add_console_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`waystation console [--data DIR | --port DEV [--baud N]] [--hash-pin]`."""
    console = commands.add_parser(
        "console",
        help="attach to a relay's management console",
        description="Attach to the console of the relay daemon of DIR (DIR/console.sock), or "
        "over a serial line with --port. Ctrl-D or `exit` leaves; on a serial line Ctrl-] "
        "leaves too. Exit status: 0 left, 3 no daemon / no port, 4 the line dropped.",
    )
    console.add_argument("--data", type=Path, help="data directory of a local daemon")
    console.add_argument("--port", metavar="DEV", help="serial device (or pyserial URL)")
    console.add_argument("--baud", type=int, default=115200, help="serial speed (default 115200)")
    console.add_argument(
        "--hash-pin", action="store_true", help="print a console.pin_hash for a PIN and exit"
    )


def run_console(args: argparse.Namespace, data_dir: Path) -> int:
    """Run `waystation console` with parsed `args` (data_dir: the resolved --data)."""
    if args.hash_pin:
        pin = getpass.getpass("console PIN: ")
        if not pin or pin != getpass.getpass("again: "):
            print("waystation: the PINs are empty or differ", file=sys.stderr)
            return 2
        print('pin_hash = "%s"' % hash_pin(pin))
        return 0
    if args.port:
        try:
            port = open_port(args.port, args.baud)
        except LinkError as exc:
            print("waystation: %s" % exc, file=sys.stderr)
            return EXIT_NOT_RUNNING
        with contextlib.closing(port):
            port.write(b"\r")  # ask the relay for a fresh prompt
            return pipe(port.fileno(), port.fileno(), leave_key=True)
    path = console_socket_path(data_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        try:
            with _short_path(path) as short:
                sock.connect(short)
        except OSError as exc:
            print(
                "waystation: no console at %s (%s): is the daemon running there?"
                % (path, exc.strerror or exc),
                file=sys.stderr,
            )
            return EXIT_NOT_RUNNING
        return pipe(sock.fileno(), sock.fileno(), leave_key=False)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Put terminal `fd` in raw mode for the block (nothing if it is not a terminal)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def pipe(read_fd: int, write_fd: int, leave_key: bool) -> int:
    """Copy stdin to the relay and the relay to stdout until one side ends."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    with raw_terminal(stdin), selectors.DefaultSelector() as selector:
        selector.register(stdin, selectors.EVENT_READ, "user")
        selector.register(read_fd, selectors.EVENT_READ, "relay")
        while True:
            for key, _ in selector.select():
                try:
                    data = os.read(key.fd, CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if key.data == "relay":
                    if not data:
                        return 0 if not leave_key else EXIT_LOST
                    os.write(stdout, data)
                    continue
                if not data or (leave_key and ESCAPE in data):
                    return 0
                _write_all(write_fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)  # the line is slow: wait until it takes more
