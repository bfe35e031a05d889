# BLE fragmentation (L0, sans-IO): one frame <-> fragments that fit one GATT write/notification.
#
# Theory of operation
# -------------------
# A GATT write or notification carries at most ATT_MTU - 3 bytes: 20 at the smallest MTU (23),
# 514 at the largest (517). A frame (one Noise message, see framing.py) is cut into fragments of
# at most that size, each with a one-byte header:
#
#     bit 7  FIRST  this fragment starts a frame
#     bit 6  LAST   this fragment ends a frame (a one-fragment frame has both bits)
#     bits 5..0     fragment counter: 0, 1, 2, ... 63, 0, ... over the whole direction of the link
#
# followed by 1..(fragment_size - 1) bytes of the frame; only an empty frame has a fragment with no
# frame bytes, and that fragment is FIRST|LAST. One Fragmenter and one Reassembler per direction
# per link; both start at counter 0 when the link opens. At fragment size 182 (MTU 185) the header
# is 1 byte in 182: 99.45 % of each ATT payload is frame bytes.
#
# GATT delivers writes and notifications in order, but a stack may still drop one (a full
# notification queue, write-without-response under pressure) or repeat one. The counter detects
# that, and the damage stays inside the frame it touched: the Reassembler drops that frame,
# reports it (counters and `last_drop`, below), and resynchronises on the next FIRST fragment.
# The session above decides what a lost frame means (a Noise transport cannot skip a message, so
# in practice it ends the session with a clear reason; the reassembler itself never does).
#
# The Reassembler has three states and classifies each fragment into one input:
#
#   WAIT   no frame open; the last fragment was a LAST (or the link just opened)
#   FRAME  a frame is open: its fragments so far are in the buffer
#   SKIP   no frame open; fragments of a frame we dropped may still arrive and are discarded
#
#   DUP      identical to the fragment just before it (a repeat)
#   WHOLE    FIRST|LAST
#   START    FIRST, not LAST
#   NEXT     continuation with the expected counter, not LAST
#   END      continuation with the expected counter, LAST
#   ODD      continuation with another counter (something was lost or reordered), not LAST
#   ODD_END  continuation with another counter, LAST
#
# TRANSITIONS below maps (state, input) to (action, next state); it is the whole protocol.
# A repeat is discarded in every state. A FIRST always starts a new frame, dropping an open one
# whose end never came. A FIRST whose counter is not the expected one when no frame is open
# starts its frame too, and counts a gap (whole frames were lost before it). A continuation in
# WAIT is an orphan (its frame's start was lost): counted as a gap and discarded, and so are the
# rest of its frame's fragments (SKIP). An open frame older than `frame_timeout` seconds is
# dropped when the next fragment arrives or `expire(now)` is called (`deadline` says when): the
# caller passes `now`; this module reads no clock.
#
# Limits that no loss or repetition can explain are the peer's fault and end the link: an empty
# fragment, a fragment longer than MAX_FRAGMENT_SIZE (514), a fragment other than an empty frame
# that carries no frame bytes, a frame longer than `max_frame_size` ("too-large"), or a frame of
# more than `max_fragments` fragments (by default just enough for a `max_frame_size` frame at
# the smallest MTU). These raise RemoteProtocolError and the Reassembler is dead after that
# (LocalProtocolError on every later call). So a Reassembler holds at most `max_frame_size` bytes
# of frame (one bytearray; there is one open frame at most) plus the previous fragment
# (<= 514 bytes), whatever arrives, and spends at most `max_fragments` calls on one frame.
#
# Known blind spot: the counter is 6 bits, so a loss of exactly 64 (or 128, ...) consecutive
# fragments inside a frame is not seen here; the frame then has the wrong bytes and the session's
# AEAD refuses it. A loss of 63 fragments followed by a copy of the fragment before them reads as
# a repeat.

from node._compat import TYPE_CHECKING
from node.errors import (
    REASON_MALFORMED,
    REASON_TOO_LARGE,
    LocalProtocolError,
    RemoteProtocolError,
)

if TYPE_CHECKING:
    from typing import NoReturn

