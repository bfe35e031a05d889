"""100 members sync at once with one real relay process (issue 4, §4): nothing lost, all "ok".

20 groups x 5 members; each member wrote its own chain of entries into its group's messages log
and holds only those. Round 1: all 100 `peer sync` sessions run at once (each an in-process
LinkDriver over real loopback TCP, as `waystation peer sync` runs it). Round 2: all 100 again, at
once; afterwards every member holds every entry of its group. The relay's final status.json
(written at exit, after SIGTERM) must agree: 200 links closed "ok", nothing else, every entry
stored exactly once, no peer errors.

A second test opens a burst of connections beyond relay.max_sessions: exactly max_sessions of
them get a session, the rest are closed at once and counted.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from tests.integration.relay_process import Group, Member, RawClient, RelayProcess, counters

GROUPS = 20
MEMBERS_PER_GROUP = 5
ENTRIES_EACH = 4
DEADLINE_S = 50.0

CLOSED_LOST = re.compile(r'logger=waystation\.daemon msg="tcp:\S+ closed: lost')
RELAY_CONFIG = """
[relay]
max_sessions = 128
"""


async def sync_all(members: list[Member], port: int) -> list[str]:
    """Every member syncs at the same time; their session endings, in order."""
    async with asyncio.TaskGroup() as tasks:
        runs = [tasks.create_task(m.sync(port)) for m in members]
    return [r.result() for r in runs]


def test_hundred_members_sync_concurrently(tmp_path: Path) -> None:
    groups = [Group.make(2 * g, MEMBERS_PER_GROUP, ENTRIES_EACH) for g in range(GROUPS)]
    members = [m for g in groups for m in g.members]
    total = sum(len(g.entries) for g in groups)
    assert len(members) == 100 and total == 100 * ENTRIES_EACH

    async def main() -> None:
        relay = await RelayProcess.start(tmp_path / "relay", RELAY_CONFIG)
        try:
            async with asyncio.timeout(DEADLINE_S):
                started = time.monotonic()
                first = await sync_all(members, relay.port)
                upload_s = time.monotonic() - started
                assert first == ["ok"] * len(members)
                started = time.monotonic()
                second = await sync_all(members, relay.port)
                download_s = time.monotonic() - started
                assert second == ["ok"] * len(members)
                assert relay.alive
            status = await relay.stop()
        finally:
            await relay.kill()
        print("100 concurrent syncs: upload %.2f s, download %.2f s" % (upload_s, download_s))

        for group in groups:
            for member in group.members:
                assert member.missing(group.entries) == [], member.name
        stats = counters(status)
        closed = {k: v for k, v in stats.items() if k.startswith("links.closed.")}
        assert closed == {"links.closed.ok": 2 * len(members)}
        assert stats["links.opened"] == 2 * len(members)
        assert not [k for k in stats if k.startswith(("peer_errors.", "links.rejected."))]
        assert not [k for k in stats if k.startswith(("entries.refused.", "logs.refused."))]
        assert stats["entries.stored"] == total
        assert status["logs"] == GROUPS
        assert status["links_open"] == 0

    asyncio.run(main())


def test_burst_beyond_max_sessions_is_refused(tmp_path: Path) -> None:
    limit, burst = 4, 12

    async def main() -> None:
        relay = await RelayProcess.start(tmp_path / "relay", "[relay]\nmax_sessions = %d\n" % limit)
        try:
            async with asyncio.timeout(DEADLINE_S):
                clients = await asyncio.gather(
                    *(RawClient.connect(relay.port) for _ in range(burst))
                )
                answered = await asyncio.gather(*(c.handshake() for c in clients))
                assert sorted(answered) == [False] * (burst - limit) + [True] * limit
                for client in clients:  # drop them all; the relay sees the links lost
                    client.writer.close()
                await relay.wait_for_lines(CLOSED_LOST, limit, DEADLINE_S)
                assert relay.alive
                # The relay still serves once the burst is gone.
                member = Group.make(200, 1, 2).members[0]
                assert await member.sync(relay.port) == "ok"
            status = await relay.stop()
        finally:
            await relay.kill()
        stats = counters(status)
        rejected = sum(v for k, v in stats.items() if k.startswith("links.rejected."))
        assert rejected == burst - limit
        assert stats["links.opened"] == limit + 1
        assert stats["links.closed.ok"] == 1
        assert stats["entries.stored"] == 2

    asyncio.run(main())
