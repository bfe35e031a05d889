"""100 members sync at once with one real relay process (issue 4, §4): nothing lost, all "ok".

20 groups x 5 members; each member wrote its own chain of entries into its group's messages log
and holds only those. Round 1: all 100 `peer sync` sessions run at once (each an in-process
LinkDriver over real loopback TCP, as `waystation peer sync` runs it). Round 2: all 100 again, at
once; afterwards every member holds every entry of its group. The relay's final status.json
(written at exit, after SIGTERM) must agree: 200 links closed "ok", nothing else, every entry
stored exactly once, no peer errors.

All 100 members run on this one host, so they come from one address: the relay is told to let
one source hold that many links (relay.max_links_per_source, relay.max_pending; the defaults
keep one address to half of max_sessions).

A second test opens a burst of sessions beyond relay.max_sessions: every one is admitted (the
newcomer is never the one refused); each time one opens at the limit the longest-idle session is
told Bye "idle" and closed, so exactly max_sessions remain, and the rest are counted.
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
CLOSED_IDLE = re.compile(r'logger=waystation\.daemon msg="tcp:\S+ closed: idle')
RELAY_CONFIG = """
[relay]
max_sessions = 128
max_pending = 128
max_links_per_source = 128
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


def test_burst_beyond_max_sessions_makes_room(tmp_path: Path) -> None:
    limit, burst = 4, 12

    async def main() -> None:
        relay = await RelayProcess.start(tmp_path / "relay", "[relay]\nmax_sessions = %d\n" % limit)
        try:
            async with asyncio.timeout(DEADLINE_S):
                clients = await asyncio.gather(
                    *(RawClient.connect(relay.port) for _ in range(burst))
                )
                answered = await asyncio.gather(*(c.handshake() for c in clients))
                assert answered == [True] * burst  # nobody refused
                await asyncio.gather(*(c.wait_open() for c in clients))
                # Every session beyond the limit made the longest-idle one yield.
                await relay.wait_for_lines(CLOSED_IDLE, burst - limit, DEADLINE_S)
                endings = [asyncio.create_task(c.until_closed()) for c in clients]
                done, still_open = await asyncio.wait(endings, timeout=0)
                while len(done) < burst - limit:  # the Byes already sent reach the clients
                    more, still_open = await asyncio.wait(
                        still_open, return_when=asyncio.FIRST_COMPLETED
                    )
                    done |= more
                byes = sorted(str(t.result()) for t in done)
                assert byes == ["idle"] * (burst - limit)
                for client in clients:  # drop the rest; the relay sees the links lost
                    client.writer.close()
                await asyncio.gather(*still_open)
                await relay.wait_for_lines(CLOSED_LOST, limit, DEADLINE_S)
                assert relay.alive
                # The relay still serves once the burst is gone.
                member = Group.make(200, 1, 2).members[0]
                assert await member.sync(relay.port) == "ok"
            status = await relay.stop()
        finally:
            await relay.kill()
        stats = counters(status)
        assert not [k for k in stats if k.startswith("links.rejected.")]
        assert stats["links.closed.idle"] == burst - limit
        assert stats["links.opened"] == burst + 1
        assert stats["links.closed.ok"] == 1
        assert stats["entries.stored"] == 2

    asyncio.run(main())
