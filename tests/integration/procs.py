"""Real processes for the end-to-end tests: the relay daemon and the `waystation peer` client.

`Relay` runs `waystation run` as a child process on 127.0.0.1 with port 0 (the kernel picks a
free port, so parallel runs cannot collide) and reads the port from its "listening on" log line.
A thread reads the daemon's stderr line by line and wakes waiters, so waiting for a log line is an
event with a deadline, not a sleep. `Member` runs one `waystation peer ...` command per call, each
a fresh process over its own data directory, as a person at a terminal would.

`byte_forms` and `find_in_tree` search a directory byte-wise for a secret or a text in the forms
a careless implementation could leave it in (raw, hex, base64 at any alignment, UTF-16).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

WAYSTATION = str(Path(sys.executable).with_name("waystation"))
START_DEADLINE_S = 15.0
CLI_DEADLINE_S = 30.0
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def child_env(home: Path) -> dict[str, str]:
    """The environment for a child: defaults (XDG dirs) point into the test's own directory."""
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("NOTIFY_SOCKET", None)
    return env


class Relay:
    """One `waystation run` child process. Use as a context manager (it is killed on exit)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        peers: Sequence[str] = (),
        config: Path | None = None,
        listen: str = "127.0.0.1:0",
    ) -> None:
        self.data_dir = data_dir
        argv = [WAYSTATION, "run", "--data", str(data_dir), "--listen", listen, "--no-zeroconf"]
        if config is not None:
            argv += ["--config", str(config)]
        for peer in peers:
            argv += ["--peer", peer]
        self.argv = argv
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(data_dir.parent),
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        try:
            self.port = int(self.wait_for_line(LISTENING, START_DEADLINE_S).group(1))
        except BaseException:
            self.kill()  # __exit__ will not run for a relay that never started
            raise

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        self.proc.stderr.close()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.port

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first stderr line matching `pattern`; AssertionError after `timeout` or at EOF."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    raise AssertionError(
                        "relay never logged %r (exit %r); its log:\n%s"
                        % (pattern.pattern, self.proc.poll(), "\n".join(self.lines))
                    )
                self._changed.wait(remaining)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait for the exit status (AssertionError if it does not exit in time)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("relay did not exit within %.0f s of SIGTERM" % timeout) from None
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def link_fingerprint(data_dir: Path) -> str:
    """The link-key fingerprint of the relay that will run on `data_dir` (its key made now)."""
    from node.app.identity import load_or_create_identity
    from node.crypto._nacl import NaclSuite

    suite = NaclSuite()
    return load_or_create_identity(data_dir, suite).fingerprint(suite)


def trusting(config: Path, relays: Sequence[Path], text: str = "") -> Path:
    """Write `config`: `text` plus `[relay] trusted` = the link keys of the relays in `relays`."""
    trusted = ", ".join('"%s"' % link_fingerprint(d) for d in relays)
    config.write_text("%s\n[relay]\ntrusted = [%s]\n" % (text, trusted))
    return config


class Member:
    """A desktop member: every call is one `waystation peer` process over `data_dir`."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.data_dir = data_dir
        self.name = name

    def run(self, *args: str, check: bool = True, timeout: float = CLI_DEADLINE_S) -> Any:
        """Run `waystation peer <args> --data DIR`; the CompletedProcess (text)."""
        command, rest = args[0], list(args[1:])
        head = [command] if command != "group" else [command, rest.pop(0)]
        argv = [WAYSTATION, "peer", *head, "--data", str(self.data_dir), *rest]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            env=child_env(self.data_dir.parent),
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                "%s exited %d\nstdout: %s\nstderr: %s"
                % (" ".join(argv[1:]), done.returncode, done.stdout, done.stderr)
            )
        return done

    def init(self) -> None:
        self.run("init", "--name", self.name)

    def create_group(self, name: str) -> str:
        return str(self.run("group", "create", name).stdout.strip())

    def invite(self, group: str) -> str:
        return str(self.run("invite", group).stdout.strip())

    def join(self, invitation: str) -> str:
        return str(self.run("join", invitation).stdout.strip())

    def send(self, group: str, text: str) -> str:
        return str(self.run("send", group, text).stdout.strip())

    def sync(self, relay: str, timeout: float = 20.0) -> str:
        done = self.run("sync", "--relay", relay, "--timeout", str(timeout))
        return str(done.stdout)

    def read(self, group: str) -> list[dict[str, Any]]:
        out = self.run("read", group, "--json").stdout
        return [json.loads(line) for line in out.splitlines() if line]

    def database_rows(self) -> bytes:
        """Every value of every row of member.sqlite3, concatenated (text as UTF-8)."""
        import sqlite3

        conn = sqlite3.connect("file:%s?mode=ro" % (self.data_dir / "member.sqlite3"), uri=True)
        out = []
        try:
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            for (table,) in tables:
                for row in conn.execute('SELECT * FROM "%s"' % table):
                    for value in row:
                        if isinstance(value, str):
                            value = value.encode()
                        out.append(value if isinstance(value, bytes) else str(value).encode())
        finally:
            conn.close()
        return b"\n".join(out)

    def group_file(self, group: str) -> dict[str, Any]:
        """This member's saved state of `group` (bytes decoded), for secrets and wait conditions:
        its row in member.sqlite3, with the ratchet's read keys from their own table."""
        import sqlite3

        from node.member.store_files import parse_json

        path = self.data_dir / "member.sqlite3"
        conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            (text,) = conn.execute(
                "SELECT state FROM groups WHERE group_id = ?", (group,)
            ).fetchone()
            keys = conn.execute(
                "SELECT cid, device, counter, message_key FROM read_keys WHERE group_id = ?",
                (group,),
            ).fetchall()
        finally:
            conn.close()
        data: dict[str, Any] = parse_json(text, str(path))
        data["ratchet"]["read_keys"] = [list(row) for row in keys]
        return data


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, pause: float = 0.1
) -> None:
    """Poll `condition` (each call may run processes) until it holds; AssertionError at deadline.

    Used only where no event exists to wait on: another process's state across two relays.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError("not within %.0f s: %s" % (timeout, what))
        time.sleep(pause)


# ---- byte-wise searches ----------------------------------------------------------------------


def _base64_cores(data: bytes) -> list[bytes]:
    """Base64 (standard and URL-safe) of `data` at each of the 3 alignments inside a longer text:
    only the characters that depend on `data` alone (the edges may mix in neighbouring bytes)."""
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + data)
        start = -(-shift * 8 // 6)  # first character made only of bits of `data`
        stop = (shift + len(data)) * 8 // 6  # past the last such character
        core = encoded[start:stop]
        if len(core) >= 8:
            cores.append(core)
            cores.append(core.replace(b"+", b"-").replace(b"/", b"_"))
    return cores


def byte_forms(data: bytes) -> list[bytes]:
    """The forms to search for: raw, hex (both cases), base64 (any alignment, both alphabets)."""
    return [data, data.hex().encode(), data.hex().upper().encode(), *_base64_cores(data)]


def text_forms(text: str) -> list[bytes]:
    """A text as UTF-8 (and its hex/base64 forms) and as UTF-16 (both byte orders)."""
    return [*byte_forms(text.encode()), text.encode("utf-16-le"), text.encode("utf-16-be")]


def find_in_tree(root: Path, needles: dict[str, list[bytes]]) -> list[str]:
    """Every (file, needle name) where a form of a needle occurs in a file under `root`."""
    found = []
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert files, "nothing to search in %s" % root
    for path in files:
        try:
            content = path.read_bytes()
        except FileNotFoundError:  # a SQLite -shm/-wal file removed while we looked
            continue
        for name, forms in needles.items():
            if any(form in content for form in forms):
                found.append("%s: %s" % (path.relative_to(root), name))
    return found
