"""Zeroconf (mDNS/DNS-SD) discovery of Waystation nodes on the LAN (L1, python-zeroconf).

Theory of operation: a relay advertises ``_waystation._tcp.local.`` with a TXT record that
carries only ``v`` (the protocol version) and ``t`` (the rotating token, hex), never a fixed
identifier. The service instance name and the host name it advertises are both derived from the
token (``ws-<hex>``), so nothing in the record links one rotation period to the next; the caller
(the daemon) supplies the token through a callable (node.crypto.rendezvous.relay_token of the
node's discovery key and the current period) and calls :meth:`Advertiser.refresh` when the period
may have changed: a new token unregisters the old service and registers the new one.

The :class:`Browser` resolves every ``_waystation._tcp`` service it hears of and puts a
:class:`PeerSeen` on a bounded asyncio queue. Records come from anyone on the LAN, so they are
checked strictly (size, keys, version, token form, address, port): a bad one is dropped and
counted in :meth:`Browser.stats`, logged with a rate limit, and never raises into the loop. When
the queue is full, new sightings are dropped and counted (the consumer sees the node again on its
next announcement).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import ifaddr
import zeroconf
from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from node.errors import LinkError

log = logging.getLogger(__name__)

# zeroconf's own errors, OSError (no multicast route, interface gone) and ValueError (bad address)
# are translated to LinkError here, the one place that talks to the library.
_FOREIGN = (zeroconf.Error, OSError, ValueError)


def open_zeroconf(interfaces: Sequence[str] | None = None) -> AsyncZeroconf:
    """An AsyncZeroconf on `interfaces` (IPv4 only when given), or on all interfaces.

    Raises:
        LinkError: the multicast sockets could not be opened.
    """
    try:
        if interfaces:
            return AsyncZeroconf(interfaces=list(interfaces), ip_version=zeroconf.IPVersion.V4Only)
        return AsyncZeroconf()
    except _FOREIGN as exc:
        raise LinkError("zeroconf unavailable: %s" % exc, type(exc).__name__) from exc


SERVICE_TYPE = "_waystation._tcp.local."
PROTOCOL_VERSION = "1"
INSTANCE_PREFIX = "ws-"
# Tokens are 8 bytes today (rendezvous.TOKEN_LENGTH); accept a little room either way.
MIN_TOKEN_BYTES = 4
MAX_TOKEN_BYTES = 32
# Our TXT record is about 26 bytes; anything far larger is not ours.
MAX_TXT_BYTES = 200
RESOLVE_TIMEOUT_MS = 3000
MAX_PENDING_RESOLUTIONS = 32
DEFAULT_QUEUE_SIZE = 64


@dataclass(frozen=True, slots=True)
class PeerSeen:
    """A Waystation node announced itself: connect to ``host:port``; ``token`` is its TXT token."""

    host: str
    port: int
    token: bytes


@dataclass(frozen=True, slots=True)
class BrowserStats:
    """Counters of a :class:`Browser` (a snapshot)."""

    seen: int = 0  # PeerSeen events queued
    own: int = 0  # our own advertisement, skipped
    oversize: int = 0  # TXT record too large
    missing: int = 0  # TXT key, address or port missing
    garbage: int = 0  # TXT not parseable, bad token, bad port
    version: int = 0  # a protocol version we do not speak
    unresolved: int = 0  # the service did not answer in time
    dropped: int = 0  # queue full, or too many resolutions at once

    @property
    def ignored(self) -> int:
        """Records ignored because they were hostile or broken."""
        return self.oversize + self.missing + self.garbage + self.version


class BadRecordError(Exception):
    """A record we drop; ``counter`` names the BrowserStats field it counts in."""

    def __init__(self, counter: str, detail: str) -> None:
        super().__init__(detail)
        self.counter = counter


def instance_name(token: bytes) -> str:
    """The service instance label for ``token`` (``ws-<hex>``)."""
    return INSTANCE_PREFIX + token[:MAX_TOKEN_BYTES].hex()


def encode_txt(token: bytes, version: str = PROTOCOL_VERSION) -> dict[str, str]:
    """The TXT properties we advertise."""
    return {"v": version, "t": token.hex()}


def parse_txt(text: bytes) -> bytes:
    """Check a raw TXT record (RFC 6763 §6: length-prefixed ``key=value`` strings).

    Returns:
        The token.

    Raises:
        BadRecordError: with the counter to bump and a description.
    """
    if len(text) > MAX_TXT_BYTES:
        raise BadRecordError("oversize", "TXT record of %d bytes" % len(text))
    pairs: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(text):
        length = text[pos]
        item = text[pos + 1 : pos + 1 + length]
        if len(item) != length:
            raise BadRecordError("garbage", "TXT string runs past the record")
        pos += 1 + length
        if not item:
            continue
        key, sep, value = item.partition(b"=")
        key = key.lower()
        if not sep or not key:
            raise BadRecordError("garbage", "TXT string %r is not key=value" % item[:20])
        if key in pairs:
            raise BadRecordError("garbage", "TXT key %r twice" % key)
        pairs[key] = value
    if b"v" not in pairs or b"t" not in pairs:
        raise BadRecordError("missing", "TXT lacks v or t")
    if pairs[b"v"] != PROTOCOL_VERSION.encode():
        raise BadRecordError("version", "protocol version %r" % pairs[b"v"][:20])
    hex_token = pairs[b"t"]
    if not MIN_TOKEN_BYTES * 2 <= len(hex_token) <= MAX_TOKEN_BYTES * 2:
        raise BadRecordError("garbage", "token of %d hex digits" % len(hex_token))
    try:
        return bytes.fromhex(hex_token.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadRecordError("garbage", "token is not hex") from None


def _pick_address(addresses: Sequence[str]) -> str:
    # Prefer IPv4 (no scope to carry), else the first usable IPv6.
    usable = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if address.is_multicast or address.is_unspecified:
            continue
        usable.append((address.version, text))
    if not usable:
        raise BadRecordError("missing", "no usable address")
    usable.sort(key=lambda item: item[0])
    return usable[0][1]


def local_addresses() -> list[str]:
    """Non-loopback IPv4 and global IPv6 addresses of this host, to advertise."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(text)
            if address.is_loopback or address.is_link_local:
                continue
            if text not in found:
                found.append(text)
    return found


