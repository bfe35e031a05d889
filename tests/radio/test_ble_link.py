"""BleLink: frames both ways between the relay's GATT server and a central, and the clean end."""

from __future__ import annotations

import asyncio

from tests.radio.bus import PrivateBluez
from tests.radio.helpers import ANY, DEADLINE_S, phone, relay_radio


def test_frames_both_ways_and_a_clean_end(bluez: PrivateBluez) -> None:
    async def main() -> None:
        async with relay_radio() as radio:
            central = phone()
            link = await central.dial(ANY, DEADLINE_S)
            relay_link = await asyncio.wait_for(radio.accepted.get(), DEADLINE_S)
            await link.send([b"hello" * 100])
            got = await asyncio.wait_for(relay_link.recv(), DEADLINE_S)
            assert got == b"hello" * 100
            await relay_link.send([b"back" * 300])
            assert await asyncio.wait_for(link.recv(), DEADLINE_S) == b"back" * 300
            assert link.mtu == relay_link.mtu == 517
            await link.close()
            assert await asyncio.wait_for(relay_link.recv(), DEADLINE_S) is None

    asyncio.run(main())


def test_a_session_the_relay_ends_disconnects_its_central(bluez: PrivateBluez) -> None:
    """The relay's close of a link (session over, no error) asks BlueZ to disconnect the central:
    left connected, it keeps the adapter from advertising to the next phone (issue 11)."""

    async def main() -> None:
        async with relay_radio() as radio:
            link = await phone().dial(ANY, DEADLINE_S)
            relay_link = await asyncio.wait_for(radio.accepted.get(), DEADLINE_S)
            await relay_link.close()
            assert radio.peripheral.stats.get("ble.centrals.released", 0) == 1
            assert radio.peripheral.stats.get("ble.centrals.disconnected", 0) == 0
            assert radio.peripheral.links == []
            # the phone sees the LE connection end (between frames: a clean end)
            assert await asyncio.wait_for(link.recv(), DEADLINE_S) is None
            await link.close()

    asyncio.run(main())
