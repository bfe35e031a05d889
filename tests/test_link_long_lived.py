"""Long-lived member sessions: an online member keeps receiving pushes.

A push that was delivered (stored from this link, or acknowledged by the peer) starts no pass;
anything else that changed a KeySet still does (tests below fail either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from node.app.context import NodeContext
from node.app.peer import MAX_PASSES, LinkDriver, SyncOutcome
from node.errors import LinkError
from node.lan.tcp import TcpLink, connect
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.sync.entry import Entry
from node.sync.store import MemoryStore, Store
from tests.sync_helpers import SUITE, GroupLog, make_context

if TYPE_CHECKING:
    from node.sync.keyset import Key

OFFERS = 3 * MAX_PASSES


class Online:
    """A member whose session stays open; records the keys its driver stores."""

    def __init__(self, group: GroupLog) -> None:
        self.store = MemoryStore(SUITE.ed25519_verify)
        self.store.add_log(group.address, group.sign_pub, pinned=True)
        own = {group.address: (group.sign_pub, group.identity_signature)}
        self.ctx: NodeContext = make_context(self.store, ROLE_MEMBER, own=own, community=False)
        self.received: list[Key] = []
        self.changed = asyncio.Event()
        self.ctx.hub.subscribe(self._stored)
        self.driver: LinkDriver | None = None
        self.task: asyncio.Task[SyncOutcome] | None = None

    def _stored(self, _address: str, keys: list[Key], source: object) -> None:
        if source is not None:
            self.received.extend(keys)
            self.changed.set()

    async def open(self, port: int) -> None:
        link = await connect("127.0.0.1", port, 1 << 17, 5.0)
        self.driver = LinkDriver(self.ctx, link, initiator=True, until_synced=False)
        self.task = asyncio.create_task(self._run(self.driver))

    async def _run(self, driver: LinkDriver) -> SyncOutcome:
        committer = asyncio.create_task(self.ctx.committer.run())
        try:
            return await driver.run()
        finally:
            committer.cancel()

    async def until(self, predicate: object) -> None:
        assert callable(predicate)
        while not predicate():
            assert self.task is not None
            assert not self.task.done(), self.task.result()
            self.changed.clear()
            await self.changed.wait()


@contextlib.asynccontextmanager
async def in_process_relay(store: Store | None = None) -> AsyncIterator[tuple[NodeContext, int]]:
    """A relay (responder LinkDrivers over loopback TCP) in this process: (context, port)."""
    relay = make_context(store or MemoryStore(SUITE.ed25519_verify), ROLE_RELAY)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        driver = LinkDriver(relay, TcpLink(reader, writer, 1 << 17), initiator=False)
        await driver.run()

    relay_committer = asyncio.create_task(relay.committer.run())
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield relay, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        relay_committer.cancel()


async def wait_first_pass(member: Online) -> None:
    assert member.driver is not None
    await member.driver.wait_in_sync()
    assert member.driver.outcome.in_sync


def push(member: Online, address: str, entry: Entry) -> None:
    """Store `entry` on the member and hand it to its open session (as a member app does)."""
    member.store.put_entries([entry], time.time())
    member.store.commit()
    member.ctx.hub.published(address, [(entry.clock_time, entry.cid.digest)], None)


async def close_all(*members: Online) -> None:
    for member in members:
        assert member.driver is not None and member.task is not None
        member.driver.request_close("ok", "done")
        outcome = await member.task
        assert outcome.reason == "ok", outcome


def keys(entries: list[Entry]) -> list[Key]:
    return sorted((e.clock_time, e.cid.digest) for e in entries)


def test_online_member_gets_every_push_and_delivered_pushes_start_no_pass() -> None:
    group = GroupLog.make(40)
    entries = [group.append("m%d" % i) for i in range(OFFERS)]

    async def body() -> None:
        async with in_process_relay() as (relay, port), asyncio.timeout(30):
            reader_member, writer_member = Online(group), Online(group)
            await reader_member.open(port)
            await writer_member.open(port)
            for member in (reader_member, writer_member):
                await wait_first_pass(member)
            for count, entry in enumerate(entries, 1):
                push(writer_member, group.address, entry)
                await reader_member.until(lambda c=count: len(set(reader_member.received)) >= c)
            assert list(reader_member.store.keyset(group.address)) == keys(entries)
            assert list(relay.store.keyset(group.address)) == keys(entries)
            # The writer's pushes were acknowledged, the reader's arrived from the relay: both
            # sides hold them, so neither member started a pass after its first one.
            for member in (reader_member, writer_member):
                assert member.task is not None and not member.task.done()
                assert member.driver is not None
                assert member.driver.outcome.passes == 1, member.driver.outcome
                assert member.driver.outcome.in_sync
            await close_all(reader_member, writer_member)

    asyncio.run(body())


def test_an_entry_stored_but_not_pushed_is_found_by_a_pass_every_time() -> None:
    """Each round the writer stores one entry silently and pushes another: the push alone must
    not let the link skip the pass that finds the silent one (and the link stays open through
    more passes than MAX_PASSES, which once ended it "unsettled")."""
    group = GroupLog.make(41)
    silent: list[Entry] = []
    pushed: list[Entry] = []
    for i in range(OFFERS):
        silent.append(group.append("silent %d" % i))
        pushed.append(group.append("pushed %d" % i))

    async def body() -> None:
        async with in_process_relay() as (relay, port), asyncio.timeout(30):
            reader_member, writer_member = Online(group), Online(group)
            await reader_member.open(port)
            await writer_member.open(port)
            for member in (reader_member, writer_member):
                await wait_first_pass(member)
            for count, (quiet, loud) in enumerate(zip(silent, pushed, strict=True), 1):
                writer_member.store.put_entries([quiet], time.time())  # nobody is told
                push(writer_member, group.address, loud)
                want = set(keys(silent[:count] + pushed[:count]))
                await reader_member.until(lambda w=want: w <= set(reader_member.received))
            assert list(relay.store.keyset(group.address)) == keys(silent + pushed)
            assert reader_member.task is not None and not reader_member.task.done()
            assert writer_member.task is not None and not writer_member.task.done()
            assert writer_member.driver is not None
            assert writer_member.driver.outcome.passes > MAX_PASSES
            assert reader_member.driver is not None
            assert reader_member.driver.outcome.passes == 1  # everything it got was pushed
            await close_all(reader_member, writer_member)

    asyncio.run(body())


def test_wait_in_sync_returns_after_the_first_pass_and_again_at_once() -> None:
    group = GroupLog.make(42)
    entries = [group.append("w%d" % i) for i in range(3)]

    async def body() -> None:
        async with in_process_relay() as (relay, port), asyncio.timeout(30):
            member = Online(group)
            member.store.put_entries(entries, time.time())
            member.store.commit()
            await member.open(port)
            assert member.driver is not None
            await member.driver.wait_in_sync()
            # In sync means the relay holds what the member had when it connected.
            assert list(relay.store.keyset(group.address)) == keys(entries)
            assert member.driver.outcome.passes >= 1
            await member.driver.wait_in_sync()  # already in sync: returns at once
            await close_all(member)
            await member.driver.wait_in_sync()  # ended after it was in sync: still returns

    asyncio.run(body())


def test_wait_in_sync_raises_when_the_link_ends_first() -> None:
    """A peer that answers the handshake with garbage: the link ends, the waiter is told."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\x00\x00\x10" + b"\xff" * 16)
        await writer.drain()
        await reader.read()  # until the member closes
        writer.close()

    async def body() -> None:
        server = await asyncio.start_server(garbage, "127.0.0.1", 0)
        try:
            async with asyncio.timeout(30):
                member = Online(GroupLog.make(43))
                await member.open(server.sockets[0].getsockname()[1])
                assert member.driver is not None and member.task is not None
                with pytest.raises(LinkError, match="ended before in sync"):
                    await member.driver.wait_in_sync()
                outcome = await member.task
                assert not outcome.in_sync and outcome.reason not in ("", "ok"), outcome
        finally:
            server.close()

    asyncio.run(body())