async def close_discovery(
    azc: AsyncZeroconf, advertiser: Advertiser | None, browser: Browser | None
) -> None:
    """Withdraw the advertisement, stop browsing, close zeroconf; errors are logged, not raised."""
    for step in (
        browser.close if browser is not None else None,
        advertiser.close if advertiser is not None else None,
        azc.async_close,
    ):
        if step is None:
            continue
        try:
            await step()
        except _FOREIGN as exc:
            log.info("zeroconf: error while closing: %s", exc)


class Advertiser:
    """Advertises this node under a name and TXT record derived from the current token.

    Args:
        zeroconf: the daemon's AsyncZeroconf.
        port: the TCP port we accept links on.
        token: returns the token for the current period (bytes).
        addresses: the addresses to advertise; default: :func:`local_addresses`.
    """

    def __init__(
        self,
        zeroconf: AsyncZeroconf,
        port: int,
        token: Callable[[], bytes],
        addresses: Sequence[str] | None = None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError("port must be 1..65535")
        self._zeroconf = zeroconf
        self._port = port
        self._token_fn = token
        self._addresses = list(addresses) if addresses is not None else None
        self._info: AsyncServiceInfo | None = None
        self._token: bytes | None = None

    @property
    def name(self) -> str | None:
        """The registered service name, or None."""
        return self._info.name if self._info is not None else None

    def is_own(self, name: str) -> bool:
        """True if ``name`` is the service we advertise (for :class:`Browser`)."""
        return self._info is not None and name.lower() == self._info.name.lower()

    async def start(self) -> None:
        """Register the service for the current token."""
        await self.refresh()

    async def refresh(self) -> bool:
        """Re-register if the token changed since the last call.

        Returns:
            True if a (new) registration was made.

        Raises:
            LinkError: zeroconf refused the registration.
        """
        try:
            return await self._refresh()
        except _FOREIGN as exc:
            raise LinkError("zeroconf registration failed: %s" % exc, type(exc).__name__) from exc

    async def _refresh(self) -> bool:
        token = self._token_fn()
        if token == self._token and self._info is not None:
            return False
        if not MIN_TOKEN_BYTES <= len(token) <= MAX_TOKEN_BYTES:
            raise ValueError("token must be %d..%d bytes" % (MIN_TOKEN_BYTES, MAX_TOKEN_BYTES))
        await self._unregister()
        label = instance_name(token)
        addresses = self._addresses if self._addresses is not None else local_addresses()
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            "%s.%s" % (label, SERVICE_TYPE),
            port=self._port,
            properties=encode_txt(token),
            server=label + ".local.",
            parsed_addresses=addresses,
        )
        await (await self._zeroconf.async_register_service(info, allow_name_change=True))
        self._info, self._token = info, token
        log.debug("advertising %s on port %d", info.name, self._port)
        return True

    async def close(self) -> None:
        """Withdraw the advertisement (sends goodbye packets)."""
        await self._unregister()

    async def _unregister(self) -> None:
        if self._info is not None:
            info, self._info = self._info, None
            await (await self._zeroconf.async_unregister_service(info))


