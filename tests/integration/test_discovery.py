"""Zeroconf discovery for real: two AsyncZeroconf instances talking mDNS over loopback.

Both instances are bound to 127.0.0.1 (IPv4 only), so nothing leaves the machine. Linux delivers
multicast sent on `lo` back to sockets joined on it even though `lo` lacks the MULTICAST flag
(checked on this machine); if a kernel ever refuses, the test fails with a timeout rather than
hiding it. Every wait has a deadline; nothing sleeps.
"""

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from node.lan.discovery import SERVICE_TYPE, Advertiser, Browser, BrowserStats, PeerSeen

DEADLINE_S = 30  # mDNS probing and announcing take seconds; more on two loaded cores
# Fresh tokens per run: another test run on this machine (or a late packet from an earlier test)
# may be talking on the same loopback multicast group, so every check is keyed on a token.
TOKEN_A = os.urandom(8)
TOKEN_B = os.urandom(8)


def loopback_zeroconf() -> AsyncZeroconf:
    return AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)


def run(test: Callable[[AsyncZeroconf, AsyncZeroconf], Awaitable[None]]) -> None:
    async def main() -> None:
        left, right = loopback_zeroconf(), loopback_zeroconf()
        try:
            async with asyncio.timeout(DEADLINE_S):
                await test(left, right)
        finally:
            await left.async_close()
            await right.async_close()

    asyncio.run(main())


async def next_event(browser: Browser, token: bytes) -> PeerSeen:
    while True:  # earlier registrations may still be announced: skip to the one we want
        event = await browser.events.get()
        if event.token == token:
            return event


async def register_raw(zc: AsyncZeroconf, label: str, text: bytes, port: int = 4740) -> None:
    info = ServiceInfo(
        SERVICE_TYPE,
        "%s.%s" % (label, SERVICE_TYPE),
        port=port,
        properties=text,
        server=label + ".local.",
        addresses=[socket.inet_aton("127.0.0.1")],
    )
    await (await zc.async_register_service(info))


def txt(*items: bytes) -> bytes:
    return b"".join(bytes([len(i)]) + i for i in items)


def test_advertise_browse_and_rotate() -> None:
    token = [TOKEN_A]

    async def body(left: AsyncZeroconf, right: AsyncZeroconf) -> None:
        advertiser = Advertiser(left, 4740, lambda: token[0], addresses=["127.0.0.1"])
        browser = Browser(right)
        await browser.start()
        await advertiser.start()
        assert advertiser.name == "ws-%s.%s" % (TOKEN_A.hex(), SERVICE_TYPE)
        try:
            assert await next_event(browser, TOKEN_A) == PeerSeen("127.0.0.1", 4740, TOKEN_A)
            assert await advertiser.refresh() is False  # same period: nothing to do
            token[0] = TOKEN_B
            assert await advertiser.refresh() is True
            assert advertiser.name == "ws-%s.%s" % (TOKEN_B.hex(), SERVICE_TYPE)
            assert await next_event(browser, TOKEN_B) == PeerSeen("127.0.0.1", 4740, TOKEN_B)
            assert browser.stats().ignored == 0
        finally:
            await advertiser.close()
            await browser.close()

    run(body)


def test_own_advertisement_is_skipped() -> None:
    async def body(left: AsyncZeroconf, right: AsyncZeroconf) -> None:
        ours = Advertiser(left, 4740, lambda: TOKEN_A, addresses=["127.0.0.1"])
        theirs = Advertiser(right, 4741, lambda: TOKEN_B, addresses=["127.0.0.1"])
        browser = Browser(left, ignore_name=ours.is_own)
        await ours.start()
        await theirs.start()
        await browser.start()
        try:
            assert await next_event(browser, TOKEN_B) == PeerSeen("127.0.0.1", 4741, TOKEN_B)
            await browser.wait_until(lambda s: s.own >= 1)
        finally:
            await browser.close()
            await ours.close()
            await theirs.close()

    run(body)


def test_hostile_records_are_ignored_and_counted() -> None:
    hostile = {
        "oversize": txt(b"v=1", b"t=" + b"ab" * 120),
        "missing": txt(b"v=1"),
        "garbage": txt(b"v=1", b"t=not-hex-at-all!"),
        "version": txt(b"v=99", b"t=0123456789abcdef"),
    }

    async def body(left: AsyncZeroconf, right: AsyncZeroconf) -> None:
        browser = Browser(right)
        await browser.start()
        try:
            await asyncio.gather(
                *(
                    register_raw(left, "bad-%s-%d-%s" % (TOKEN_A.hex(), index, kind), text)
                    for index, (kind, text) in enumerate(sorted(hostile.items()))
                )
            )
            stats = await browser.wait_until(lambda s: s.ignored >= len(hostile))
            assert min(stats.oversize, stats.missing, stats.garbage, stats.version) >= 1
            # The browser still works after all that.
            token = os.urandom(8)
            good = Advertiser(left, 5000, lambda: token, addresses=["127.0.0.1"])
            await good.start()
            assert await next_event(browser, token) == PeerSeen("127.0.0.1", 5000, token)
            await good.close()
        finally:
            await browser.close()
            await left.async_unregister_all_services()

    run(body)


def test_full_queue_drops_and_counts() -> None:
    async def body(left: AsyncZeroconf, right: AsyncZeroconf) -> None:
        browser = Browser(right, queue_size=1)
        await browser.start()
        tokens = [os.urandom(8) for _ in range(3)]
        advertisers = [
            Advertiser(left, 6000 + i, (lambda t=t: t), addresses=["127.0.0.1"])
            for i, t in enumerate(tokens)
        ]
        try:
            await asyncio.gather(*(advertiser.start() for advertiser in advertisers))
            stats: BrowserStats = await browser.wait_until(lambda s: s.dropped >= 2)
            assert stats.seen == 1
            assert browser.events.qsize() == 1
        finally:
            await asyncio.gather(*(advertiser.close() for advertiser in advertisers))
            await browser.close()

    run(body)