FIRST = 0x80
LAST = 0x40
COUNTER_MASK = 0x3F
HEADER_SIZE = 1
MIN_MTU = 23
MAX_MTU = 517
ATT_OVERHEAD = 3  # ATT opcode + handle in a write command or a notification
# A transport may put a one-byte tag in front of each fragment (BLE: the link id, docs/ble.md),
# so the smallest fragment is one byte under the smallest ATT payload.
TRANSPORT_TAG = 1
MIN_FRAGMENT_SIZE = MIN_MTU - ATT_OVERHEAD - TRANSPORT_TAG  # 19
MAX_FRAGMENT_SIZE = MAX_MTU - ATT_OVERHEAD  # 514
DEFAULT_FRAME_TIMEOUT = 60.0  # seconds: a 64 KiB frame at 1.1 kB/s (naive BlueZ D-Bus path)

# States.
WAIT = "WAIT"
FRAME = "FRAME"
SKIP = "SKIP"
STATES = (WAIT, FRAME, SKIP)

# Inputs (one per fragment).
DUP = "DUP"
WHOLE = "WHOLE"
START = "START"
NEXT = "NEXT"
END = "END"
ODD = "ODD"
ODD_END = "ODD_END"
INPUTS = (DUP, WHOLE, START, NEXT, END, ODD, ODD_END)

# Actions.
DISCARD = "discard"  # throw the fragment away, nothing to report
ORPHAN = "orphan"  # throw it away and report a gap (its frame's start was lost)
DELIVER = "deliver"  # the fragment is a whole frame: return it
OPEN = "open"  # start a frame with it
APPEND = "append"  # add it to the open frame
COMPLETE = "complete"  # add it and return the frame
RESTART_DELIVER = "restart-deliver"  # drop the open frame (its end was lost), deliver this one
RESTART_OPEN = "restart-open"  # drop the open frame (its end was lost), start a new one
ABANDON = "abandon"  # drop the open frame (a fragment was lost or reordered)

TRANSITIONS = {
    (WAIT, DUP): (DISCARD, WAIT),
    (WAIT, WHOLE): (DELIVER, WAIT),
    (WAIT, START): (OPEN, FRAME),
    (WAIT, NEXT): (ORPHAN, SKIP),
    (WAIT, END): (ORPHAN, WAIT),
    (WAIT, ODD): (ORPHAN, SKIP),
    (WAIT, ODD_END): (ORPHAN, WAIT),
    (FRAME, DUP): (DISCARD, FRAME),
    (FRAME, WHOLE): (RESTART_DELIVER, WAIT),
    (FRAME, START): (RESTART_OPEN, FRAME),
    (FRAME, NEXT): (APPEND, FRAME),
    (FRAME, END): (COMPLETE, WAIT),
    (FRAME, ODD): (ABANDON, SKIP),
    (FRAME, ODD_END): (ABANDON, WAIT),
    (SKIP, DUP): (DISCARD, SKIP),
    (SKIP, WHOLE): (DELIVER, WAIT),
    (SKIP, START): (OPEN, FRAME),
    (SKIP, NEXT): (DISCARD, SKIP),
    (SKIP, END): (DISCARD, WAIT),
    (SKIP, ODD): (DISCARD, SKIP),
    (SKIP, ODD_END): (DISCARD, WAIT),
}


def fragment_size_for_mtu(mtu: int) -> int:
    """Return the fragment size (ATT payload, MTU - 3) for a negotiated ATT MTU.

    Raises:
        LocalProtocolError: `mtu` is not an int in 23..517.
    """
    if type(mtu) is not int or not MIN_MTU <= mtu <= MAX_MTU:
        raise LocalProtocolError(
            "ATT MTU must be an int in %d..%d, got %r" % (MIN_MTU, MAX_MTU, mtu)
        )
    return mtu - ATT_OVERHEAD


