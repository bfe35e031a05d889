"""BLE links under trouble: a central vanishing mid-transfer, hostile fragment streams, a full
relay, bluetoothd (BlueZoo) restarting, the adapter going away and coming back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from dbus_fast import BusType, Message, Variant
from dbus_fast.aio import MessageBus

from node.app.peer import SyncOutcome
from node.errors import LinkError
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.radio.link import BleLink
from tests.radio.bus import PrivateBluez
from tests.radio.helpers import (
    ANY,
    BAD_STREAMS,
    DEADLINE_S,
    group_with,
    hostile_central,
    keys,
    phone,
    relay_radio,
    run_driver,
    serve_links,
    sqlite_context,
)


def test_central_disconnects_mid_transfer_and_resumes(bluez: PrivateBluez, tmp_path: Path) -> None:
    group = group_with(21, 60, size=400)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio(max_mtu=23) as radio, asyncio.timeout(3 * DEADLINE_S):
            central = phone(max_mtu=23)
            link = await central.dial(ANY, DEADLINE_S)
            relay_link = await radio.accepted.get()
            assert isinstance(relay_link, BleLink)
            halfway = asyncio.Event()
            feed = relay_link.feed

            def counting_feed(packet: bytes) -> None:
                feed(packet)
                if relay_link.packets_in == 400:  # ~8 KB of ~30 KB, inside some frame
                    halfway.set()

            relay_link.feed = counting_feed  # type: ignore[method-assign]
            async with asyncio.TaskGroup() as tg:
                relay_side = tg.create_task(run_driver(relay, relay_link, initiator=False))
                phone_side = tg.create_task(run_driver(member, link, initiator=True))
                await halfway.wait()
                await link.close()  # the phone walks away
            first, relay_first = phone_side.result(), relay_side.result()
            assert not first.in_sync
            assert relay_first.reason == "lost", relay_first  # mid-frame: lost, not "ok"
            stored = len(keys(relay, group.address))
            assert stored < 60

            link = await central.dial(ANY, DEADLINE_S)  # back in range: same device again
            relay_link = await radio.accepted.get()
            async with asyncio.TaskGroup() as tg:
                relay_side = tg.create_task(run_driver(relay, relay_link, initiator=False))
                second = await run_driver(member, link, initiator=True)
            assert second.in_sync and second.reason == "ok"
            assert second.entries_sent == 60 - stored  # only what the relay still lacked
            assert radio.peripheral.stats.get("ble.centrals.gone", 0) >= 1

    asyncio.run(main())
    assert keys(relay, group.address) == keys(member, group.address)


@pytest.mark.parametrize("stream", sorted(BAD_STREAMS))
def test_hostile_fragment_stream_costs_only_that_link(
    bluez: PrivateBluez, tmp_path: Path, stream: str
) -> None:
    packets, reason, disconnected = BAD_STREAMS[stream]
    group = group_with(22, 10)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio(max_frame=4096) as radio, asyncio.timeout(3 * DEADLINE_S):
            outcomes: asyncio.Queue[SyncOutcome] = asyncio.Queue()
            async with asyncio.TaskGroup() as tg:
                serving = tg.create_task(serve_links(relay, radio, outcomes))
                honest = await phone("hci2").dial(ANY, DEADLINE_S)  # connected first, stays
                client, dropped = await hostile_central("hci1", packets, DEADLINE_S)
                # The honest phone syncs while the hostile link is open or ending.
                good = await run_driver(member, honest, initiator=True)
                assert good.in_sync and good.reason == "ok"
                ends = sorted([(await outcomes.get()).reason for _ in range(2)])
                assert ends == sorted(["ok", reason]), ends
                serving.cancel()
            # A framing error makes the relay disconnect that central at once
            # (ble.centrals.disconnected); a session error or deadline ends the session, and
            # the relay then releases the central (ble.centrals.released). Either way the relay
            # forgot the link and the hostile central, which never disconnects, is disconnected.
            stats = radio.peripheral.stats
            assert stats.get("ble.centrals.disconnected", 0) == disconnected, stats
            assert radio.peripheral.links == []
            await asyncio.wait_for(dropped.wait(), DEADLINE_S)
            await client.disconnect()

    asyncio.run(main())
    assert len(keys(relay, group.address)) == 10


def test_full_relay_says_so(bluez: PrivateBluez) -> None:
    async def main() -> None:
        async with relay_radio(max_links=1) as radio, asyncio.timeout(DEADLINE_S):
            first = await phone("hci1").dial(ANY, DEADLINE_S)
            with pytest.raises(LinkError) as caught:
                await phone("hci2").dial(ANY, DEADLINE_S)
            assert caught.value.cause == "Busy"
            assert radio.peripheral.stats["ble.refused.busy"] == 1
            await first.close()

    asyncio.run(main())


@pytest.mark.parametrize("trouble", ["bluetoothd-restart", "adapter-gone-and-back"])
def test_relay_registers_again_and_serves(
    bluez: PrivateBluez, tmp_path: Path, trouble: str
) -> None:
    group = group_with(23, 5)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio() as radio, asyncio.timeout(3 * DEADLINE_S):
            connected = await phone("hci1").dial(ANY, DEADLINE_S)
            relay_link = await radio.accepted.get()
            if trouble == "bluetoothd-restart":
                await asyncio.to_thread(bluez.restart_bluez)
            else:
                await bluez.call_bluezoo("RemoveAdapter", "y", [0])
                assert await relay_link.recv() is None  # the link ended with the adapter
                await bluez.call_bluezoo("AddAdapter", "ys", [0, bluez.addresses[0]])
            await radio.peripheral.wait_registered(2)
            assert await relay_link.recv() is None
            await connected.close()
            outcomes: asyncio.Queue[SyncOutcome] = asyncio.Queue()
            async with asyncio.TaskGroup() as tg:
                serving = tg.create_task(serve_links(relay, radio, outcomes))
                link = await phone("hci2").dial(ANY, DEADLINE_S)
                outcome = await run_driver(member, link, initiator=True)
                assert outcome.in_sync and (await outcomes.get()).reason == "ok"
                serving.cancel()

    asyncio.run(main())
    assert len(keys(relay, group.address)) == 5


def test_spoofed_bluez_signals_from_another_process_are_ignored(bluez: PrivateBluez) -> None:
    """Any process on the bus can send us signals; only the bus and bluetoothd are believed."""

    async def main() -> None:
        async with relay_radio() as radio, asyncio.timeout(DEADLINE_S):
            link = await phone("hci1").dial(ANY, DEADLINE_S)
            relay = radio.peripheral
            assert relay._bus is not None and len(relay.links) == 1
            rogue = await MessageBus(bus_type=BusType.SYSTEM).connect()
            device = relay.links[0].label.split("/")[1].split("#")[0]
            for path, iface, member, sig, body in [
                ("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged", "sss",
                 ["org.bluez", ":1.1", ""]),
                ("/", "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved", "oas",
                 [relay.adapter_path, ["org.bluez.Adapter1"]]),
                ("/org/bluez/hci0/" + device, "org.freedesktop.DBus.Properties",
                 "PropertiesChanged", "sa{sv}as",
                 ["org.bluez.Device1", {"Connected": Variant("b", False)}, []]),
            ]:  # fmt: skip
                signal = Message.new_signal(path, iface, member, sig, body)
                signal.destination = relay._bus.unique_name
                await rogue.send(signal)
            # A call after the signals returns after they were handled (same sender, in order).
            await rogue.call(
                Message(
                    destination=relay._bus.unique_name, path=relay.agent_path,
                    interface="org.bluez.Agent1", member="Cancel",
                )
            )  # fmt: skip
            rogue.disconnect()
            assert len(relay.links) == 1 and relay.registrations == 1
            await link.close()

    asyncio.run(main())
