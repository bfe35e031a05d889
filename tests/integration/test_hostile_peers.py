"""Hostile peers against a real relay process while honest members sync (issue 4, §1 and §4).

Every hostile client runs at the same time as twelve honest members (4 groups x 3). Each kind of
misbehaviour must end only its own link: with a Bye carrying the expected reason whenever the
Noise keys exist (we decrypt it with our side of the session), then the relay drops the
connection. Meanwhile the relay process stays up, every honest sync ends "ok" with every entry
delivered, nothing forged is stored (a genuine entry a hostile peer carried is), and the final
status.json counts each case under peer_errors.<reason> and links.closed.<reason>.

A separate test covers a peer that stops reading (its link must end at the idle deadline too).

The relay runs with session deadlines (handshake 10 s, idle 10 s) short enough to judge the
stalling peers within the test's deadline, yet long enough that an honest member on two loaded
cores (the test process runs every honest member and every hostile peer, and may be starved
for a second or two) is never judged a staller, as it could be with 2 s.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from node.app.peer import LinkDriver
from node.app.sync_client import MAX_FRAME, member_context
from node.crypto.address import verify_address
from node.errors import IntegrityError
from node.lan.tcp import TcpLink
from node.proto.messages import LogDeclaration
from node.proto.session import SessionLimits
from node.store.sqlite import SQLiteStore
from node.sync.entry import create_entry
from node.sync.store import MemoryStore
from node.sync.wire import FULL, encode_item, log_header
from tests.integration.relay_process import Group, Member, RawClient, RelayProcess, counters
from tests.sync_helpers import SUITE, GroupLog

DEADLINE_S = 60.0
FLOOD_CONNECTIONS = 5
RELAY_CONFIG = """
[session]
handshake_timeout_s = 10
idle_timeout_s = 10
"""

# Logs only hostile peers use (seeds far from the honest groups').
BAD_SIGNATURE_LOG = GroupLog.make(100)
DECLARED_LOG = GroupLog.make(102)
OTHER_LOG = GroupLog.make(104)
MIXED_LOG = GroupLog.make(106)

CLOSED_TIMEOUT = re.compile(r'logger=waystation\.daemon msg="tcp:\S+ closed: timeout')
Scenario = Callable[[int], Coroutine[Any, Any, None]]


async def opened(port: int) -> RawClient:
    """A client whose session is OPEN (handshake done, both Hellos exchanged)."""
    client = await RawClient.connect(port)
    assert await client.handshake()
    await client.wait_open()
    return client


def declaration(ref: int, log: GroupLog) -> LogDeclaration:
    return LogDeclaration(ref, log.address, log_header(log.sign_pub, log.identity_signature))


# -- the hostile peers: each asserts what it saw of the relay ------------------------------------


async def raw_flood(port: int) -> None:
    """Random bytes on the socket, no framing at all: the first 'header' announces > 2 GiB."""
    rng = random.Random(1)
    for _ in range(FLOOD_CONNECTIONS):
        client = await RawClient.connect(port)
        for _ in range(64):
            if not await client.write_raw(b"\x80" + rng.randbytes(4095)):
                break
        assert await client.until_closed(decrypt=False) is None  # no keys, so no Bye


async def framed_garbage(port: int) -> None:
    """Well-framed random bytes: a Noise message 1 (any 32 bytes are an ephemeral key), then
    garbage as message 3."""
    rng = random.Random(2)
    client = await RawClient.connect(port)
    await client.send_frames([rng.randbytes(32), rng.randbytes(96)])
    assert await client.until_closed(decrypt=False) is None


async def oversize_frame(port: int) -> None:
    client = await opened(port)
    assert await client.write_raw((1 << 31).to_bytes(4, "big") + b"x" * 100)
    assert await client.until_closed() == "too-large"


async def garbage_ciphertext(port: int) -> None:
    client = await RawClient.connect(port)
    assert await client.handshake(send_hello=False)
    await client.send_frames([random.Random(3).randbytes(80)])
    assert await client.until_closed() == "integrity"


async def wrong_signature(port: int) -> None:
    """A real entry of a declared log, with one byte of its signature flipped."""
    log = BAD_SIGNATURE_LOG

    def flipped_sign(message: bytes) -> bytes:
        sig = bytearray(SUITE.ed25519_sign(log.sign_secret, message))
        if message != log.sign_pub.hex().encode():  # the entry's signature, not the identity's
            sig[10] ^= 0x01
        return bytes(sig)

    entry = create_entry(log.address, "x", [], [], 1, log.sign_pub, flipped_sign)
    client = await opened(port)
    client.session.send_interest([declaration(0, log)], 0)
    client.session.send_entries(0, [encode_item(entry, log.sign_pub, log.identity_signature)], 0)
    await client.flush()
    assert await client.until_closed() == "integrity"


async def mixed_batch(port: int) -> None:
    """One Entries message: a genuine entry, then its child with a bad signature.

    The genuine one verifies and is kept (it is the group's own entry, whoever carried it), and
    counted and announced like any stored entry; the bad one is refused and ends the link.
    """
    log = MIXED_LOG
    genuine = log.entries[0]
    forged = create_entry(
        log.address, "y", [genuine.cid], [], 2, log.sign_pub, lambda message: bytes(64)
    )
    items = [encode_item(e, log.sign_pub, log.identity_signature) for e in (genuine, forged)]
    client = await opened(port)
    client.session.send_interest([declaration(0, log)], 0)
    client.session.send_entries(0, items, 0)
    await client.flush()
    assert await client.until_closed() == "integrity"


async def undeclared_ref(port: int) -> None:
    """Entries for a log ref that was never declared."""
    entry = DECLARED_LOG.entries[0]
    client = await opened(port)
    client.session.send_entries(
        6, [encode_item(entry, DECLARED_LOG.sign_pub, DECLARED_LOG.identity_signature)], 0
    )
    await client.flush()
    assert await client.until_closed() == "unexpected"


async def entry_of_another_log(port: int) -> None:
    """Declares one log, then sends a (valid) entry block of another log under its ref."""
    client = await opened(port)
    client.session.send_interest([declaration(0, DECLARED_LOG)], 0)
    client.session.send_entries(0, [bytes((FULL,)) + OTHER_LOG.entries[0].block], 0)
    await client.flush()
    assert await client.until_closed() == "unexpected"


async def forged_offer(port: int) -> None:
    """A log offer whose address does not commit to the signing key offered with it."""
    forged = LogDeclaration(
        0, OTHER_LOG.address, log_header(DECLARED_LOG.sign_pub, DECLARED_LOG.identity_signature)
    )
    client = await opened(port)
    client.session.send_interest([forged], 0)
    await client.flush()
    assert await client.until_closed() == "integrity"


async def stall_when_open(port: int) -> None:
    client = await opened(port)
    assert await client.until_closed() == "timeout"


async def stall_before_hello(port: int) -> None:
    client = await RawClient.connect(port)
    assert await client.handshake(send_hello=False)
    assert await client.until_closed() == "timeout"


async def stall_before_handshake(port: int) -> None:
    client = await RawClient.connect(port)
    assert await client.until_closed(decrypt=False) is None


HOSTILE: list[Scenario] = [
    raw_flood,
    framed_garbage,
    oversize_frame,
    garbage_ciphertext,
    wrong_signature,
    mixed_batch,
    undeclared_ref,
    entry_of_another_log,
    forged_offer,
    stall_when_open,
    stall_before_hello,
    stall_before_handshake,
]
# What the relay must count, over all of them. Every hostile link ends with exactly one of these.
EXPECTED_PEER_ERRORS = {
    "peer_errors.too-large": FLOOD_CONNECTIONS + 1,  # raw_flood, oversize_frame
    # framed_garbage, garbage_ciphertext, wrong_signature, mixed_batch, forged_offer
    "peer_errors.integrity": 5,
    "peer_errors.unexpected": 2,  # undeclared_ref, entry_of_another_log
}
EXPECTED_TIMEOUTS = 3  # the three stalls
# Sessions that reached OPEN: oversize_frame, wrong_signature, mixed_batch, undeclared_ref,
# entry_of_another_log, forged_offer, stall_when_open.
OPENED_HOSTILE = 7


def test_hostile_peers_lose_only_their_own_links(tmp_path: Path) -> None:
    for log in (DECLARED_LOG, OTHER_LOG, MIXED_LOG):
        log.entries.clear()
        log.append("genuine")
    groups = [Group.make(2 * g, 3, 3) for g in range(4)]
    members = [m for g in groups for m in g.members]
    honest_entries = [e for g in groups for e in g.entries]

    async def main() -> dict[str, object]:
        relay = await RelayProcess.start(tmp_path / "relay", RELAY_CONFIG)
        try:
            async with asyncio.timeout(DEADLINE_S):
                async with asyncio.TaskGroup() as tasks:
                    for scenario in HOSTILE:
                        tasks.create_task(scenario(relay.port), name=scenario.__name__)
                    honest = [tasks.create_task(m.sync(relay.port)) for m in members]
                assert [t.result() for t in honest] == ["ok"] * len(members)
                assert relay.alive, relay.tail()
                # The relay carries on: a second round delivers everything to everyone.
                again = await asyncio.gather(*(m.sync(relay.port) for m in members))
                assert again == ["ok"] * len(members)
            status = await relay.stop()
        finally:
            await relay.kill()
        # Each refusal says why: the entry signature itself (not the identity's) did not verify.
        warnings = "\n".join(line for line in relay.lines if " level=warning " in " " + line)
        assert "sig is not a signature of the entry's signed bytes" in warnings
        assert "does not commit to sign_pub" in warnings
        return status

    status = asyncio.run(main())

    for group in groups:
        for member in group.members:
            assert member.missing(group.entries) == [], member.name
    stats = counters(status)
    errors = {k: v for k, v in stats.items() if k.startswith("peer_errors.")}
    assert errors == EXPECTED_PEER_ERRORS
    closed = {k: v for k, v in stats.items() if k.startswith("links.closed.")}
    expected_closed = {k.replace("peer_errors.", "links.closed."): v for k, v in errors.items()}
    expected_closed["links.closed.timeout"] = EXPECTED_TIMEOUTS
    expected_closed["links.closed.ok"] = 2 * len(members)
    assert closed == expected_closed
    assert stats["links.opened"] == 2 * len(members) + OPENED_HOSTILE
    assert stats["entries.refused.integrity"] == 2  # wrong_signature, mixed_batch
    kept = 1  # the genuine entry of mixed_batch
    assert stats["entries.stored"] == len(honest_entries) + kept

    # Nothing forged was stored: no entry of the hostile logs but mixed_batch's genuine one.
    store = SQLiteStore.open_in(tmp_path / "relay", SUITE.ed25519_verify)
    try:
        honest_logs = {g.log.address for g in groups}
        assert OTHER_LOG.address not in store.logs()
        assert store.log_info(MIXED_LOG.address).entry_count == kept
        assert store.has(MIXED_LOG.entries[0].cid)
        for address in set(store.logs()) - honest_logs - {MIXED_LOG.address}:
            assert store.log_info(address).entry_count == 0, address
        assert not store.has(OTHER_LOG.entries[0].cid)
        assert not store.has(DECLARED_LOG.entries[0].cid)
        assert sum(store.log_info(a).entry_count for a in honest_logs) == len(honest_entries)
    finally:
        store.close()


def test_forged_offer_really_is_forged() -> None:
    """The forged offer above tests something only if its address rejects the offered key."""
    verify_address(SUITE, OTHER_LOG.address, OTHER_LOG.sign_pub)
    with pytest.raises(IntegrityError):
        verify_address(SUITE, OTHER_LOG.address, DECLARED_LOG.sign_pub)


class StopsReading:
    """A member's TCP link that reads nothing more once the first entry (a big frame) arrives."""

    def __init__(self, link: TcpLink) -> None:
        self.link = link
        self.label = link.label
        self.kind = link.kind
        self.frame_hint = link.frame_hint
        self.stopped = asyncio.Event()

    async def recv(self) -> bytes | None:
        if not self.stopped.is_set():
            frame = await self.link.recv()
            if frame is None or len(frame) < 8192:
                return frame
            self.stopped.set()
        await asyncio.Event().wait()  # never: the peer has stopped reading
        return None

    async def send(self, frames: list[bytes]) -> None:
        await self.link.send(frames)

    async def close(self) -> None:
        await self.link.close()


def test_peer_that_stops_reading_loses_its_link(tmp_path: Path) -> None:
    """A peer that asks for entries, grants a huge window and then reads nothing: the relay's
    writes stall once the kernel's buffers are full (a few MB on loopback), and the link must
    still end at the idle deadline, not hold a session slot for ever."""
    log = GroupLog.make(110)
    chain = [log.append("%d %s" % (i, "x" * 100_000)) for i in range(48)]  # 6.4 MB
    uploader = Member("uploader", log, chain)

    async def lazy_member(port: int) -> StopsReading:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return StopsReading(TcpLink(reader, writer, MAX_FRAME))

    async def main() -> dict[str, object]:
        relay = await RelayProcess.start(tmp_path / "relay", RELAY_CONFIG)
        lazy: asyncio.Task[object] | None = None
        try:
            async with asyncio.timeout(DEADLINE_S):
                assert await uploader.sync(relay.port) == "ok"
                link = await lazy_member(relay.port)
                store = MemoryStore(SUITE.ed25519_verify)
                store.add_log(log.address, log.sign_pub, pinned=True)
                ctx = member_context(store, SUITE, {log.address: (log.sign_pub, b"")})
                ctx.limits = SessionLimits(window=1 << 26)
                lazy = asyncio.create_task(LinkDriver(ctx, link, True, until_synced=True).run())
                await link.stopped.wait()
                await relay.wait_for_line(CLOSED_TIMEOUT, 30.0)
                late = Member("late", log, [])  # the relay serves others, before and after
                assert await late.sync(relay.port) == "ok"
                assert late.missing(chain) == []
            return await relay.stop()
        finally:
            if lazy is not None:
                lazy.cancel()
            await relay.kill()

    stats = counters(asyncio.run(main()))
    assert stats["links.closed.timeout"] == 1
    assert stats["links.closed.ok"] == 2
