"""Admission under load (issue 9 §3): honest members always get in.

A real relay process with the default configuration but relay.idle_session_s = 5 (so the test
sees idle sessions closed without waiting the default 30 s). From a second loopback address
(admission_load.HOSTILE_SOURCE, 127.0.0.2) 64 idle authenticated sessions (handshake and Hello,
then nothing but keepalives) and 300 slowloris connections (a byte every 2 s, never a whole
frame) keep reconnecting for the whole test. Once every attacker slot has tried once, 20 honest
members (5 groups x 4) sync from 127.0.0.1 at the same time; they sync again once the relay has
closed attackers at the handshake deadline (its log says so) and closed idle sessions. Every sync
must end "ok", and the relay must hold every honest entry. The final status.json must count the
attackers' refusals and closings under links.rejected.* and links.closed.idle / .timeout, and
the relay's stderr carries at most one admission summary line per reason per minute.

On the tree before admission control (max_sessions counted every link, handshaking or not; a
newcomer beyond it was closed) the honest syncs end "lost".
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path

from tests.integration.admission_load import Attack, run_attack
from tests.integration.relay_process import Group, RelayProcess, counters

DEADLINE_S = 120.0
ATTACK_START_S = 30.0  # every attacker slot has tried once
HONEST_SYNC_S = 30.0  # each honest sync's own deadline (sync_with_relay)
SUMMARY = re.compile(
    r'logger=waystation\.admission msg="(?:refused|closed) (\d+) links? in the last'
)
RELAY_CONFIG = """
[relay]
idle_session_s = 5
"""
CLOSED_TIMEOUT = re.compile(r'logger=waystation\.admission msg="closed \d+ links? .*: timeout')
CLOSED_IDLE = re.compile(r'logger=waystation\.admission msg="closed \d+ links? .*: idle')


def test_honest_members_get_in_under_slowloris_and_idle_sessions(tmp_path: Path) -> None:
    groups = [Group.make(40 + 2 * g, 4, 3) for g in range(5)]
    members = [m for g in groups for m in g.members]
    attack = Attack()

    async def main() -> tuple[list[str], dict[str, object], list[str], float]:
        relay = await RelayProcess.start(tmp_path / "relay", RELAY_CONFIG)
        started = time.monotonic()
        try:
            async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tasks:
                attackers = tasks.create_task(run_attack(relay.port, attack))
                try:
                    async with asyncio.timeout(ATTACK_START_S):
                        await attack.started.wait()
                    outcomes = await asyncio.gather(
                        *(m.sync(relay.port, HONEST_SYNC_S) for m in members)
                    )
                    assert outcomes == ["ok"] * len(members), Counter(outcomes)
                    await relay.wait_for_line(CLOSED_TIMEOUT, DEADLINE_S / 2)
                    await relay.wait_for_line(CLOSED_IDLE, DEADLINE_S / 2)
                    outcomes += await asyncio.gather(
                        *(m.sync(relay.port, HONEST_SYNC_S) for m in members)
                    )
                finally:
                    attack.stop.set()
                await attackers
            assert relay.alive, relay.tail()
            status = await relay.stop()
        finally:
            await relay.kill()
        return outcomes, status, relay.lines, time.monotonic() - started

    outcomes, status, lines, elapsed = asyncio.run(main())

    assert outcomes == ["ok"] * 2 * len(members), Counter(outcomes)
    # The attack was real: hundreds of connections, idle sessions that opened.
    assert attack.connected["trickle"] >= 300, attack.connected
    assert attack.sessions >= 1, attack
    stats = counters(status)
    honest_entries = {e.cid for g in groups for e in g.entries}
    assert stats["entries.stored"] == len(honest_entries)
    rejected = {k: v for k, v in stats.items() if k.startswith("links.rejected.")}
    assert sum(rejected.values()) > 0, stats
    assert stats.get("links.closed.timeout", 0) > 0, stats  # tricklers cut at the deadline
    assert stats.get("links.closed.idle", 0) > 0, stats  # idlers closed
    assert attack.byes["idle"] > 0, attack.byes  # and told why
    # One summary line per reason per minute at most.
    reasons = len(rejected) + 2  # and the two closing reasons the summary may name
    windows = 1 + int(elapsed // 60)
    assert len([line for line in lines if SUMMARY.search(line)]) <= reasons * windows
