"""The daemon behind the seam, in process: listeners from lan.listen (IPv4 and IPv6 on one
port), accepted links through the LinkQueue, members dialing either address by peer address."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from node.app.config import parse_config
from node.app.daemon import Daemon
from node.app.sync_client import member_context, sync_with
from node.crypto._nacl import NaclSuite
from node.lan.tcp import tcp_address
from node.sync.store import MemoryStore
from tests.sync_helpers import GroupLog, member_store


def test_members_sync_over_both_families_through_the_link_queue(tmp_path: Path) -> None:
    suite = NaclSuite()
    config = parse_config(
        '[lan]\nlisten = ["127.0.0.1:0", "[::1]:0"]\nzeroconf = false\n'
        "[store]\ncommit_interval_ms = 0\n"
    )
    daemon = Daemon(config, suite, tmp_path / "relay")
    groups = [GroupLog.make(80), GroupLog.make(82)]
    for index, group in enumerate(groups):
        for i in range(5 + index):
            group.append("%d-%d" % (index, i))

    async def scenario() -> tuple[list[str], list[int], list[str]]:
        running = asyncio.create_task(daemon.run())
        async with asyncio.timeout(30):
            await daemon.started.wait()
        assert daemon.port is not None
        assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's way
        labels = []
        for group, host in zip(groups, ("127.0.0.1", "::1"), strict=True):
            store: MemoryStore = member_store(group)
            logs = {group.address: (group.sign_pub, group.identity_signature)}
            outcome = await sync_with(
                member_context(store, suite, logs), tcp_address(host, daemon.port), 30.0
            )
            assert outcome.in_sync and outcome.reason == "ok", outcome
            labels.append(outcome.reason)
        assert daemon.ctx is not None
        counts = [len(daemon.ctx.store.keyset(g.address)) for g in groups]
        listening = list(daemon.status()["listening"])  # type: ignore[call-overload]
        daemon.stop()
        await running
        return labels, counts, listening

    labels, counts, listening = asyncio.run(scenario())
    assert labels == ["ok", "ok"]
    assert counts == [5, 6]
    assert listening == ["127.0.0.1:%d" % daemon.port, "[::1]:%d" % daemon.port]


def test_store_journal_from_the_config_reaches_the_store(tmp_path: Path) -> None:
    """`store.journal = "rollback"` (docs/store.md "Why WAL"): the daemon's store keeps a rollback
    journal beside the file while it runs (entries synced and committed through it), deletes it
    at a clean stop, and the file is a rollback-journal database (header bytes 18-19 = 1, 1;
    WAL's are 2, 2)."""
    suite = NaclSuite()
    config = parse_config(
        '[lan]\nlisten = ["127.0.0.1:0"]\nzeroconf = false\n'
        '[store]\ncommit_interval_ms = 0\njournal = "rollback"\n'
    )
    data = tmp_path / "relay"
    daemon = Daemon(config, suite, data)
    group = GroupLog.make(84)
    for i in range(5):
        group.append("j-%d" % i)

    async def scenario() -> list[str]:
        running = asyncio.create_task(daemon.run())
        async with asyncio.timeout(30):
            await daemon.started.wait()
        assert daemon.port is not None
        logs = {group.address: (group.sign_pub, group.identity_signature)}
        outcome = await sync_with(
            member_context(member_store(group), suite, logs),
            tcp_address("127.0.0.1", daemon.port),
            30.0,
        )
        assert outcome.in_sync and outcome.reason == "ok", outcome
        beside = sorted(p.name for p in data.glob("store.sqlite3*"))
        daemon.stop()
        await running
        return beside

    assert asyncio.run(scenario()) == ["store.sqlite3", "store.sqlite3-journal"]
    assert sorted(p.name for p in data.glob("store.sqlite3*")) == ["store.sqlite3"]
    assert (data / "store.sqlite3").read_bytes()[18:20] == b"\x01\x01"
