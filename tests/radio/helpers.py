"""Shared pieces of the BLE tests: a relay peripheral and a phone central on BlueZoo adapters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from node.link import LinkQueue, PeerAddress
from node.radio.central import BleCentral
from node.radio.peripheral import BlePeripheral

TOKEN = bytes.fromhex("0102030405060708")
MAX_FRAME = 1 << 18
DEADLINE_S = 20.0


@dataclass
class Radio:
    peripheral: BlePeripheral
    accepted: LinkQueue
    serving: asyncio.Task[None]


@contextlib.asynccontextmanager
async def relay_radio(
    adapter: str = "hci0", *, token: bytes = TOKEN, **kwargs: object
) -> AsyncIterator[Radio]:
    """A BlePeripheral serving on `adapter` until the block ends (waits for its registration)."""
    peripheral = BlePeripheral(adapter, lambda: token, MAX_FRAME, **kwargs)  # type: ignore[arg-type]
    accepted = LinkQueue(8)
    serving = asyncio.create_task(peripheral.serve(accepted))
    try:
        async with asyncio.timeout(DEADLINE_S):
            while peripheral.registrations == 0:
                if serving.done():
                    serving.result()  # raises what serve raised
                await asyncio.sleep(0.01)
        yield Radio(peripheral, accepted, serving)
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


def phone(adapter: str = "hci1", **kwargs: object) -> BleCentral:
    return BleCentral(adapter, MAX_FRAME, connect_interval_s=0.0, **kwargs)  # type: ignore[arg-type]


ANY = PeerAddress("ble", "any")
