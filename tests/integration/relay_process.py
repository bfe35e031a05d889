"""A real relay daemon process for integration tests, and honest members that sync with it.

`RelayProcess.start` runs `waystation run --data D --listen 127.0.0.1:0 --no-zeroconf --config C`
as a child process, drains its stderr into `lines` and waits (with a deadline) for the
"listening on 127.0.0.1:<port>" line. `stop()` sends SIGTERM, waits for a clean exit and returns
the final data_dir/status.json (the daemon writes it at exit). Nothing sleeps: every wait is on
the child's output or exit, with a deadline.

`RawClient` is a member side driven by hand over real TCP: a real Session does Noise (so the
relay's Bye can be decrypted and its reason read), and the test can write any bytes or frames.

`Group` is one group's messages log written by several members, each with its own chain of
entries and its own in-memory store (what a desktop member holds), synced with
node.app.sync_client.sync_with_relay exactly as `waystation peer sync` does.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from node.app.context import NodeContext
from node.app.sync_client import MAX_FRAME, member_context, sync_with_relay
from node.errors import LinkError
from node.lan.tcp import TcpLink
from node.proto.messages import ROLE_MEMBER
from node.proto.session import Session, SessionClosed, SessionOpened
from node.sync.entry import Entry
from node.sync.store import MemoryStore
from tests.sync_helpers import SUITE, GroupLog

WAYSTATION = Path(sys.executable).with_name("waystation")
LISTENING = re.compile(r'logger=waystation\.daemon msg="relay \S+ listening on 127\.0\.0\.1:(\d+)')
START_DEADLINE_S = 20.0
STOP_DEADLINE_S = 20.0


class RelayProcess:
    """A running `waystation run` child process."""

    def __init__(self, proc: asyncio.subprocess.Process, data_dir: Path) -> None:
        self.proc = proc
        self.data_dir = data_dir
        self.port = 0
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self._drain = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(cls, data_dir: Path, config_text: str) -> RelayProcess:
        """Start a relay with `config_text` (TOML over the defaults) and wait for its port."""
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir.parent / (data_dir.name + ".toml")
        config.write_text(config_text)
        proc = await asyncio.create_subprocess_exec(
            str(WAYSTATION),
            "run",
            "--config",
            str(config),
            "--data",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--no-zeroconf",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        relay = cls(proc, data_dir)
        try:
            match = await relay.wait_for_line(LISTENING, START_DEADLINE_S)
        except BaseException:
            await relay.kill()
            raise
        relay.port = int(match.group(1))
        return relay

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._new_line.set()
        self._new_line.set()

    async def wait_for_line(self, pattern: re.Pattern[str], deadline_s: float) -> re.Match[str]:
        """The first stderr line matching `pattern` (already seen or yet to come)."""
        return (await self.wait_for_lines(pattern, 1, deadline_s))[0]

    async def wait_for_lines(
        self, pattern: re.Pattern[str], count: int, deadline_s: float
    ) -> list[re.Match[str]]:
        """The first `count` stderr lines matching `pattern` (already seen or yet to come).

        Raises:
            AssertionError: the relay exited first.
            TimeoutError: fewer lines came within `deadline_s`.
        """
        found: list[re.Match[str]] = []
        seen = 0
        async with asyncio.timeout(deadline_s):
            while True:
                for line in self.lines[seen:]:
                    if match := pattern.search(line):
                        found.append(match)
                        if len(found) == count:
                            return found
                seen = len(self.lines)
                if self._drain.done():
                    raise AssertionError(
                        "relay exited (%s) before %d lines matching %r; stderr:\n%s"
                        % (self.proc.returncode, count, pattern.pattern, self.tail())
                    )
                self._new_line.clear()
                await self._new_line.wait()

    def tail(self, lines: int = 40) -> str:
        """The relay's last stderr lines (for failure messages)."""
        return "\n".join(self.lines[-lines:])

    async def stop(self) -> dict[str, object]:
        """SIGTERM, wait for exit status 0, and return the final status.json."""
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_DEADLINE_S):
            code = await self.proc.wait()
            await self._drain
        assert code == 0, "relay exited with %s; stderr:\n%s" % (code, self.tail())
        status: dict[str, object] = json.loads((self.data_dir / "status.json").read_text())
        return status

    async def kill(self) -> None:
        """Kill the relay if it still runs (cleanup after a failure)."""
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._drain.cancel()


