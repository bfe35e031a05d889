"""One sync session from a member (desktop client) to a relay: `waystation peer sync`.

The member dials the relay's peer address (`tcp:HOST:PORT`; any kind it has a dialer for), runs
the same LinkDriver as the relay (initiator, until in sync), commits what it received, and
reports. A relay found by zeroconf (`--discover`) is the first
`_waystation._tcp` service that answers within the timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from node.app.context import Committer, LogPolicy, NodeContext
from node.app.peer import LinkDriver, SyncOutcome
from node.crypto.api import Suite
from node.errors import LinkError
from node.lan.tcp import TcpDialer, tcp_address
from node.link import MAX_FRAME_HINT, Dialers, PeerAddress
from node.proto.messages import ROLE_MEMBER
from node.proto.session import SessionLimits
from node.sync.store import Store

# The largest frame a member accepts from a relay: one whole Noise message.
MAX_FRAME = MAX_FRAME_HINT


def member_context(store: Store, suite: Suite, logs: dict[str, tuple[bytes, bytes]]) -> NodeContext:
    """A NodeContext for a member: declares only its own logs, accepts no others, fresh keys."""
    return NodeContext(
        store,
        suite,
        Committer(store, 0.0),
        LogPolicy(community=False, own=dict(logs), declare_all=False),
        SessionLimits(),
        static_private=None,  # a fresh Noise static key per session: unlinkable
        role=ROLE_MEMBER,
    )


def member_dialers() -> Dialers:
    """The transports a desktop member dials relays with (TCP)."""
    return Dialers([TcpDialer(MAX_FRAME)])


def ble_dialers(adapter: str, want_token: Callable[[bytes], bool] | None = None) -> Dialers:
    """A desktop member acting as a phone would: a BLE central on `adapter` (`peer sync --ble`);
    with `want_token`, only relays whose advertised token it accepts (a paired relay's).

    Raises:
        LinkError: the `ble` extra (bleak, dbus-fast) is not installed.
    """
    try:
        from node.radio.central import BleCentral
    except ImportError as exc:
        raise LinkError("BLE needs the ble extra: pip install 'waystation[ble]'") from exc
    return Dialers([BleCentral(adapter, MAX_FRAME, want_token=want_token)])


async def sync_with_relay(
    ctx: NodeContext,
    host: str,
    port: int,
    timeout: float,
    progress: Callable[[SyncOutcome], None] | None = None,
) -> SyncOutcome:
    """Sync every log of `ctx` with the relay at host:port over TCP (see `sync_with`).

    Raises:
        LinkError: the relay could not be reached.
        TimeoutError: the sync did not finish within `timeout` seconds.
    """
    return await sync_with(ctx, tcp_address(host, port), timeout, progress)


async def sync_with(
    ctx: NodeContext,
    address: PeerAddress,
    timeout: float,
    progress: Callable[[SyncOutcome], None] | None = None,
    dialers: Dialers | None = None,
) -> SyncOutcome:
    """Sync every log of `ctx` with the relay at `address`; returns how it went.

    Args:
        ctx: the member's context.
        address: the relay's peer address.
        timeout: seconds for the whole sync, dialing included.
        progress: called with the outcome so far whenever entries move.
        dialers: the transports to dial with (default: `member_dialers()`).

    Raises:
        LinkError: the relay could not be reached.
        TimeoutError: the sync did not finish within `timeout` seconds.
    """
    dialers = dialers or member_dialers()
    async with asyncio.timeout(timeout):
        link = await dialers.dial(address, min(timeout, 10.0))
        async with asyncio.TaskGroup() as tasks:
            committer = tasks.create_task(ctx.committer.run())
            try:
                outcome = await LinkDriver(
                    ctx, link, initiator=True, until_synced=True, progress=progress
                ).run()
            finally:
                committer.cancel()
    return outcome


async def discover_relay(timeout: float, interfaces: list[str] | None = None) -> tuple[str, int]:
    """The address of the first relay that answers on the LAN.

    Raises:
        LinkError: none answered within `timeout` seconds.
    """
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncZeroconf

    from node.lan.discovery import Browser

    if interfaces:
        azc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
    else:
        azc = AsyncZeroconf()
    browser = Browser(azc)
    try:
        await browser.start()
        try:
            async with asyncio.timeout(timeout):
                seen = await browser.events.get()
        except TimeoutError:
            raise LinkError("no relay answered on the LAN within %.0f s" % timeout) from None
        return seen.host, seen.port
    finally:
        await browser.close()
        await azc.async_close()
