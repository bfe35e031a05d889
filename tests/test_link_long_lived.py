"""Long-lived member sessions: an online member keeps receiving pushes, one pass per change."""

from __future__ import annotations

import asyncio
import time

from node.app.context import Key, NodeContext
from node.app.peer import MAX_PASSES, LinkDriver, SyncOutcome
from node.lan.tcp import TcpLink, connect
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.sync.store import MemoryStore
from tests.sync_helpers import SUITE, GroupLog, make_context

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


def test_online_member_stays_connected_through_many_pushes() -> None:
    group = GroupLog.make(40)
    entries = [group.append("m%d" % i) for i in range(OFFERS)]

    async def body() -> None:
        relay = make_context(MemoryStore(SUITE.ed25519_verify), ROLE_RELAY)

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            driver = LinkDriver(relay, TcpLink(reader, writer, 1 << 17), initiator=False)
            await driver.run()

        relay_committer = asyncio.create_task(relay.committer.run())
        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader_member, writer_member = Online(group), Online(group)
        async with asyncio.timeout(30):
            await reader_member.open(port)
            await writer_member.open(port)
            for member in (reader_member, writer_member):
                while member.driver is None or not member.driver.outcome.in_sync:
                    await asyncio.sleep(0.001)  # no event for "first pass done"; bounded above
            for count, entry in enumerate(entries, 1):
                writer_member.store.put_entries([entry], time.time())
                writer_member.store.commit()
                key = (entry.clock_time, entry.cid.digest)
                writer_member.ctx.hub.published(group.address, [key], None)
                await reader_member.until(lambda c=count: len(set(reader_member.received)) >= c)
            # each push is followed by a pass that matched; the links are still open
            for member in (reader_member, writer_member):
                assert member.task is not None and not member.task.done()
                assert member.driver is not None
                assert member.driver.outcome.passes > MAX_PASSES
            assert list(reader_member.store.keyset(group.address)) == sorted(
                (e.clock_time, e.cid.digest) for e in entries
            )
            for member in (reader_member, writer_member):
                assert member.driver is not None and member.task is not None
                member.driver.request_close("ok", "done")
                outcome = await member.task
                assert outcome.reason == "ok", outcome
        server.close()
        relay_committer.cancel()

    asyncio.run(body())
