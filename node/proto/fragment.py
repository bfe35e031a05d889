# BLE fragmentation (L0, sans-IO): one frame <-> fragments that fit one GATT write/notification.
#
# Theory of operation
# -------------------
# A GATT write or notification carries at most ATT_MTU - 3 bytes (20 at the default MTU of 23,
# up to 509 at 512). A frame (a session message, see framing.py) is cut into fragments of at most
# that size, each with a one-byte header:
#
#     bit 7  FIRST  this fragment starts a frame
#     bit 6  LAST   this fragment ends a frame (a one-fragment frame has both bits)
#     bits 5..0     fragment counter: 0, 1, 2, ... 63, 0, ... over the whole direction of the link
#
# followed by 0..(fragment_size - 1) bytes of the frame. Every frame, even an empty one, is at
# least one fragment. The counter runs across frame boundaries, so a lost fragment is detected
# even when it was a whole one-fragment frame, and a fragment out of order is detected too. One
# Fragmenter and one Reassembler per direction per link; both start at counter 0 when the link
# opens. GATT delivers writes and notifications in order per characteristic, so there is no
# retransmission or reordering here: any gap or surprise is a broken link (RemoteProtocolError),
# and the session above ends it.
#
# The Reassembler is bounded: it holds at most `max_frame_size` bytes; a frame that grows past
# that raises RemoteProtocolError(reason "too-large") on the fragment that crosses the bound. After
# any error it is dead (LocalProtocolError on every later call).

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
# A fragment must carry at least one byte of frame, so the smallest usable fragment is 2 bytes.
MIN_FRAGMENT_SIZE = HEADER_SIZE + 1


class Fragmenter:
    """Cuts frames into fragments for one direction of a link."""

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = 0

    def fragment(self, frame: bytes, fragment_size: int) -> "list[bytes]":
        """Return the fragments of `frame`, each at most `fragment_size` bytes (ATT_MTU - 3).

        Raises LocalProtocolError if `fragment_size` is below MIN_FRAGMENT_SIZE.
        """
        if type(fragment_size) is not int or fragment_size < MIN_FRAGMENT_SIZE:
            raise LocalProtocolError(
                "fragment_size must be an int >= %d, got %r" % (MIN_FRAGMENT_SIZE, fragment_size)
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
    """Rebuilds frames from the fragments of one direction of a link."""

    __slots__ = ("_counter", "_dead", "_parts", "_size", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        if type(max_frame_size) is not int or max_frame_size < 0:
            raise LocalProtocolError("max_frame_size must be a non-negative int")
        self.max_frame_size = max_frame_size
        self._counter = 0
        self._parts: "list[bytes] | None" = None  # None: between frames
        self._size = 0
        self._dead = False

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and its LAST fragment has not arrived."""
        return self._parts is not None

    def receive_fragment(self, fragment: bytes) -> "bytes | None":
        """Take one fragment; return the frame it completes, else None.

        Raises:
            RemoteProtocolError: empty fragment, counter gap (lost or reordered fragment), a
                continuation with no frame started, a new frame before the last one ended
                (reason "malformed"), or a frame longer than max_frame_size ("too-large").
            LocalProtocolError: called after an earlier error.
        """
        if self._dead:
            raise LocalProtocolError("the reassembler failed earlier and cannot be used")
        if not fragment:
            self._fail("empty fragment (no header byte)", REASON_MALFORMED)
        header = fragment[0]
        counter = header & COUNTER_MASK
        if counter != self._counter:
            self._fail(
                "fragment counter %d, expected %d (fragment lost or out of order)"
                % (counter, self._counter),
                REASON_MALFORMED,
            )
        parts = self._parts
        if header & FIRST:
            if parts is not None:
                self._fail("a frame started before the previous one ended", REASON_MALFORMED)
            parts = []
            self._size = 0
        elif parts is None:
            self._fail("continuation fragment with no frame started", REASON_MALFORMED)
        size = self._size + len(fragment) - HEADER_SIZE
        if size > self.max_frame_size:
            self._fail(
                "frame grows to %d bytes, the maximum is %d" % (size, self.max_frame_size),
                REASON_TOO_LARGE,
            )
        self._counter = (counter + 1) & COUNTER_MASK
        self._size = size
        parts.append(bytes(fragment[HEADER_SIZE:]))
        if header & LAST:
            self._parts = None
            return b"".join(parts)
        self._parts = parts
        return None

    def _fail(self, message: str, reason: str) -> "NoReturn":
        self._dead = True
        self._parts = None
        raise RemoteProtocolError(message, reason)
