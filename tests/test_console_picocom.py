"""A real terminal program against the console: picocom (Debian) in a detached tmux session on
the user's end of a null-modem pair of pseudo-terminals; the screen is read with capture-pane.

The pane's output is also copied (tmux pipe-pane) into a FIFO that the test reads with a
deadline, so it waits for the relay's answer as an event instead of sleeping."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.console_helpers import NullModem, Terminal, make_daemon, running

pytestmark = pytest.mark.skipif(
    shutil.which("picocom") is None or shutil.which("tmux") is None,
    reason="picocom and tmux come from tools/debian-packages.txt (make test installs them)",
)


def test_picocom_in_tmux_drives_the_console(tmp_path: Path) -> None:
    modem = NullModem()
    server = "waystation-console-%d" % os.getpid()  # our own tmux server, nobody else's
    tmux = ["tmux", "-L", server, "-f", "/dev/null"]
    fifo = tmp_path / "pane.fifo"
    os.mkfifo(fifo)
    daemon = make_daemon(tmp_path / "data", [modem.daemon_end])
    try:
        with running(daemon):
            subprocess.run(
                [*tmux, "new-session", "-d", "-s", "c", "-x", "120", "-y", "40",
                 "picocom --quiet --nolock -b 115200 %s" % modem.user_end],
                check=True,
            )  # fmt: skip
            subprocess.run([*tmux, "pipe-pane", "-t", "c", "cat > %s" % fifo], check=True)
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            pane = Terminal(reader, None)

            def keys(*what: str) -> None:
                subprocess.run([*tmux, "send-keys", "-t", "c", *what], check=True)

            keys("Enter")
            pane.expect(rb"relay-console> ")
            keys("vers", "Tab", "Enter")  # Tab completion through a real terminal
            pane.expect(rb"version\s+\d.*relay-console> ")
            keys("stat", "BSpace", "BSpace", "ore", "Enter")  # backspace as picocom sends it
            pane.expect(rb"quota.*relay-console> ")
            keys("Up", "frob", "Enter")  # an arrow key's escape sequence is dropped
            pane.expect(rb"unknown command 'frob'.*relay-console> ")
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "c"], check=True, capture_output=True, text=True
            ).stdout
            os.close(reader)
            lines = [line.rstrip() for line in screen.splitlines()]
            assert "relay-console> version" in lines
            assert "relay-console> store" in lines  # "stat" erased to "st", then "ore"
            assert "relay-console> frob" in lines
            assert any(line.startswith("unknown command 'frob'") for line in lines)
            # no echo storm: nothing of ours came back as input, each command appears once
            assert "unknown command 'relay-console>'" not in screen
            assert sum(line == "relay-console> version" for line in lines) == 1
            keys("C-a", "C-x")  # leave picocom
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        modem.close()
