"""A phone (bleak central, our session) syncs with the relay's GATT server through BlueZoo.

Real parts on both sides: the BlePeripheral registered with BlueZoo on hci0, a BleCentral on
hci1, LinkDrivers with Noise sessions and reconciliation, SQLite stores.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.app.peer import SyncOutcome
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.radio.profile import MAX_PACKET
from tests.radio.bus import PrivateBluez
from tests.radio.helpers import (
    ANY,
    DEADLINE_S,
    group_with,
    keys,
    phone,
    relay_radio,
    run_driver,
    serve_links,
    sqlite_context,
    two_relays_sync,
)


@pytest.mark.parametrize("acquire", [True, False], ids=["acquire", "dbus"])
def test_phone_syncs_with_relay_over_ble(
    bluez: PrivateBluez, tmp_path: Path, acquire: bool
) -> None:
    group = group_with(11, 40)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio(acquire=acquire) as radio:
            relay_outcomes: asyncio.Queue[SyncOutcome] = asyncio.Queue()
            async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tg:
                serving = tg.create_task(serve_links(relay, radio, relay_outcomes))
                central = phone()
                link = await central.dial(ANY, DEADLINE_S)
                assert link.kind == "ble" and link.frame_hint >= 1024
                outcome = await run_driver(member, link, initiator=True)
                assert outcome.in_sync and outcome.reason == "ok", outcome
                assert outcome.entries_sent == 40
                relay_outcome = await relay_outcomes.get()  # it ends on the phone's Bye
                serving.cancel()
            stats = radio.peripheral.stats
            if acquire:
                # Steady state over the sockets: not one WriteValue or PropertiesChanged.
                assert stats.get("ble.fd.in", 0) > 10 and stats.get("ble.fd.out", 0) > 0
                assert "dbus.writes" not in stats and "dbus.notify" not in stats
            else:
                assert stats.get("dbus.writes", 0) > 10 and stats.get("dbus.notify", 0) > 0
                assert "ble.fd.in" not in stats and "ble.fd.out" not in stats
        assert relay_outcome.reason == "ok" and relay_outcome.by_peer

    asyncio.run(main())
    assert keys(relay, group.address) == keys(member, group.address)
    assert len(keys(relay, group.address)) == 40


@pytest.mark.parametrize("max_mtu", [23, 517])
def test_smallest_and_largest_mtu(bluez: PrivateBluez, tmp_path: Path, max_mtu: int) -> None:
    """MTU 23 (20-byte ATT payloads) and the largest BlueZ grants (517): every packet fits."""
    group = group_with(12, 12, size=1200)
    member = sqlite_context(tmp_path / "phone", ROLE_MEMBER, group)
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> None:
        async with relay_radio(max_mtu=max_mtu) as radio, asyncio.timeout(DEADLINE_S):
            link = await phone().dial(ANY, DEADLINE_S)
            relay_link = await radio.accepted.get()
            async with asyncio.TaskGroup() as tg:
                relay_side = tg.create_task(run_driver(relay, relay_link, initiator=False))
                outcome = await run_driver(member, link, initiator=True)
            assert outcome.in_sync and relay_side.result().reason == "ok"
            packet = min(max_mtu - 3, MAX_PACKET)  # BlueZ takes attribute values up to 512 bytes
            for end in (link, relay_link):
                assert end.mtu == max_mtu
                assert end.largest_out <= packet
            assert link.largest_out == packet  # entries fill whole packets, never one byte more
            assert link.largest_in == relay_link.largest_out
            assert relay_link.largest_in == link.largest_out

    asyncio.run(main())
    assert len(keys(relay, group.address)) == 12


def test_two_relays_sync_over_ble(bluez: PrivateBluez, tmp_path: Path) -> None:
    """Relay A's central (hci1) reaches relay B's GATT server (hci0); each gets the other's log."""
    two_relays_sync(tmp_path, DEADLINE_S, server="hci0", client="hci1")


@pytest.mark.parametrize("acquire", [True, False], ids=["acquire", "dbus"])
def test_two_phones_at_once(bluez: PrivateBluez, tmp_path: Path, acquire: bool) -> None:
    """Two centrals sync at the same time. Without Acquire*, every notification reaches both
    (as in BlueZ 5.66): each phone keeps only its own link's packets, by the tag."""
    groups = [group_with(15, 25, size=600), group_with(16, 20, size=600)]
    phones = [
        sqlite_context(tmp_path / ("phone%d" % i), ROLE_MEMBER, g) for i, g in enumerate(groups)
    ]
    relay = sqlite_context(tmp_path / "relay", ROLE_RELAY)

    async def main() -> list[int]:
        async with relay_radio(acquire=acquire) as radio, asyncio.timeout(2 * DEADLINE_S):
            outcomes: asyncio.Queue[SyncOutcome] = asyncio.Queue()
            centrals = [phone("hci1"), phone("hci2")]
            async with asyncio.TaskGroup() as tg:
                serving = tg.create_task(serve_links(relay, radio, outcomes))
                links = [await c.dial(ANY, DEADLINE_S) for c in centrals]
                runs = [
                    tg.create_task(run_driver(ctx, link, initiator=True))
                    for ctx, link in zip(phones, links, strict=True)
                ]
                results = [await run for run in runs]
                relay_ends = [await outcomes.get(), await outcomes.get()]
                serving.cancel()
            assert all(r.in_sync and r.reason == "ok" for r in results), results
            assert all(r.reason == "ok" for r in relay_ends), relay_ends
            return [c.foreign_packets for c in centrals]

    foreign = asyncio.run(main())
    if not acquire:
        assert sum(foreign) > 0  # the broadcast really happened, and was filtered
    for ctx, group in zip(phones, groups, strict=True):
        assert keys(relay, group.address) == keys(ctx, group.address)