class Browser:
    """Finds other Waystation nodes; read :attr:`events` for :class:`PeerSeen`.

    Args:
        zeroconf: the daemon's AsyncZeroconf.
        queue_size: bound of :attr:`events`; sightings beyond it are dropped and counted.
        ignore_name: returns True for service names to skip (our own: ``Advertiser.is_own``).
    """

    def __init__(
        self,
        zeroconf: AsyncZeroconf,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        ignore_name: Callable[[str], bool] | None = None,
    ) -> None:
        self.events: asyncio.Queue[PeerSeen] = asyncio.Queue(queue_size)
        self._zeroconf = zeroconf
        self._ignore_name = ignore_name
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stats = BrowserStats()
        self._changed = asyncio.Event()

    def stats(self) -> BrowserStats:
        """A snapshot of the counters."""
        return self._stats

    async def start(self) -> None:
        """Start browsing.

        Raises:
            LinkError: zeroconf could not start the browser.
        """
        if self._browser is None:
            try:
                self._browser = AsyncServiceBrowser(
                    self._zeroconf.zeroconf, [SERVICE_TYPE], handlers=[self._on_change]
                )
            except _FOREIGN as exc:
                raise LinkError("zeroconf browsing failed: %s" % exc, type(exc).__name__) from exc

    async def close(self) -> None:
        """Stop browsing and cancel resolutions in flight."""
        if self._browser is not None:
            browser, self._browser = self._browser, None
            await browser.async_cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_until(self, predicate: Callable[[BrowserStats], bool]) -> BrowserStats:
        """Wait until the counters satisfy ``predicate`` (wrap in a timeout)."""
        while not predicate(self._stats):
            event = self._changed
            await event.wait()
        return self._stats

    def _count(self, counter: str, detail: str = "") -> None:
        value = getattr(self._stats, counter) + 1
        self._stats = replace(self._stats, **{counter: value})
        if counter not in ("seen", "own") and (value == 1 or value % 100 == 0):
            log.info("zeroconf: ignored %s record #%d: %s", counter, value, detail)
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _on_change(
        self,
        zeroconf: object,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            return
        if self._ignore_name is not None and self._ignore_name(name):
            self._count("own")
            return
        if len(self._tasks) >= MAX_PENDING_RESOLUTIONS:
            self._count("dropped", "too many resolutions in flight")
            return
        task = asyncio.get_running_loop().create_task(self._resolve(service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        try:
            info = AsyncServiceInfo(service_type, name)
            if not await info.async_request(self._zeroconf.zeroconf, RESOLVE_TIMEOUT_MS):
                self._count("unresolved", name[:80])
                return
            token = parse_txt(info.text or b"")
            if not info.port:
                raise BadRecordError("missing", "no port")
            host = _pick_address(info.parsed_scoped_addresses())
        except BadRecordError as ignored:
            self._count(ignored.counter, "%s: %s" % (name[:80], ignored))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # hostile input must never take the browser down
            self._count("garbage", "%s: %s: %s" % (name[:80], type(exc).__name__, exc))
            return
        try:
            self.events.put_nowait(PeerSeen(host, info.port, token))
        except asyncio.QueueFull:
            self._count("dropped", "event queue full")
            return
        self._count("seen")


__all__ = [
    "PROTOCOL_VERSION",
    "SERVICE_TYPE",
    "Advertiser",
    "BadRecordError",
    "Browser",
    "BrowserStats",
    "PeerSeen",
    "encode_txt",
    "instance_name",
    "local_addresses",
    "parse_txt",
]
