"""Admission in the daemon, in process over real loopback TCP: the policy's decisions reach the
links (Bye reasons the client reads, connections closed, counters)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from node.app.config import parse_config
from node.app.daemon import Daemon
from node.app.sync_client import member_context, sync_with
from node.crypto._nacl import NaclSuite
from node.errors import LinkError
from node.lan.tcp import TcpLink, tcp_address
from node.sync.store import MemoryStore
from tests.integration.relay_process import RawClient
from tests.sync_helpers import GroupLog, member_store

DEADLINE_S = 30.0


def run_daemon(
    tmp_path: Path,
    config_text: str,
    scenario: Callable[[Daemon, int], Awaitable[None]],
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, int]:
    """Run `scenario(daemon, port)` against an in-process daemon; its counters at the end."""
    config = parse_config(
        '[lan]\nlisten = "127.0.0.1:0"\nzeroconf = false\n'
        "[store]\ncommit_interval_ms = 0\n" + config_text
    )
    daemon = Daemon(config, NaclSuite(), tmp_path / "relay", clock)

    async def main() -> dict[str, int]:
        running = asyncio.create_task(daemon.run())
        try:
            async with asyncio.timeout(DEADLINE_S):
                await daemon.started.wait()
                assert daemon.port is not None
                await scenario(daemon, daemon.port)
        finally:
            daemon.stop()
            await running
        status = json.loads((tmp_path / "relay" / "status.json").read_text())
        counters: dict[str, int] = status["counters"]
        return counters

    return asyncio.run(main())


async def opened(port: int) -> RawClient:
    client = await RawClient.connect(port)
    assert await client.handshake()
    await client.wait_open()
    return client


async def honest_sync(port: int, seed: int) -> str:
    suite = NaclSuite()
    group = GroupLog.make(seed)
    group.append("hello")
    store: MemoryStore = member_store(group)
    logs = {group.address: (group.sign_pub, group.identity_signature)}
    outcome = await sync_with(
        member_context(store, suite, logs), tcp_address("127.0.0.1", port), DEADLINE_S
    )
    return outcome.reason


def test_the_longest_idle_session_makes_room_for_a_newcomer(tmp_path: Path) -> None:
    reasons: list[str | None] = []

    async def scenario(daemon: Daemon, port: int) -> None:
        first = await opened(port)
        second = await opened(port)
        assert daemon.status()["admission"] == {"sessions": 2, "pending": 0}
        # The relay is full; an honest member still gets in: the idle session opened first
        # is told "idle" and closed.
        assert await honest_sync(port, 200) == "ok"
        reasons.append(await first.until_closed())
        second.writer.close()

    counters = run_daemon(tmp_path, "[relay]\nmax_sessions = 2\n", scenario)
    assert reasons == ["idle"]
    assert counters["links.closed.idle"] == 1
    assert counters["links.closed.ok"] == 1


def test_a_session_that_declares_nothing_is_closed_after_idle_session_s(tmp_path: Path) -> None:
    reasons: list[str | None] = []

    async def scenario(daemon: Daemon, port: int) -> None:
        idler = await opened(port)
        reasons.append(await idler.until_closed())  # within the test's deadline
        assert await honest_sync(port, 202) == "ok"  # one that declares is not cut

    counters = run_daemon(tmp_path, "[relay]\nidle_session_s = 1\n", scenario)
    assert reasons == ["idle"]
    assert counters["links.closed.idle"] == 1 and counters["links.closed.ok"] == 1


def test_links_beyond_the_per_source_cap_are_refused_at_once(tmp_path: Path) -> None:
    async def scenario(daemon: Daemon, port: int) -> None:
        held = [await opened(port), await opened(port)]
        extra = await RawClient.connect(port)
        try:
            frame = await extra.link.recv()  # closed without a byte: no handshake for it
        except LinkError:
            frame = None
        assert frame is None
        await extra.link.close()
        for client in held:
            client.writer.close()

    counters = run_daemon(
        tmp_path, "[relay]\nmax_links_per_source = 2\nmax_handshakes_per_source = 2\n", scenario
    )
    assert counters["links.rejected.source-links"] == 1


def test_a_trickle_of_bytes_does_not_outlive_the_handshake_deadline(tmp_path: Path) -> None:
    sent: list[int] = []

    async def scenario(daemon: Daemon, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        link = TcpLink(reader, writer, 65535)
        # A frame header announcing 32 bytes, then one byte every 0.2 s: never a whole frame
        # before the 1 s deadline. The read returns at the relay's close (EOF) or the tick.
        writer.write((32).to_bytes(4, "big"))
        closed = False
        while not closed:
            writer.write(b"\x00")
            sent.append(1)
            try:
                await writer.drain()
                async with asyncio.timeout(0.2):
                    closed = not await reader.read(1)
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
        await link.close()

    counters = run_daemon(tmp_path, "[session]\nhandshake_timeout_s = 1\n", scenario)
    assert counters["links.closed.timeout"] == 1
    assert len(sent) < 32  # closed before the frame could ever complete


async def refused(port: int) -> None:
    """Connect and wait until the relay closes the connection without a byte."""
    client = await RawClient.connect(port)
    try:
        frame = await client.link.recv()
    except LinkError:
        frame = None
    assert frame is None
    await client.link.close()


def test_refusals_are_counted_one_by_one_and_logged_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's clock is driven by the test: no sleeping for the minute."""
    now = [1000.0]
    lines: list[list[str]] = []

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "waystation.admission"]

    async def scenario(daemon: Daemon, port: int) -> None:
        held = await opened(port)  # the source's one link
        for _ in range(5):
            await refused(port)
        lines.append(logged())  # the first refusal is logged at once, the next four wait
        now[0] += 61.0
        await refused(port)
        lines.append(logged())  # a minute later: one line for the five since
        now[0] += 30.0
        for _ in range(2):
            await refused(port)
        daemon.gate.flush()  # housekeeping's call: within the minute, nothing
        lines.append(logged())
        now[0] += 31.0
        daemon.gate.flush()
        lines.append(logged())
        held.writer.close()

    caplog.set_level(logging.WARNING, logger="waystation.admission")
    config = "[relay]\nmax_links_per_source = 1\nmax_handshakes_per_source = 1\n"
    config += "idle_session_s = 86400\n"
    counters = run_daemon(tmp_path, config, scenario, clock=lambda: now[0])
    assert counters["links.rejected.source-links"] == 8
    first = "refused 1 link in the last 0 s: source-links; most from 127.0.0.1 (1)"
    second = "refused 5 links in the last 61 s: source-links; most from 127.0.0.1 (5)"
    third = "refused 2 links in the last 61 s: source-links; most from 127.0.0.1 (2)"
    assert lines == [[first], [first, second], [first, second], [first, second, third]]
