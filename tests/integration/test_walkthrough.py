"""The two-member walkthroughs of docs/operations.md and README.md, run verbatim.

The fenced `sh` block is taken from the file as it is; every line runs in its own `bash -c`
against a real relay process (port 0), with HOME and the working directory in a temporary
directory and the venv's `waystation` first on PATH. A line `NAME=...` is run as written and the
value it assigns is carried to the next lines (as an interactive shell would); `RELAY=...` is run
too, then replaced by the test relay's address (the one thing that must differ here). Then the
lines a person relies on are checked: each exits 0 without a traceback, `join` says to sync
before writing, `send` prints a CID and does not warn that nobody can read it, each sync says
"synced with", and the final `read` shows the sent text from its author.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.integration.procs import WAYSTATION, Relay, child_env

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = re.compile(r"^([A-Z_]+)=")
CID_LINE = re.compile(r"^b[a-z2-7]{20,}$")
LINE_DEADLINE_S = 60.0


def walkthrough(path: Path, anchor: str) -> list[str]:
    """The lines of the first ```sh block after `anchor` in `path` that mentions `peer init`."""
    text = path.read_text(encoding="utf-8")
    start = text.index(anchor)
    for match in re.finditer(r"```sh\n(.*?)```", text[start:], re.S):
        lines = [line for line in match.group(1).splitlines() if line.strip()]
        if any("peer init" in line for line in lines):
            return lines
    raise AssertionError("no walkthrough block after %r in %s" % (anchor, path))


def run_lines(lines: list[str], tmp_path: Path, relay: Relay) -> list[tuple[str, object]]:
    env = child_env(tmp_path)
    env["HOME"] = str(tmp_path)
    env["PATH"] = str(Path(WAYSTATION).parent) + os.pathsep + env.get("PATH", "")
    results = []
    for line in lines:
        assigned = ASSIGNMENT.match(line)
        script = line
        if assigned:
            script = '%s\nprintf "%%s" "$%s"' % (line, assigned.group(1))
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=LINE_DEADLINE_S,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (line, done.stderr)
        if assigned:
            name = assigned.group(1)
            env[name] = relay.address if name == "RELAY" else done.stdout
        results.append((line, done))
    return results


def check(results: list[tuple[str, object]]) -> None:
    sent: list[tuple[str, str]] = []  # (author data dir, text)
    names: dict[str, str] = {}
    read_out = ""
    for line, done in results:
        assert isinstance(done, subprocess.CompletedProcess)
        words = shlex.split(line, comments=True)
        if "peer" not in words:
            continue
        command = words[words.index("peer") + 1]
        data = words[words.index("--data") + 1] if "--data" in words else ""
        if command == "init":
            names[data] = words[words.index("--name") + 1]
            assert done.stdout.startswith("account created in"), done.stdout
        elif command == "join":
            assert "sync" in done.stderr and "before writing" in done.stderr, done.stderr
        elif command == "sync":
            assert done.stdout.startswith("synced with 127.0.0.1:"), done.stdout
        elif command == "send":
            assert CID_LINE.match(done.stdout.strip()), done.stdout
            assert "sent to" in done.stderr, done.stderr
            assert "nobody else" not in done.stderr, (line, done.stderr)
            sent.append((data, words[-1]))
        elif command == "read":
            read_out = done.stdout
    assert sent, "the walkthrough sends nothing"
    for data, text in sent:
        assert re.search(
            r"  %s: %s$" % (re.escape(names[data]), re.escape(text)), read_out, re.M
        ), read_out


@pytest.mark.parametrize(
    "doc, anchor", [("docs/operations.md", "## A desktop member"), ("README.md", "# Waystation")]
)
def test_walkthrough_runs_verbatim(tmp_path: Path, doc: str, anchor: str) -> None:
    lines = walkthrough(ROOT / doc, anchor)
    with Relay(tmp_path / "relay") as relay:
        results = run_lines(lines, tmp_path, relay)
    check(results)
