"""The daemon with [radio.ble] enabled: a phone's BLE link reaches it like a TCP connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.app.config import parse_config
from node.app.daemon import Daemon
from node.app.sync_client import member_context, sync_with
from node.crypto._nacl import NaclSuite
from node.link import Dialers, PeerAddress
from node.radio.peripheral import BlePeripheral, central_source
from tests.radio.bus import PrivateBluez
from tests.radio.helpers import DEADLINE_S, phone
from tests.sync_helpers import GroupLog, member_store

CONFIG = (
    '[lan]\nlisten = ["127.0.0.1:0"]\nzeroconf = false\n'
    "[store]\ncommit_interval_ms = 0\n"
    '[radio.ble]\nenabled = true\nadapter = "hci0"\nmax_mtu = 185\n'
)


def test_phone_syncs_with_the_daemon_over_ble(bluez: PrivateBluez, tmp_path: Path) -> None:
    suite = NaclSuite()
    daemon = Daemon(parse_config(CONFIG), suite, tmp_path / "relay")
    group = GroupLog.make(90)
    for i in range(7):
        group.append("over the air %d" % i)

    async def scenario() -> tuple[int, str]:
        running = asyncio.create_task(daemon.run())
        async with asyncio.timeout(DEADLINE_S):
            await daemon.started.wait()
            [radio] = daemon.radios
            assert isinstance(radio, BlePeripheral)
            await radio.wait_registered()
        logs = {group.address: (group.sign_pub, group.identity_signature)}
        outcome = await sync_with(
            member_context(member_store(group), suite, logs),
            PeerAddress("ble", "any"),
            DEADLINE_S,
            dialers=Dialers([phone("hci1")]),
        )
        assert outcome.in_sync and outcome.reason == "ok", outcome
        assert daemon.ctx is not None
        stored = len(daemon.ctx.store.keyset(group.address))
        token = radio.advertisement.token
        daemon.stop()
        await running
        return stored, token.hex()

    stored, token = asyncio.run(scenario())
    assert stored == 7
    assert token == daemon._token().hex()  # the relay's own rotating token is advertised


def test_daemon_without_bluetoothd_keeps_relaying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No system bus at all: the BLE radio logs that it did not start; TCP still serves."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=%s" % (tmp_path / "no-bus"))
    daemon = Daemon(parse_config(CONFIG), NaclSuite(), tmp_path / "relay")

    async def scenario() -> int:
        running = asyncio.create_task(daemon.run())
        async with asyncio.timeout(DEADLINE_S):
            await daemon.started.wait()
            while daemon.ctx is None or "radio.ble.failed" not in daemon.ctx.stats:  # our task
                await asyncio.sleep(0.01)
        assert not running.done()
        port = daemon.port
        daemon.stop()
        await running
        return port or 0

    assert asyncio.run(scenario()) > 0


def test_each_central_is_its_own_admission_source(bluez: PrivateBluez, tmp_path: Path) -> None:
    """With one link per source, two phones still sync at once: each central is a source of its
    own (its Bluetooth address), not one "BLE" source all phones share."""
    suite = NaclSuite()
    config = CONFIG + "[relay]\nmax_links_per_source = 1\nmax_handshakes_per_source = 1\n"
    daemon = Daemon(parse_config(config), suite, tmp_path / "relay")
    groups = [GroupLog.make(91), GroupLog.make(92)]
    for group in groups:
        group.append("from one phone of two")

    async def one_phone(group: GroupLog, adapter: str) -> str:
        logs = {group.address: (group.sign_pub, group.identity_signature)}
        outcome = await sync_with(
            member_context(member_store(group), suite, logs),
            PeerAddress("ble", "any"),
            DEADLINE_S,
            dialers=Dialers([phone(adapter)]),
        )
        return outcome.reason

    async def scenario() -> tuple[list[str], dict[str, int]]:
        running = asyncio.create_task(daemon.run())
        try:
            async with asyncio.timeout(2 * DEADLINE_S):
                await daemon.started.wait()
                [radio] = daemon.radios
                assert isinstance(radio, BlePeripheral)
                await radio.wait_registered()
                reasons = list(
                    await asyncio.gather(one_phone(groups[0], "hci1"), one_phone(groups[1], "hci2"))
                )
        finally:
            daemon.stop()
            await running
        assert daemon.ctx is not None
        return reasons, dict(daemon.ctx.stats)

    reasons, stats = asyncio.run(scenario())
    assert reasons == ["ok", "ok"]
    assert not any(name.startswith("links.rejected.") for name in stats), stats


def test_central_source_is_the_bluetooth_address() -> None:
    assert central_source("/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF") == "ble:AA:BB:CC:DD:EE:FF"
