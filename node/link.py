"""The transport seam: what every transport gives the daemon, and nothing more.

Theory of operation
-------------------
A transport (TCP on the LAN, BLE GATT, a pipe in tests, later a serial line) is an L1 adapter. It
turns whatever it speaks (sockets, D-Bus objects, file descriptors) into `Link` objects: whole
session frames in, whole session frames out. The daemon and the per-link driver (L2) know links,
never sockets or D-Bus objects (DESIGN.md §3, §5).

- A `Listener` accepts links from peers and hands each finished `Link` to the daemon through one
  bounded `LinkQueue` (a full queue closes the newcomer and counts it; it never blocks the
  transport).
- A `Dialer` turns a transport-neutral `PeerAddress` (``tcp:HOST:PORT``, later ``ble:…``) into a
  `Link`.
- `frame_hint` is the largest frame the link carries well (a BLE link with 244-byte writes says a
  few hundred bytes, TCP says 65,535): the session sizes reconcile frames, entry batches and its
  credit window from it (docs/protocol.md, "Frame hints").

This module sits between L1 and L2: L1 adapters may import it (and L0), L2 imports it; it imports
nothing from either (tests/test_layers.py). It is not portable code: links are asyncio objects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from node.errors import ConfigError

LINK_KINDS = ("tcp", "ble", "pipe", "serial")


class Link(Protocol):
    """A framed transport: whole frames in, whole frames out.

    Attributes:
        label: printable and transport-neutral, e.g. ``tcp:127.0.0.1:40210`` or ``ble:hci0/…``.
        kind: the transport, one of LINK_KINDS.
        frame_hint: the largest frame (bytes) this link carries well; the session never sends a
            frame larger than this, and sizes its batches and credit from it.
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

        Raises:
            ConfigError: `text` names no known transport or has nothing after the kind.
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
    """

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Link] = asyncio.Queue(maxsize=maxsize)

    def offer(self, link: Link) -> bool:
        """Hand over `link` without waiting; False (the caller closes it) when the queue is full."""
        try:
            self._queue.put_nowait(link)
        except asyncio.QueueFull:
            return False
        return True

    async def get(self) -> Link:
        """The next accepted link (waits)."""
        return await self._queue.get()


class Listener(Protocol):
    """Accepts links from peers (a TCP server, a BLE GATT peripheral)."""

    kind: str

    async def serve(self, accepted: LinkQueue) -> None:
        """Accept links and `offer` each to `accepted` until cancelled.

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
