"""`waystation console` as a real process on a pseudo-terminal: attached to DATA/console.sock,
and from "a laptop" over a serial line (--port, the user's end of a null-modem pty pair)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.console_helpers import DEADLINE_S, NullModem, Terminal, make_daemon, running

PROMPT = rb"relay-console> "
WAYSTATION = str(Path(sys.executable).with_name("waystation"))


def attach(argv: list[str]) -> tuple[subprocess.Popen[bytes], Terminal, int]:
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [WAYSTATION, "console", *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    return proc, Terminal(master, lambda data: os.write(master, data)), master


def test_console_attaches_to_the_local_daemon(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running(make_daemon(data, [])):
        proc, term, master = attach(["--data", str(data)])
        try:
            term.expect(PROMPT)
            term.send(b"vers\t\r")  # raw mode: Tab reaches the relay, which completes
            assert term.expect(PROMPT).startswith(b"version \r\npython ")
            term.send(b"\x04")  # Ctrl-D leaves; the command exits 0
            term.expect(rb"bye")
            assert proc.wait(DEADLINE_S) == 0
        finally:
            proc.kill()
            proc.wait(DEADLINE_S)
            os.close(master)


def test_console_over_a_serial_line(tmp_path: Path) -> None:
    modem = NullModem()
    try:
        with running(make_daemon(tmp_path / "data", [modem.daemon_end])):
            proc, term, master = attach(["--port", modem.user_end])
            try:
                term.expect(PROMPT)  # it sends CR first: a fresh prompt
                term.send(b"status\r")
                assert b"transports " in term.expect(PROMPT)
                term.send(b"\x1d")  # Ctrl-] leaves a serial line
                assert proc.wait(DEADLINE_S) == 0
            finally:
                proc.kill()
                proc.wait(DEADLINE_S)
                os.close(master)
    finally:
        modem.close()


def test_no_daemon_and_no_port_exit_3(tmp_path: Path) -> None:
    for argv in (["--data", str(tmp_path)], ["--port", str(tmp_path / "ttyNONE")]):
        done = subprocess.run(
            [WAYSTATION, "console", *argv],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
        assert done.returncode == 3, done.stderr
        assert "waystation: " in done.stderr
