"""Shared pieces of the BLE tests: a relay peripheral and a phone central on BlueZoo adapters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from node.app.context import NodeContext
from node.app.peer import LinkDriver, SyncOutcome
from node.link import Link, LinkQueue, PeerAddress
from node.radio.central import BleCentral
from node.radio.peripheral import BlePeripheral
from node.store.sqlite import SQLiteStore
from node.sync.store import Limits
from tests.sync_helpers import SUITE, GroupLog, make_context

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
    adapter: str = "hci0", *, token: bytes = TOKEN, max_frame: int = MAX_FRAME, **kwargs: object
) -> AsyncIterator[Radio]:
    """A BlePeripheral serving on `adapter` until the block ends (waits for its registration)."""
    peripheral = BlePeripheral(adapter, lambda: token, max_frame, **kwargs)  # type: ignore[arg-type]
    accepted = LinkQueue(8)
    serving = asyncio.create_task(peripheral.serve(accepted))
    try:
        registered = asyncio.create_task(peripheral.wait_registered())
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.wait([serving, registered], return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            registered.cancel()
            serving.result()  # raises what serve raised
        yield Radio(peripheral, accepted, serving)
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


def phone(adapter: str = "hci1", **kwargs: object) -> BleCentral:
    return BleCentral(adapter, MAX_FRAME, connect_interval_s=0.0, **kwargs)  # type: ignore[arg-type]


ANY = PeerAddress("ble", "any")


# -- sessions over BLE: real LinkDrivers, real SQLite stores --------------------------------


def sqlite_context(directory: Path, role: int, group: GroupLog | None = None) -> NodeContext:
    """A NodeContext over a real SQLite store; a member's store holds `group`'s entries."""
    directory.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore.open_in(directory, SUITE.ed25519_verify, Limits())
    own = {}
    if group is not None:
        store.add_log(group.address, group.sign_pub, pinned=True)
        store.put_entries(group.entries, 1_000_000)
        store.commit()
        own = {group.address: (group.sign_pub, group.identity_signature)}
    return make_context(store, role, own=own)


async def run_driver(ctx: NodeContext, link: Link, initiator: bool) -> SyncOutcome:
    """One LinkDriver to its end, with the context's committer running beside it."""
    async with asyncio.TaskGroup() as tg:
        committer = tg.create_task(ctx.committer.run())
        outcome = await LinkDriver(ctx, link, initiator=initiator, until_synced=initiator).run()
        committer.cancel()
    return outcome


async def serve_links(ctx: NodeContext, radio: Radio, outcomes: asyncio.Queue[SyncOutcome]) -> None:
    """The relay's side: one driver per accepted link, outcomes in order of ending."""

    async def one(link: Link) -> None:
        outcomes.put_nowait(await run_driver(ctx, link, initiator=False))

    async with asyncio.TaskGroup() as tg:
        while True:
            link = await radio.accepted.get()
            tg.create_task(one(link))


def keys(ctx: NodeContext, address: str) -> list[tuple[int, bytes]]:
    return list(ctx.store.keyset(address))