def max_fragments_for(max_frame_size: int) -> int:
    """Return how many fragments a `max_frame_size` frame needs at the smallest fragment size."""
    room = MIN_FRAGMENT_SIZE - HEADER_SIZE
    return max(1, (max_frame_size + room - 1) // room)


class Fragmenter:
    """Cuts frames into fragments for one direction of a link."""

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = 0

    def fragment(self, frame: bytes, fragment_size: int) -> "list[bytes]":
        """Return the fragments of `frame`, each at most `fragment_size` bytes.

        Args:
            frame: the frame to send (any length; the peer's Reassembler bounds it).
            fragment_size: the room for one fragment: the ATT payload (MTU - 3), less any
                transport tag: 19..514.

        Raises:
            LocalProtocolError: `fragment_size` is not an int in 19..514.
        """
        if type(fragment_size) is not int or not (
            MIN_FRAGMENT_SIZE <= fragment_size <= MAX_FRAGMENT_SIZE
        ):
            raise LocalProtocolError(
                "fragment_size must be an int in %d..%d (ATT MTU - 3), got %r"
                % (MIN_FRAGMENT_SIZE, MAX_FRAGMENT_SIZE, fragment_size)
            )
        room = fragment_size - HEADER_SIZE
        total = len(frame)
        view = memoryview(frame)
        out = []
        counter = self._counter
        pos = 0
        flags = FIRST
        while True:
            end = pos + room
            if end >= total:
                end = total
                flags |= LAST
            out.append(bytes((flags | counter,)) + bytes(view[pos:end]))
            counter = (counter + 1) & COUNTER_MASK
            if flags & LAST:
                break
            pos = end
            flags = 0
        self._counter = counter
        return out


class Reassembler:
    """Rebuilds frames from the fragments of one direction of a link (see the theory above).

    Attributes:
        max_frame_size: the longest frame accepted (bytes).
        max_fragments: the most fragments one frame may have.
        frame_timeout: seconds an open frame may wait for its end.
        frames: frames delivered so far.
        frames_dropped: open frames dropped (a fragment lost, reordered or late).
        gaps: times fragments were found missing outside an open frame (whole frames lost).
        duplicates: repeated fragments discarded.
        last_drop: what happened the last time one of the three counters above moved.
    """

    __slots__ = (
        "_buffer",
        "_dead",
        "_expected",
        "_fragments",
        "_previous",
        "_started",
        "_state",
        "duplicates",
        "frame_timeout",
        "frames",
        "frames_dropped",
        "gaps",
        "last_drop",
        "max_fragments",
        "max_frame_size",
    )

    def __init__(
        self,
        max_frame_size: int,
        max_fragments: "int | None" = None,
        frame_timeout: float = DEFAULT_FRAME_TIMEOUT,
    ) -> None:
        """Make a reassembler for a fresh link direction (counter 0).

        Args:
            max_frame_size: the longest frame accepted (the link's maximum frame size).
            max_fragments: the most fragments in one frame; None: max_fragments_for(max_frame_size).
            frame_timeout: seconds from a frame's first fragment to its last (> 0).

        Raises:
            LocalProtocolError: an argument is out of range.
        """
        if type(max_frame_size) is not int or max_frame_size < 0:
            raise LocalProtocolError("max_frame_size must be a non-negative int")
        if max_fragments is None:
            max_fragments = max_fragments_for(max_frame_size)
        if type(max_fragments) is not int or max_fragments < 1:
            raise LocalProtocolError("max_fragments must be a positive int")
        if type(frame_timeout) not in (int, float) or not frame_timeout > 0:
            raise LocalProtocolError("frame_timeout must be a positive number of seconds")
        self.max_frame_size = max_frame_size
        self.max_fragments = max_fragments
        self.frame_timeout = frame_timeout
        self._state = WAIT
        self._expected = 0
        self._previous = b""  # the last fragment received (empty: none yet)
        self._buffer = bytearray()
        self._fragments = 0
        self._started = 0.0
        self._dead = False
        self.frames = 0
        self.frames_dropped = 0
        self.gaps = 0
        self.duplicates = 0
        self.last_drop: "str | None" = None

    @property
    def state(self) -> str:
        """WAIT, FRAME or SKIP (see the theory of operation)."""
        return self._state

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and its LAST fragment has not arrived."""
        return self._state == FRAME

    @property
    def buffered(self) -> int:
        """Bytes of the open frame held so far (0 when no frame is open)."""
        return len(self._buffer)

    @property
    def deadline(self) -> "float | None":
        """When the open frame expires (in the caller's `now` units), or None if none is open."""
        if self._state != FRAME:
            return None
        return self._started + self.frame_timeout

    def expire(self, now: float) -> bool:
        """Drop the open frame if it is older than `frame_timeout`; return True if it did.

        The caller's timer calls this at `deadline` so that a stalled frame's buffer is freed
        even when no further fragment arrives.
        """
        self._check_alive()
        deadline = self.deadline
        if deadline is None or now < deadline:
            return False
        self._drop(
            "frame incomplete after %d fragments and %s s: dropped"
            % (self._fragments, self.frame_timeout)
        )
        self._state = SKIP
        return True

    def receive_fragment(self, fragment: bytes, now: float) -> "bytes | None":
        """Take one fragment received at time `now`; return the frame it completes, else None.

        A lost, repeated or reordered fragment never raises: it drops at most the frame it
        touches and is reported (`frames_dropped`, `gaps`, `duplicates`, `last_drop`).

        Raises:
            RemoteProtocolError: the peer broke a rule no loss explains (reason "malformed": an
                empty fragment, one longer than 514 bytes, one with no frame bytes that is not an
                empty frame, more than `max_fragments` fragments in a frame; "too-large": a
                frame longer than `max_frame_size`). The reassembler is dead afterwards.
            LocalProtocolError: called after such an error.
        """
        self._check_alive()
        n = len(fragment)
        if n == 0:
            self._fail("empty fragment (no header byte)", REASON_MALFORMED)
        if n > MAX_FRAGMENT_SIZE:
            self._fail(
                "fragment of %d bytes is longer than any ATT payload (%d)" % (n, MAX_FRAGMENT_SIZE),
                REASON_MALFORMED,
            )
        header = fragment[0]
        if n == HEADER_SIZE and header & (FIRST | LAST) != FIRST | LAST:
            self._fail(
                "fragment 0x%02x carries no frame bytes and is not an empty frame" % header,
                REASON_MALFORMED,
            )
        self.expire(now)
        fragment = bytes(fragment)
        counter = header & COUNTER_MASK
        expected = self._expected
        kind = self._classify(fragment, header, counter)
        if kind == DUP:
            self.duplicates += 1
            self.last_drop = "fragment 0x%02x repeated: discarded" % header
        else:
            self._previous = fragment
            self._expected = (counter + 1) & COUNTER_MASK
            if header & FIRST and counter != expected and self._state != FRAME:
                self.gaps += 1
                self.last_drop = "%d fragment(s) lost before fragment %d" % (
                    (counter - expected) & COUNTER_MASK,
                    counter,
                )
        action, next_state = TRANSITIONS[(self._state, kind)]
        result = self._act(action, fragment, counter, expected, now)
        self._state = next_state
        return result

    def _classify(self, fragment: bytes, header: int, counter: int) -> str:
        if fragment == self._previous:
            return DUP
        if header & FIRST:
            return WHOLE if header & LAST else START
        if counter != self._expected:
            return ODD_END if header & LAST else ODD
        return END if header & LAST else NEXT

    def _act(
        self, action: str, fragment: bytes, counter: int, expected: int, now: float
    ) -> "bytes | None":
        if action == DISCARD:
            return None
        if action == ORPHAN:
            self.gaps += 1
            self.last_drop = "continuation fragment %d with no frame open: discarded" % counter
            return None
        if action in (RESTART_DELIVER, RESTART_OPEN):
            self._drop(
                "frame of %d fragments never ended (a new one starts at fragment %d): dropped"
                % (self._fragments, counter)
            )
        elif action == ABANDON:
            self._drop(
                "fragment counter %d, expected %d (fragment lost or out of order): "
                "frame of %d fragments dropped" % (counter, expected, self._fragments)
            )
            return None
        if action in (DELIVER, RESTART_DELIVER):
            self._add(fragment)
            return self._take()
        if action in (OPEN, RESTART_OPEN):
            self._started = now
            self._add(fragment)
            return None
        # APPEND or COMPLETE
        self._add(fragment)
        return self._take() if action == COMPLETE else None

    def _add(self, fragment: bytes) -> None:
        size = len(self._buffer) + len(fragment) - HEADER_SIZE
        if size > self.max_frame_size:
            self._fail(
                "frame grows to %d bytes, the maximum is %d" % (size, self.max_frame_size),
                REASON_TOO_LARGE,
            )
        if self._fragments >= self.max_fragments:
            self._fail("frame has more than %d fragments" % self.max_fragments, REASON_MALFORMED)
        self._fragments += 1
        self._buffer.extend(memoryview(fragment)[HEADER_SIZE:])

    def _take(self) -> bytes:
        frame = bytes(self._buffer)
        self._reset()
        self.frames += 1
        return frame

    def _drop(self, message: str) -> None:
        self.frames_dropped += 1
        self.last_drop = message
        self._reset()

    def _reset(self) -> None:
        self._buffer = bytearray()
        self._fragments = 0

    def _check_alive(self) -> None:
        if self._dead:
            raise LocalProtocolError("the reassembler failed earlier and cannot be used")

    def _fail(self, message: str, reason: str) -> "NoReturn":
        self._dead = True
        self._state = WAIT
        self._reset()
        raise RemoteProtocolError(message, reason)
