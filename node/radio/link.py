"""A BLE link (node.link.Link, kind "ble"): session frames over tagged GATT fragments.

Theory of operation
-------------------
Both ends of a BLE connection (the relay's GATT peripheral and a bleak central) use this class;
they differ only in how a packet leaves (`send_packets`: a notification or a write) and how it
arrives (they call `feed` with each packet's bytes, `feed_end` when the connection is gone).

Inbound: `feed` checks the link id tag, hands the fragment to the L0 Reassembler, and queues each
whole frame. Queued bytes are bounded (`max_buffered`): a peer that sends faster than the session
reads breaks the credit rules, so the link fails with reason "flow" rather than buffering without
bound. A fragment error (gap, duplicate, oversize frame, wrong tag) fails this link only:
`recv` raises RemoteProtocolError, and everything queued before the error is still delivered
first. `feed_end` mid-frame is a lost link (LinkError); between frames it is a clean end (None).

Outbound: `send` cuts each frame with the L0 Fragmenter at the link's fragment room (from the ATT
MTU), prefixes the tag, and awaits `send_packets`, which applies the transport's backpressure.

`close` is idempotent, bounded by the transport's `on_close`, and never raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from node.errors import REASON_FLOW, LinkError, NodeError, RemoteProtocolError
from node.proto.fragment import Fragmenter, Reassembler
from node.radio.profile import TAG_SIZE, fragment_room, frame_hint

log = logging.getLogger("waystation.ble")

# bluetoothd answers Device1.Disconnect only after its 2 s DISCONNECT_TIMER, and bleak then waits
# up to 10 s for Connected = false: a 2 s bound cut every disconnect short (the LE connection
# stayed up). Under emulation (TCG) all of it runs slower still.
CLOSE_TIMEOUT_S = 15.0


class BleLink:
    """One central <-> relay BLE connection carrying a session.

    Args:
        label: e.g. ``ble:hci0/dev_00_AA_BB_CC_DD_EE#3``.
        link_id: the tag (1..255) on every packet of this link, both ways.
        mtu: the ATT MTU of the connection (23..517).
        max_frame: the largest frame accepted from the peer.
        send_packets: sends tagged packets in order, waiting while the transport has no room.
        on_close: releases the transport's side of the link (unsubscribe, disconnect).
        max_buffered: frame bytes received and not yet taken by `recv` before the link fails.
    """

    kind = "ble"

    def __init__(
        self,
        label: str,
        link_id: int,
        mtu: int,
        max_frame: int,
        send_packets: Callable[[list[bytes]], Awaitable[None]],
        on_close: Callable[[], Awaitable[None]] | None = None,
        max_buffered: int = 2 << 20,
    ) -> None:
        self.label = label
        self.link_id = link_id
        self.mtu = mtu
        self.frame_hint = frame_hint(mtu, max_frame)
        self._tag = bytes((link_id,))
        self._room = fragment_room(mtu)
        self._fragmenter = Fragmenter()
        self._reassembler = Reassembler(max_frame)
        self._send_packets = send_packets
        self._on_close = on_close
        self._max_buffered = max_buffered
        self._frames: deque[bytes] = deque()
        self._buffered = 0
        self._failure: NodeError | None = None
        self._ended = False
        self._closed = False
        self._ready = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self.packets_in = 0
        self.packets_out = 0
        self.largest_in = 0
        self.largest_out = 0

    # -- inbound, called by the transport --------------------------------------------------

    def feed(self, packet: bytes) -> None:
        """Take one received packet (tag + fragment). Never raises: errors fail the link."""
        if self._failure is not None or self._ended:
            return
        self.packets_in += 1
        self.largest_in = max(self.largest_in, len(packet))
        if len(packet) < TAG_SIZE + 1 or packet[0] != self.link_id:
            self._fail(
                RemoteProtocolError(
                    "packet of %d bytes with link tag %s, expected %d"
                    % (len(packet), packet[0] if packet else None, self.link_id)
                )
            )
            return
        try:
            frame = self._reassembler.receive_fragment(packet[TAG_SIZE:], time.monotonic())
        except RemoteProtocolError as exc:
            log.debug("%s: packet %d (%s) broke the link: %s", self.label, self.packets_in,
                      packet[:8].hex(), exc)  # fmt: skip
            self._fail(exc)
            return
        log.debug("%s: packet %d: %s, frame %s (last drop: %s)", self.label, self.packets_in,
                  packet[:4].hex(), "done" if frame is not None else "open",
                  self._reassembler.last_drop)  # fmt: skip
        if frame is None:
            return
        self._buffered += len(frame)
        if self._buffered > self._max_buffered:
            self._fail(
                RemoteProtocolError(
                    "peer sent %d bytes the session has not read (limit %d)"
                    % (self._buffered, self._max_buffered),
                    REASON_FLOW,
                )
            )
            return
        self._frames.append(frame)
        self._ready.set()

    def feed_end(self, why: str) -> None:
        """The connection is gone (`why` says how); mid-frame this loses the link."""
        if self._ended:
            return
        self._ended = True
        if self._failure is None and self._reassembler.in_frame:
            self._failure = LinkError("%s: %s in the middle of a frame" % (self.label, why), why)
        self._ready.set()

    def _fail(self, error: NodeError) -> None:
        self._failure = error
        self._ready.set()

    @property
    def failed(self) -> bool:
        """True once a packet broke the link (the transport stops feeding it)."""
        return self._failure is not None

    # -- the Link interface ----------------------------------------------------------------

    async def recv(self) -> bytes | None:
        """The next frame; None once the peer ended the link between frames.

        Raises:
            RemoteProtocolError: the peer broke the fragment stream (after earlier frames).
            LinkError: the connection was lost in the middle of a frame.
        """
        while True:
            if self._frames:
                frame = self._frames.popleft()
                self._buffered -= len(frame)
                return frame
            if self._failure is not None:
                raise self._failure
            if self._ended or self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    async def send(self, frames: list[bytes]) -> None:
        """Fragment, tag and send whole frames in order.

        Raises:
            LinkError: the transport failed.
        """
        async with self._send_lock:
            for frame in frames:
                packets = [
                    self._tag + f for f in self._fragmenter.fragment(frame, self._room)
                ]
                log.debug("%s: sending a %d-byte frame in %d packets", self.label, len(frame),
                          len(packets))  # fmt: skip
                await self._send_packets(packets)
                self.packets_out += len(packets)
                self.largest_out = max(self.largest_out, max(len(p) for p in packets))

    async def close(self) -> None:
        """Release the transport's side of the link (idempotent, bounded, never raises)."""
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        if self._on_close is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._on_close()
            except (NodeError, TimeoutError) as exc:
                log.info("%s: close not finished: %s", self.label, exc or "timed out")
