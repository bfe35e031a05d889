"""Shared test helpers: real group logs of signed entries, and node contexts over real stores."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

from node.app.context import Committer, LogPolicy, NodeContext
from node.app.peer import LinkDriver, SyncOutcome
from node.crypto._nacl import NaclSuite
from node.crypto.address import MESSAGES_STORE, store_address
from node.crypto.keys import multi_member_group_from_seeds
from node.lan.tcp import TcpLink, connect
from node.link import Link
from node.proto.messages import ROLE_RELAY
from node.proto.session import SessionLimits
from node.sync.entry import Entry, create_entry
from node.sync.store import MemoryStore, Store

SUITE = NaclSuite()


@dataclass
class GroupLog:
    """A writer of one group's messages log (what a member device does)."""

    address: str
    sign_pub: bytes
    sign_secret: bytes
    entries: list[Entry]

    @classmethod
    def make(cls, seed: int) -> GroupLog:
        """A group from a one-byte seed (0..254)."""
        return cls._from_seeds(bytes([seed]) * 32, bytes([seed + 1]) * 32)

    @classmethod
    def make_indexed(cls, index: int) -> GroupLog:
        """A group for any non-negative index (many distinct groups)."""
        seed = b"group" + index.to_bytes(8, "big")
        return cls._from_seeds(seed.ljust(32, b"g"), seed.ljust(32, b"s"))

    @classmethod
    def _from_seeds(cls, group_seed: bytes, secret: bytes) -> GroupLog:
        group, _ = multi_member_group_from_seeds(SUITE, group_seed, secret)
        sign_pub, sign_secret = group.signing_keypair(SUITE)
        address = store_address(SUITE, group.public_key, sign_pub, MESSAGES_STORE)
        return cls(address, sign_pub, sign_secret, [])

    @property
    def identity_signature(self) -> bytes:
        return SUITE.ed25519_sign(self.sign_secret, self.sign_pub.hex().encode())

    def append(self, text: str, next_entries: list[Entry] | None = None) -> Entry:
        parents = next_entries if next_entries is not None else self.entries[-1:]
        time = max((p.clock_time for p in parents), default=0) + 1
        payload = '{"op":"ADD","value":"%s"}' % base64.b64encode(text.encode()).decode()
        entry = create_entry(
            self.address,
            payload,
            [p.cid for p in parents],
            [],
            time,
            self.sign_pub,
            lambda m: SUITE.ed25519_sign(self.sign_secret, m),
        )
        self.entries.append(entry)
        return entry


def make_context(
    store: Store,
    role: int,
    own: dict[str, tuple[bytes, bytes]] | None = None,
    community: bool = True,
    limits: SessionLimits | None = None,
) -> NodeContext:
    policy = LogPolicy(community=community, own=own or {}, declare_all=(role == ROLE_RELAY))
    return NodeContext(
        store,
        SUITE,
        Committer(store, 0.0),
        policy,
        limits or SessionLimits(),
        static_private=SUITE.random_bytes(32) if role == ROLE_RELAY else None,
        role=role,
    )


def pair_device(relay: NodeContext, member: NodeContext, quota: int = 1 << 20) -> None:
    """Make `member` a paired device of `relay` (a SQLiteStore's context): the relay gets its
    RelayPairing and the device row; the member keeps one static key for its sessions."""
    from node.app.pairing import RelayPairing
    from node.store.devices import Device, DeviceBook
    from node.store.sqlite import SQLiteStore

    assert isinstance(relay.store, SQLiteStore) and relay.static_private is not None
    if relay.pairing is None:
        relay.pairing = RelayPairing(
            SUITE,
            DeviceBook(relay.store),
            relay.store.commit,
            SUITE.x25519_public(relay.static_private),
            120,
            quota,
        )
    if member.static_private is None:
        member.static_private = SUITE.random_bytes(32)
    key = SUITE.x25519_public(member.static_private)
    relay.pairing.devices.add(Device(key, "phone", "device", quota, 0))
    relay.store.commit()


def member_store(log: GroupLog) -> MemoryStore:
    store = MemoryStore(SUITE.ed25519_verify)
    store.add_log(log.address, log.sign_pub, pinned=True)
    store.put_entries(log.entries, 1_000_000)
    store.commit()
    return store


async def serve_one(
    ctx: NodeContext,
    handler_done: asyncio.Future[SyncOutcome],
    until_synced: bool = False,
) -> asyncio.Server:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.TaskGroup() as tg:
            committer = tg.create_task(ctx.committer.run())
            link = TcpLink(reader, writer, 1 << 17)
            outcome = await LinkDriver(ctx, link, initiator=False, until_synced=until_synced).run()
            committer.cancel()
        handler_done.set_result(outcome)

    return await asyncio.start_server(on_connect, "127.0.0.1", 0)


async def sync_over_tcp(
    member: NodeContext, relay: NodeContext, timeout: float = 30.0
) -> tuple[SyncOutcome, SyncOutcome]:
    """One member-initiated sync over a real loopback TCP connection; both outcomes."""
    loop = asyncio.get_running_loop()
    relay_done: asyncio.Future[SyncOutcome] = loop.create_future()
    server = await serve_one(relay, relay_done)
    port = server.sockets[0].getsockname()[1]
    async with server:
        link = await connect("127.0.0.1", port, 1 << 17, 5.0)
        async with asyncio.timeout(timeout):
            async with asyncio.TaskGroup() as tg:
                committer = tg.create_task(member.committer.run())
                outcome = await LinkDriver(member, link, initiator=True, until_synced=True).run()
                committer.cancel()
            relay_outcome = await relay_done
    return outcome, relay_outcome


async def drive_pair(
    member: NodeContext,
    relay: NodeContext,
    member_link: Link,
    relay_link: Link,
    timeout: float = 60.0,
    drivers: list[LinkDriver] | None = None,
) -> tuple[SyncOutcome, SyncOutcome]:
    """One member-initiated sync over two given ends of a link (a pipe, say); both outcomes.

    Each side runs its own committer, as the daemon and `peer sync` do. `drivers`, if given,
    receives the two LinkDrivers (member first) for a look at their sessions afterwards.
    """

    async def side(ctx: NodeContext, link: Link, initiator: bool) -> SyncOutcome:
        driver = LinkDriver(ctx, link, initiator=initiator, until_synced=initiator)
        if drivers is not None:
            drivers.append(driver)
        async with asyncio.TaskGroup() as tg:
            committer = tg.create_task(ctx.committer.run())
            try:
                return await driver.run()
            finally:
                committer.cancel()

    async with asyncio.timeout(timeout), asyncio.TaskGroup() as tg:
        member_task = tg.create_task(side(member, member_link, True))
        relay_task = tg.create_task(side(relay, relay_link, False))
    return member_task.result(), relay_task.result()
