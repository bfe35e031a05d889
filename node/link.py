"""The transport seam: what every transport gives the daemon, and nothing more.

Theory of operation
-------------------
A transport (TCP on the LAN, BLE GATT, a pipe in tests, later a serial line) is an L1 adapter. It
turns whatever it speaks (sockets, D-Bus objects, file descriptors) into `Link` objects: whole
session frames in, whole session frames out. The daemon and the per-link driver (L2) know links,
never sockets or D-Bus objects (DESIGN.md §3, §5).

- A `Listener` accepts links from peers and hands each finished `Link` to the daemon through one
  bounded `LinkQueue`, with the link's *source* (the peer's IP on TCP, the central's address on
  BLE): the daemon's admission gate may refuse it by source, and a full queue refuses it too;
  the listener then closes the newcomer at once (it never blocks the transport).
- A `Dialer` turns a transport-neutral `PeerAddress` (``tcp:HOST:PORT``, later ``ble:…``) into a
  `Link`.
- `Dialers` looks a dialer up by the address's kind, so the daemon dials any relay the same way.
- `frame_hint` is the largest frame the link carries well (a BLE link with 244-byte writes says
  244, TCP says 65,535). It is a hint, not a limit: every link carries any frame up to the
  session's maximum (65,535 bytes: a Noise handshake message may not be cut), but the session
  sizes what it can choose (reconcile frames, entry batches, its bytes in flight) from it
  (docs/protocol.md, "Frame hints").

This module sits between L1 and L2: L1 adapters may import it (and L0), L2 imports it; it imports
nothing from either (tests/test_layers.py). It is not portable code: links are asyncio objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from node.errors import ConfigError, LinkError

LINK_KINDS = ("tcp", "ble", "pipe", "serial")
MAX_FRAME_HINT = 65535  # the largest frame any session sends: one whole Noise message
MIN_FRAME_HINT = 23  # the smallest a link may claim (BLE's default ATT MTU)


class Link(Protocol):
    """A framed transport: whole frames in, whole frames out.

    Attributes:
        label: printable and transport-neutral, e.g. ``tcp:127.0.0.1:40210`` or ``ble:hci0/…``.
        kind: the transport, one of LINK_KINDS.
        frame_hint: the largest frame (bytes) this link carries well, MIN_FRAME_HINT ..
            MAX_FRAME_HINT. The link still carries larger frames (up to MAX_FRAME_HINT); the
            session keeps what it can size (reconcile frames, entry batches, bytes in flight)
            near this.
    """

    label: str
    kind: str
    frame_hint: int

    async def recv(self) -> bytes | None:
        """The next whole frame, or None once the peer closed the link.

        Raises:
            LinkError: the transport failed.
            RemoteProtocolError: the peer broke the framing (oversize or truncated frame).
        """
        ...

    async def send(self, frames: list[bytes]) -> None:
        """Send whole frames, waiting while the transport has no room (backpressure).

        Raises:
            LinkError: the transport failed.
        """
        ...

    async def close(self) -> None:
        """Close the link: idempotent, bounded in time, never raises."""
        ...


def check_frame_hint(hint: int) -> int:
    """`hint` if it is a valid frame hint, for transports to call on what they are given.

    Raises:
        LinkError: `hint` is outside MIN_FRAME_HINT .. MAX_FRAME_HINT.
    """
    if isinstance(hint, bool) or not isinstance(hint, int):
        raise LinkError("frame hint must be an integer, got %r" % (hint,))
    if not MIN_FRAME_HINT <= hint <= MAX_FRAME_HINT:
        raise LinkError("frame hint %d outside %d..%d" % (hint, MIN_FRAME_HINT, MAX_FRAME_HINT))
    return hint


@dataclass(frozen=True)
class PeerAddress:
    """A transport-neutral peer address: ``KIND:WHERE`` (``tcp:192.0.2.7:4740``).

    Attributes:
        kind: the transport (one of LINK_KINDS).
        where: the transport's own address text (``HOST:PORT`` for tcp).
    """

    kind: str
    where: str

    def __str__(self) -> str:
        return "%s:%s" % (self.kind, self.where)

    @classmethod
    def parse(cls, text: str, key: str = "peer") -> PeerAddress:
        """Parse ``KIND:WHERE``; a bare ``HOST:PORT`` is taken as ``tcp:HOST:PORT``.

        Only the kind is checked here; what follows it is the transport's to check (the config
        checks ``tcp`` addresses as HOST:PORT).

        Raises:
            ConfigError: `text` has nothing after the kind.
        """
        kind, sep, where = text.partition(":")
        if not sep or kind not in LINK_KINDS:
            kind, where = "tcp", text
        if not where:
            raise ConfigError(key, "%r: expected KIND:ADDRESS, e.g. tcp:HOST:PORT" % text)
        return cls(kind, where)


class LinkQueue:
    """The one bounded queue through which every listener hands accepted links to the daemon.

    Args:
        maxsize: links waiting at most; a listener's `offer` beyond that is refused.
        gate: asked about every link offered while there is room, with the link's source; False
            refuses it (the daemon's admission policy: per-source limits). None admits all.

    Attributes:
        refused: links offered while the queue was full (the daemon reports them).
    """

    def __init__(self, maxsize: int, gate: Callable[[Link, str], bool] | None = None) -> None:
        self._queue: asyncio.Queue[Link] = asyncio.Queue(maxsize=maxsize)
        self._gate = gate
        self.refused = 0

    def offer(self, link: Link, source: str = "") -> bool:
        """Hand over `link` without waiting; False (the caller closes it) when the queue is full
        or the gate refuses it.

        Args:
            link: the accepted link.
            source: who it comes from, as the transport knows it: the peer's IP address on TCP,
                the central's address on BLE. Per-source limits count links by this key.
        """
        if self._queue.full():
            self.refused += 1
            return False
        if self._gate is not None and not self._gate(link, source):
            return False
        self._queue.put_nowait(link)
        return True

    async def get(self) -> Link:
        """The next accepted link (waits)."""
        return await self._queue.get()


class Listener(Protocol):
    """Accepts links from peers (a TCP server, a BLE GATT peripheral)."""

    kind: str

    async def serve(self, accepted: LinkQueue) -> None:
        """Accept links and `offer` each to `accepted`, with its source, until cancelled.

        Raises:
            LinkError: the transport could not start (port taken, adapter missing).
        """
        ...


class Dialer(Protocol):
    """Opens links to peers of one transport kind (TCP connect, BLE central)."""

    kind: str

    async def dial(self, address: PeerAddress, timeout: float) -> Link:
        """A link to `address` within `timeout` seconds.

        Raises:
            LinkError: the peer could not be reached in time.
        """
        ...


class Dialers:
    """The node's dialers, looked up by the kind of the address to dial.

    Args:
        dialers: one per transport kind (a later one of the same kind replaces an earlier one).
    """

    def __init__(self, dialers: Iterable[Dialer]) -> None:
        self._by_kind = {dialer.kind: dialer for dialer in dialers}

    @property
    def kinds(self) -> list[str]:
        """The kinds this node can dial, sorted."""
        return sorted(self._by_kind)

    async def dial(self, address: PeerAddress, timeout: float) -> Link:
        """A link to `address` through the dialer of its kind, within `timeout` seconds.

        Raises:
            LinkError: no dialer for that kind, or the peer could not be reached in time.
        """
        dialer = self._by_kind.get(address.kind)
        if dialer is None:
            raise LinkError(
                "cannot dial %s: this node has no %s transport" % (address, address.kind)
            )
        return await dialer.dial(address, timeout)
