"""Shared pieces of the BLE tests: a relay peripheral and a phone central on BlueZoo adapters.

The scenarios here run at both levels: tests/radio (BlueZoo, make test) and the real-BlueZ guest
(tests/bluez/guest/cases_bluez.py, make test-bluez), with each level's adapters and deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

from node.app.context import NodeContext
from node.app.peer import LinkDriver, SyncOutcome
from node.link import Link, LinkQueue, PeerAddress
from node.proto.fragment import FIRST, LAST
from node.proto.messages import ROLE_RELAY
from node.radio.central import BleCentral
from node.radio.peripheral import BlePeripheral
from node.radio.profile import DATA_IN_UUID, DATA_OUT_UUID, INFO_UUID, SERVICE_UUID, Info
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


def group_with(seed: int, count: int, size: int = 40) -> GroupLog:
    """A group log of `count` messages of `size` bytes."""
    group = GroupLog.make(seed)
    for i in range(count):
        group.append(("message %d " % i).ljust(size, "x"))
    return group


def two_relays_sync(tmp_path: Path, deadline_s: float, server: str, client: str) -> None:
    """Relay A's central (adapter `client`) reaches relay B's GATT server (adapter `server`);
    each ends with the other's log."""
    group_a, group_b = group_with(13, 15), group_with(14, 9)
    relay_a = sqlite_context(tmp_path / "a", ROLE_RELAY, group_a)
    relay_b = sqlite_context(tmp_path / "b", ROLE_RELAY, group_b)

    async def main() -> None:
        async with relay_radio(server) as radio, asyncio.timeout(deadline_s):
            link = await phone(client).dial(ANY, deadline_s)
            relay_link = await radio.accepted.get()
            async with asyncio.TaskGroup() as tg:
                b_side = tg.create_task(run_driver(relay_b, relay_link, initiator=False))
                outcome = await run_driver(relay_a, link, initiator=True)
            assert outcome.in_sync and outcome.reason == "ok", outcome
            assert b_side.result().reason == "ok", b_side.result()
            assert (outcome.entries_sent, outcome.entries_received) == (15, 9)

    asyncio.run(main())
    for group in (group_a, group_b):
        assert keys(relay_a, group.address) == keys(relay_b, group.address)


# stream -> (packets, how the relay's link ends, whether the relay asks BlueZ to disconnect).
# A lost or stray fragment costs only its frame (docs/protocol.md, "BLE fragments"): what the
# reassembler delivers then fails the session (Noise), or nothing arrives and the handshake
# deadline ends the link. Only what no loss explains (a frame past its limit) is a framing error
# that makes the relay drop the central at once. For a relay whose max_frame is 4096.
BAD_STREAMS = {
    # a whole frame whose counter skips ahead (fragments lost before it): delivered, and the
    # session refuses its bytes
    "gap": ([bytes((FIRST | LAST | 5,)) + b"x"], "malformed", 0),
    # a continuation with no frame started: discarded; the handshake never comes
    "orphan": ([bytes((0,)) + b"y" * 10], "timeout", 0),
    # a frame that never ends and grows past the relay's maximum (4096 bytes)
    "oversize": (
        [bytes((FIRST,)) + b"z" * 500] + [bytes((i,)) + b"z" * 500 for i in range(1, 12)],
        "too-large",
        1,
    ),
    # frame bytes that are no session message at all (Noise fails)
    "garbage": ([bytes((FIRST | LAST,)) + b"\xff" * 200], "malformed", 0),
}


async def hostile_central(
    adapter: str, packets: list[bytes], deadline_s: float
) -> tuple[BleakClient, asyncio.Event]:
    """A central that reads INFO, subscribes, then writes `packets` (tag filled in) until the
    relay disconnects it; the event is set once it has been disconnected.

    The first packet goes as a write request, as BleCentral's does (bluetoothd 5.66 acquires the
    relay's write socket on the first write and can lose a second write meanwhile, docs/ble.md).
    """
    device = await BleakScanner.find_device_by_filter(
        lambda d, a: SERVICE_UUID in a.service_data,
        timeout=deadline_s,
        bluez={"adapter": adapter},
    )
    assert device is not None
    dropped = asyncio.Event()
    client = BleakClient(
        device, disconnected_callback=lambda _c: dropped.set(), bluez={"adapter": adapter}
    )
    await client.connect()
    info = Info.decode(bytes(await client.read_gatt_char(INFO_UUID)))
    await client.start_notify(DATA_OUT_UUID, lambda _c, _d: None, bluez={"use_start_notify": True})
    for i, packet in enumerate(packets):
        if dropped.is_set():
            break
        try:
            await client.write_gatt_char(
                DATA_IN_UUID, bytes((info.link_id,)) + packet, response=i == 0
            )
        except BleakError:  # only the relay's disconnect may stop the stream: it must come
            await asyncio.wait_for(dropped.wait(), deadline_s)
            break
    return client, dropped
