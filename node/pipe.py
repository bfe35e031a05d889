"""An in-memory link pair (L1, kind "pipe"): the session's transport in tests and benchmarks.

Theory of operation
-------------------
`Pipe` joins two `PipeLink` ends. Each direction is a queue of *units* on their way: a unit is a
whole frame, or (with `fragment_size`) one BLE fragment made by node/proto/fragment.py's
Fragmenter, which the other end's Reassembler turns back into frames, exactly as a GATT link
will. A unit leaves when the direction is free (`rate`: bytes per second; None is instant),
arrives `latency` seconds later, and is read in order. One timer per direction, set for the
oldest unit still on its way, moves arrived units to the reader; nothing else runs in the
background. `send` puts a unit on its way only once the one before has left (a slow link slows
its writer, and a cut loses what was on its way, not what was still to be written), returns once
its last unit has left, and waits while `buffer_bytes` are sent and not yet read
(backpressure, as a socket buffer gives).

Ending. `close()` on one end lets what it already sent arrive, then the other end reads None.
`cut()` (or `cut_after` bytes of units in both directions together) drops everything on its
way and both ends fail with LinkError, as a radio link that goes out of range does.

Counting. Per direction: frames and their bytes, units and their bytes. Each frame also carries
its causal depth: one more than the deepest frame its sender had read before sending it, so the
deepest frame of a session is the number of one-way trips on its critical path (`half_rounds`;
round trips are half that), whatever the timing.

It lives beside node/link.py rather than under tests/ so that tests and bench/ share it without
importing the app layer (L2); tests/test_layers.py lists it as an L1 adapter.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from node.errors import LinkError
from node.link import MAX_FRAME_HINT, Link, check_frame_hint
from node.proto.fragment import Fragmenter, Reassembler

DEFAULT_BUFFER = 256 * 1024


@dataclass
class DirectionStats:
    """What crossed one direction of a pipe."""

    frames: int = 0
    frame_bytes: int = 0
    units: int = 0  # frames, or fragments when fragmenting
    unit_bytes: int = 0
    largest: int = 0  # the largest frame
    max_depth: int = 0


class _Direction:
    """Units sent by one end, on their way to (or waiting at) the other."""

    def __init__(self, fragment_size: int | None, max_frame: int) -> None:
        self.fragment_size = fragment_size
        self.fragmenter = Fragmenter() if fragment_size else None
        self.reassembler = Reassembler(max_frame) if fragment_size else None
        self.on_way: deque[tuple[float, bytes, int]] = deque()  # (arrival, unit, depth)
        self.arrived: deque[tuple[bytes, int]] = deque()
        self.unread = 0  # bytes sent and not yet read
        self.busy_until = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.readable = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.closing = False  # the sender closed: EOF once everything arrived
        self.reader_gone = False  # the receiver closed: units are dropped
        self.stats = DirectionStats()

    @property
    def eof(self) -> bool:
        return self.closing and not self.on_way and not self.arrived

    def drop_all(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.on_way.clear()
        self.arrived.clear()
        self.unread = 0
        self.readable.set()
        self.room.set()


class Pipe:
    """Two connected link ends, `a` and `b`.

    Args:
        name: printed in the ends' labels (``pipe:NAME/a``).
        frame_hint: the frame hint both ends report (see node.link).
        frame_hint_b: another hint for end `b` (the two ends of a link may differ).
        latency: one-way delay of every unit, seconds.
        rate: bytes per second each direction carries; None for no limit.
        fragment_size: cut frames into BLE fragments of this size (ATT_MTU - 3) with
            node.proto.fragment; None to move whole frames.
        max_frame: the largest frame a Reassembler accepts (fragmenting only).
        buffer_bytes: bytes sent and not yet read before `send` waits.
        cut_after: cut the link once this many unit bytes (both directions) have been sent.
    """

    def __init__(
        self,
        name: str = "pipe",
        frame_hint: int = MAX_FRAME_HINT,
        frame_hint_b: int | None = None,
        latency: float = 0.0,
        rate: float | None = None,
        fragment_size: int | None = None,
        max_frame: int = MAX_FRAME_HINT,
        buffer_bytes: int = DEFAULT_BUFFER,
        cut_after: int | None = None,
    ) -> None:
        if latency < 0 or (rate is not None and rate <= 0) or buffer_bytes < 1:
            raise LinkError("pipe: latency >= 0, rate > 0 and buffer_bytes >= 1 required")
        check_frame_hint(frame_hint)
        hint_b = check_frame_hint(frame_hint if frame_hint_b is None else frame_hint_b)
        self.latency = latency
        self.rate = rate
        self.buffer_bytes = buffer_bytes
        self.cut_after = cut_after
        self.sent_bytes = 0
        self.broken: str | None = None
        ab = _Direction(fragment_size, max_frame)
        ba = _Direction(fragment_size, max_frame)
        self.a = PipeLink(self, "pipe:%s/a" % name, frame_hint, ab, ba)
        self.b = PipeLink(self, "pipe:%s/b" % name, hint_b, ba, ab)
        self._directions = (ab, ba)

    @property
    def ends(self) -> tuple[Link, Link]:
        """The two ends as Links (typed: a PipeLink is checked against the protocol here)."""
        return self.a, self.b

    @property
    def half_rounds(self) -> int:
        """One-way trips on the critical path of everything sent so far."""
        return max(d.stats.max_depth for d in self._directions)

    def stats(self) -> dict[str, int]:
        """Totals over both directions, and the critical path."""
        both = [d.stats for d in self._directions]
        return {
            "frames": sum(s.frames for s in both),
            "frame_bytes": sum(s.frame_bytes for s in both),
            "units": sum(s.units for s in both),
            "unit_bytes": sum(s.unit_bytes for s in both),
            "largest": max(s.largest for s in both),
            "half_rounds": self.half_rounds,
        }

    def cut(self, reason: str = "cut") -> None:
        """Lose the link: everything on its way is dropped; both ends fail (LinkError)."""
        if self.broken is None:
            self.broken = reason
        for direction in self._directions:
            direction.drop_all()

    def _transmit(self, direction: _Direction, unit: bytes, depth: int) -> None:
        """Put one unit on its way (the caller waited until the direction was free)."""
        stats = direction.stats
        stats.units += 1
        stats.unit_bytes += len(unit)
        self.sent_bytes += len(unit)
        if self.cut_after is not None and self.sent_bytes > self.cut_after:
            self.cut("cut after %d bytes" % self.cut_after)
            raise LinkError("%s: link lost" % self.broken)
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, direction.busy_until)
        left = start + (len(unit) / self.rate if self.rate else 0.0)
        direction.busy_until = left
        if direction.reader_gone:  # nobody reads this direction any more: the unit is lost
            return
        direction.unread += len(unit)
        arrival = left + self.latency
        if arrival <= now and not direction.on_way:
            direction.arrived.append((unit, depth))
            direction.readable.set()
        else:
            direction.on_way.append((arrival, unit, depth))
            if direction.timer is None:
                direction.timer = loop.call_at(arrival, self._arrive, direction)

    def _arrive(self, direction: _Direction) -> None:
        direction.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while direction.on_way and direction.on_way[0][0] <= now:
            _, unit, depth = direction.on_way.popleft()
            direction.arrived.append((unit, depth))
        direction.readable.set()
        if direction.on_way:
            direction.timer = loop.call_at(direction.on_way[0][0], self._arrive, direction)


class PipeLink:
    """One end of a Pipe: a Link (node.link) of kind "pipe"."""

    kind = "pipe"

    def __init__(
        self, pipe: Pipe, label: str, frame_hint: int, out: _Direction, inc: _Direction
    ) -> None:
        self.pipe = pipe
        self.label = label
        self.frame_hint = frame_hint
        self._out = out
        self._in = inc
        self._closed = False
        self._depth_seen = 0  # the deepest frame read so far

    async def recv(self) -> bytes | None:
        """The next frame, or None once the other end closed (and all it sent was read).

        Raises:
            LinkError: the pipe was cut, or this end is closed.
            RemoteProtocolError: a fragment stream no loss explains: an oversize frame or
                fragment, or one with no frame bytes (fragmenting). A lost, repeated or
                reordered fragment drops only its frame; the Reassembler counts it.
        """
        inc = self._in
        while True:
            if self.pipe.broken is not None:
                raise LinkError("%s: link lost (%s)" % (self.label, self.pipe.broken))
            if self._closed:
                raise LinkError("%s: closed" % self.label)
            if inc.arrived:
                unit, depth = inc.arrived.popleft()
                inc.unread -= len(unit)
                inc.room.set()
                frame: bytes | None = unit
                if inc.reassembler is not None:
                    now = asyncio.get_running_loop().time()
                    frame = inc.reassembler.receive_fragment(unit, now)
                if frame is None:
                    continue
                self._depth_seen = max(self._depth_seen, depth)
                return frame
            if inc.eof:
                return None
            inc.readable.clear()
            await inc.readable.wait()

    async def send(self, frames: list[bytes]) -> None:
        """Send whole frames; returns once they have left (rate), waits while the buffer is full.

        Raises:
            LinkError: the pipe was cut, or this end is closed.
        """
        out, pipe = self._out, self.pipe
        depth = self._depth_seen + 1
        for frame in frames:
            units = [frame]
            if out.fragmenter is not None and out.fragment_size is not None:
                units = out.fragmenter.fragment(frame, out.fragment_size)
            out.stats.frames += 1
            out.stats.frame_bytes += len(frame)
            out.stats.largest = max(out.stats.largest, len(frame))
            out.stats.max_depth = max(out.stats.max_depth, depth)
            for index, unit in enumerate(units):
                await self._wait_to_transmit()
                # Only a frame's last unit carries its depth: it completes the frame.
                pipe._transmit(out, unit, depth if index == len(units) - 1 else 0)
        await self._wait_to_transmit()  # returns once the last unit has left

    async def _wait_to_transmit(self) -> None:
        """Wait until the link has sent what it holds (rate) and the reader left room."""
        out, pipe = self._out, self.pipe
        loop = asyncio.get_running_loop()
        while True:
            if pipe.broken is not None:
                raise LinkError("%s: link lost (%s)" % (self.label, pipe.broken))
            if self._closed:
                raise LinkError("%s: closed" % self.label)
            busy = out.busy_until - loop.time()
            if busy > 0:
                await asyncio.sleep(busy)  # the link is still sending: model its rate
            elif out.unread >= pipe.buffer_bytes:
                out.room.clear()
                await out.room.wait()
            else:
                return

    async def close(self) -> None:
        """Close this end (idempotent, never raises): what it sent still arrives, then EOF."""
        if self._closed:
            return
        self._closed = True
        self._out.closing = True
        self._out.readable.set()
        self._in.reader_gone = True
        self._in.drop_all()