class RawClient:
    """One connection to the relay, driven by hand (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.link = TcpLink(reader, writer, MAX_FRAME)
        self.session = Session(SUITE, True, SUITE.random_bytes(32), ROLE_MEMBER, _now())
        self.events: list[object] = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def write_raw(self, data: bytes) -> bool:
        """Write bytes as they are; False once the relay has reset the connection."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            return False
        return True

    async def send_frames(self, frames: list[bytes]) -> None:
        await self.link.send(frames)

    async def flush(self) -> None:
        """Write what our session queued (handshake, Hello, messages)."""
        await self.link.send(self.session.frames_to_send())

    async def handshake(self, send_hello: bool = True) -> bool:
        """Run Noise XX as initiator; send our Hello too unless told not to.

        Returns:
            False when the relay closed the connection instead of answering.
        """
        await self.flush()
        frame = await self._recv()
        if frame is None:
            return False
        self.session.receive_frame(frame, _now())
        frames = self.session.frames_to_send()  # Noise message 3, then our Hello
        assert len(frames) == 2 and self.session.remote_static is not None
        await self.link.send(frames if send_hello else frames[:1])
        return True

    async def wait_open(self) -> None:
        """Read until the relay's Hello has opened our session."""
        while not self.session.is_open:
            frame = await self._recv()
            assert frame is not None, "relay closed before its Hello"
            self._feed(frame)
        assert any(isinstance(e, SessionOpened) for e in self.events)

    async def until_closed(self, decrypt: bool = True) -> str | None:
        """Read until the relay drops the connection.

        Args:
            decrypt: feed what arrives to our session (False when the handshake never completed).

        Returns:
            The reason in the relay's Bye, or None when it sent none.
        """
        while (frame := await self._recv()) is not None:
            if decrypt and not self.session.is_finished:
                self._feed(frame)
        self.writer.close()
        byes = [e for e in self.events if isinstance(e, SessionClosed) and e.by_peer]
        return byes[0].reason if byes else None

    def _feed(self, frame: bytes) -> None:
        self.session.receive_frame(frame, _now())
        self.session.frames_to_send()  # a hostile peer never answers
        while (event := self.session.next_event()) is not None:
            self.events.append(event)

    async def _recv(self) -> bytes | None:
        try:
            return await self.link.recv()
        except LinkError:  # reset by the relay: closed just as well
            return None


def _now() -> int:
    return int(asyncio.get_running_loop().time() * 1000)


def counters(status: dict[str, object]) -> dict[str, int]:
    """The counters of a status.json, type-checked."""
    found = status["counters"]
    assert isinstance(found, dict)
    return {str(k): int(v) for k, v in found.items()}


@dataclass
class Member:
    """One member device: its own entries of a group log, in its own store."""

    name: str
    log: GroupLog
    written: list[Entry]
    store: MemoryStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = MemoryStore(SUITE.ed25519_verify)
        self.store.add_log(self.log.address, self.log.sign_pub, pinned=True)
        self.store.put_entries(self.written, 1_000_000)
        self.store.commit()

    def context(self) -> NodeContext:
        logs = {self.log.address: (self.log.sign_pub, self.log.identity_signature)}
        return member_context(self.store, SUITE, logs)

    async def sync(self, port: int, timeout: float = 30.0) -> str:
        """One `peer sync` with the relay; returns how the session ended."""
        outcome = await sync_with_relay(self.context(), "127.0.0.1", port, timeout)
        return outcome.reason

    def missing(self, entries: list[Entry]) -> list[Entry]:
        """Which of `entries` this member does not hold."""
        return [e for e in entries if not self.store.has(e.cid)]


@dataclass
class Group:
    """One group's messages log and the members that write to it."""

    log: GroupLog
    members: list[Member]

    @classmethod
    def make(cls, seed: int, members: int, entries_each: int) -> Group:
        """A group whose `members` each wrote a chain of `entries_each` entries."""
        log = GroupLog.make(seed)
        group = cls(log, [])
        for m in range(members):
            chain: list[Entry] = []
            for i in range(entries_each):
                chain.append(log.append("g%d m%d #%d" % (seed, m, i), chain[-1:]))
            group.members.append(Member("g%d-m%d" % (seed, m), log, chain))
        return group

    @property
    def entries(self) -> list[Entry]:
        return list(self.log.entries)
