"""Level 2 cases: our BLE code against a real bluetoothd and the kernel's Bluetooth stack.

Run inside the x86-64 guest by runner.py (never on the host: the host's pytest ignores this
folder). hci0 and hci1 are two btvirt virtual LE controllers on one virtual radio; bluetoothd
is Debian bookworm's (5.66) with --experimental. The relay's BlePeripheral serves on hci0, a
"phone" (BleCentral, bleak) dials from hci1; both run the real LinkDriver over real SQLite
stores. Values worth keeping (the MTU the stack grants, D-Bus messages per data packet) are
recorded with `record_property` and reach the host in the test's report.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bluez_guest import (
    adapter_property,
    bluetoothd_pid,
    bus_monitor,
    disconnect_all,
    journal,
    managed_objects,
    wait_adapters,
)
from dbus_fast import BusType
from dbus_fast.aio import MessageBus

from node.app.peer import SyncOutcome
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.radio.link import BleLink
from tests.radio.helpers import (
    ANY,
    group_with,
    keys,
    phone,
    relay_radio,
    run_driver,
    serve_links,
    sqlite_context,
    two_relays_sync,
)

DEADLINE_S = 120.0  # software-emulated CPU: generous, but every wait has one
logging.getLogger("bleak").setLevel(logging.INFO)  # the cases log at DEBUG (guest-pytest.ini)
Record = Callable[[str, object], None]


@pytest.fixture(autouse=True)
def no_connection_left(record_property: Record) -> Iterator[None]:
    """After each case, no LE connection is left up; one that was is recorded (and dropped)."""
    yield
    left = asyncio.run(disconnect_all(DEADLINE_S))
    if left:
        record_property("connections_left_up", left)
        logging.getLogger("waystation.test").warning("connections left up: %s", left)


@pytest.fixture(autouse=True)
def bluetoothd_survives(request: pytest.FixtureRequest) -> Iterator[None]:
    """bluetoothd must outlive every case; if it died, say so (with its journal) and revive it.

    The restart case replaces bluetoothd on purpose: there the new one must be running.
    """
    before = bluetoothd_pid()
    assert before, "bluetoothd is not running before the case:\n" + journal()
    yield
    after = bluetoothd_pid()
    restarts = "restart" in request.node.name
    if after and (after == before or restarts):
        return
    tail = journal(60)
    subprocess.run(["systemctl", "restart", "bluetooth.service"], check=True, timeout=60)
    asyncio.run(wait_adapters(("hci0", "hci1"), DEADLINE_S))
    pytest.fail("bluetoothd (pid %d) exited during the case; journal:\n%s" % (before, tail))


def test_both_controllers_appear(record_property: Record) -> None:
    async def main() -> None:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        try:
            objects = await managed_objects(bus)
        finally:
            bus.disconnect()
        adapters = {
            p: i["org.bluez.Adapter1"] for p, i in objects.items() if "org.bluez.Adapter1" in i
        }
        assert sorted(adapters) == ["/org/bluez/hci0", "/org/bluez/hci1"], sorted(adapters)
        addresses = {p: a["Address"] for p, a in adapters.items()}
        assert len(set(addresses.values())) == 2, addresses
        for path, ifaces in objects.items():
            if path in adapters:
                assert "org.bluez.GattManager1" in ifaces, (path, sorted(ifaces))
                assert "org.bluez.LEAdvertisingManager1" in ifaces, (path, sorted(ifaces))
        record_property("addresses", addresses)
        record_property(
            "supported_instances",
            objects["/org/bluez/hci0"]["org.bluez.LEAdvertisingManager1"].get("SupportedInstances"),
        )

    asyncio.run(main())


def test_peripheral_registers_application_and_advertisement() -> None:
    async def main() -> None:
        before = await adapter_property("hci0", "ActiveInstances")
        async with relay_radio("hci0") as radio:
            assert radio.peripheral.registrations == 1
            assert await adapter_property("hci0", "ActiveInstances") == before + 1
        # the relay unregisters its advertisement when it stops
        assert await adapter_property("hci0", "ActiveInstances") == before

    asyncio.run(main())


@pytest.mark.parametrize("acquire", [True, False], ids=["acquire", "dbus"])
def test_phone_finds_connects_and_syncs(
    tmp_path: Path, acquire: bool, record_property: Record
) -> None:
    """Scan by service UUID, connect, MTU exchange, a whole session both ways over real BlueZ."""
    group = group_with(31, 40, size=300)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio("hci0", acquire=acquire) as radio:
            assert radio.peripheral._bus is not None
            relay_name = radio.peripheral._bus.unique_name
            outcomes: asyncio.Queue[SyncOutcome] = asyncio.Queue()
            async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tg:
                serving = tg.create_task(serve_links(relay, radio, outcomes))
                central = phone("hci1")
                link = await central.dial(ANY, DEADLINE_S)
                assert isinstance(link, BleLink)
                record_property("central_mtu", link.mtu)
                async with bus_monitor(
                    "org.bluez", relay_name, broadcast_under="/org/bluez/hci0"
                ) as monitor:
                    outcome = await run_driver(member, link, initiator=True)
                    relay_outcome = await outcomes.get()
                serving.cancel()
            stats = dict(radio.peripheral.stats)
        record_property("relay_stats", stats)
        record_property("dbus_messages_relay_bluez", monitor.messages)
        record_property("dbus_by_member", monitor.by_member)
        assert outcome.in_sync and outcome.reason == "ok", outcome
        assert relay_outcome.reason == "ok", relay_outcome
        assert outcome.entries_sent == 40
        packets = stats.get("ble.fd.in", 0) + stats.get("ble.fd.out", 0)
        packets += stats.get("dbus.writes", 0) + stats.get("dbus.notify", 0)
        record_property("data_packets", packets)
        record_property("dbus_per_packet", round(monitor.messages / max(1, packets), 3))
        if acquire:
            assert stats.get("ble.fd.in", 0) > 10 and stats.get("ble.fd.out", 0) > 0, stats
            assert "dbus.writes" not in stats and "dbus.notify" not in stats, stats
            assert monitor.messages < packets / 10, (monitor.messages, monitor.by_member)
        else:
            assert stats.get("dbus.writes", 0) > 10 and stats.get("dbus.notify", 0) > 0, stats

    asyncio.run(main())
    assert keys(relay, group.address) == keys(member, group.address)
    assert len(keys(relay, group.address)) == 40


@pytest.mark.parametrize("max_mtu", [23, 517])
def test_smallest_and_largest_mtu(tmp_path: Path, max_mtu: int, record_property: Record) -> None:
    group = group_with(32, 8, size=1200)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio("hci0", max_mtu=max_mtu) as radio:
            async with asyncio.timeout(DEADLINE_S):
                link = await phone("hci1", max_mtu=max_mtu).dial(ANY, DEADLINE_S)
                relay_link = await radio.accepted.get()
                assert isinstance(link, BleLink) and isinstance(relay_link, BleLink)
                record_property("central_mtu", link.mtu)
                record_property("relay_mtu", relay_link.mtu)
                async with asyncio.TaskGroup() as tg:
                    relay_side = tg.create_task(run_driver(relay, relay_link, initiator=False))
                    outcome = await run_driver(member, link, initiator=True)
                assert outcome.in_sync and relay_side.result().reason == "ok", (
                    outcome, relay_side.result(), radio.peripheral.stats
                )  # fmt: skip
                assert link.mtu <= max_mtu and relay_link.mtu <= max_mtu
                record_property("largest_in", relay_link.largest_in)
                assert relay_link.largest_in <= relay_link.mtu - 3

    asyncio.run(main())
    assert len(keys(relay, group.address)) == 8


def test_central_disconnects_mid_transfer_and_resumes(tmp_path: Path) -> None:
    group = group_with(33, 60, size=400)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio("hci0", max_mtu=23) as radio, asyncio.timeout(3 * DEADLINE_S):
            central = phone("hci1", max_mtu=23)
            link = await central.dial(ANY, DEADLINE_S)
            relay_link = await radio.accepted.get()
            assert isinstance(relay_link, BleLink)
            halfway = asyncio.Event()
            feed = relay_link.feed

            def counting_feed(packet: bytes) -> None:
                feed(packet)
                if relay_link.packets_in == 300:  # inside some frame, well before the end
                    halfway.set()

            relay_link.feed = counting_feed  # type: ignore[method-assign]
            async with asyncio.TaskGroup() as tg:
                relay_side = tg.create_task(run_driver(relay, relay_link, initiator=False))
                phone_side = tg.create_task(run_driver(member, link, initiator=True))
                try:
                    async with asyncio.timeout(DEADLINE_S):
                        await halfway.wait()
                except TimeoutError:
                    raise AssertionError(
                        "no 300th packet: relay in %d out %d, phone in %d out %d; relay %s"
                        % (relay_link.packets_in, relay_link.packets_out, link.packets_in,
                           link.packets_out, radio.peripheral.stats)
                    ) from None  # fmt: skip
                await link.close()  # the phone walks away: a real LE disconnection
            first, relay_first = phone_side.result(), relay_side.result()
            assert not first.in_sync
            assert relay_first.reason == "lost", relay_first
            stored = len(keys(relay, group.address))
            assert stored < 60

            link = await central.dial(ANY, DEADLINE_S)  # back in range
            relay_link = await radio.accepted.get()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_driver(relay, relay_link, initiator=False))
                second = await run_driver(member, link, initiator=True)
            assert second.in_sync and second.reason == "ok", second
            assert second.entries_sent == 60 - stored

    asyncio.run(main())
    assert keys(relay, group.address) == keys(member, group.address)


def test_bluetoothd_restart_under_a_connected_relay(tmp_path: Path) -> None:
    group = group_with(34, 5)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio("hci0") as radio, asyncio.timeout(3 * DEADLINE_S):
            connected = await phone("hci1").dial(ANY, DEADLINE_S)
            relay_link = await radio.accepted.get()
            await asyncio.to_thread(
                subprocess.run,
                ["systemctl", "restart", "bluetooth.service"],
                check=True,
                timeout=DEADLINE_S,
            )
            assert await relay_link.recv() is None  # the link ended with bluetoothd
            await radio.peripheral.wait_registered(2)
            await wait_adapters(("hci0", "hci1"), DEADLINE_S)
            await connected.close()
            outcomes: asyncio.Queue[SyncOutcome] = asyncio.Queue()
            async with asyncio.TaskGroup() as tg:
                serving = tg.create_task(serve_links(relay, radio, outcomes))
                link = await phone("hci1").dial(ANY, DEADLINE_S)
                outcome = await run_driver(member, link, initiator=True)
                assert outcome.in_sync and (await outcomes.get()).reason == "ok", outcome
                serving.cancel()

    asyncio.run(main())
    assert len(keys(relay, group.address)) == 5


def test_two_relays_sync(tmp_path: Path) -> None:
    """A relay's central (hci1) reaches another relay's GATT server (hci0): both logs both ways."""
    two_relays_sync(tmp_path, DEADLINE_S, server="hci0", client="hci1")
