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
