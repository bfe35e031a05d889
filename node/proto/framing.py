# Stream framing (L0, sans-IO): byte streams (TCP, serial lines, UNIX sockets) <-> frames.
#
# Theory of operation
# -------------------
# A stream carries frames back to back; each frame is
#
#     length (4 bytes, unsigned big-endian) || payload (length bytes)
#
# and nothing else: no magic, no version byte, no checksum. The session that rides on the frames
# starts with a Noise handshake whose prologue names the protocol version, and every payload after
# the handshake is an AEAD ciphertext, so a version or CRC byte here would be unauthenticated and
# would add nothing. A length of 0 is a valid, empty frame (a keep-alive if the session wants one).
# docs/protocol.md ("Framing and fragmentation") shows the bytes.
#
# FrameDecoder is bounded. It is built with `max_frame_size`; as soon as the 4 header bytes of a
# frame are in, a length above that bound raises RemoteProtocolError(reason "too-large"), before a
# single byte of the body is waited for. Frames split across chunks at any byte boundary and many
# frames in one chunk both work. The caller's loop is:
#
#     decoder.receive_data(chunk)          # chunk as read from the transport
#     while (frame := decoder.next_frame()) is not None:
#         handle(frame)
#     ...at end of stream: decoder.receive_eof(), then drain next_frame() once more
#
# Feeding more data while a complete frame is still waiting is a caller bug (LocalProtocolError):
# that rule is what keeps the buffer at most one partial frame plus one chunk. receive_data
# checks the header of every frame that starts in the new data at once, so an oversize length
# anywhere in a chunk is reported by that call. After any error the decoder is dead: every later
# call raises LocalProtocolError (h11's rule: an error is final).

from node.errors import (
    REASON_MALFORMED,
    REASON_TOO_LARGE,
    LocalProtocolError,
    RemoteProtocolError,
)

HEADER_SIZE = 4
# The largest length the 4-byte header can express.
MAX_LENGTH = 0xFFFFFFFF


def encode_frame(payload: bytes, max_frame_size: int = MAX_LENGTH) -> bytes:
    """Return `payload` with its 4-byte big-endian length prefix.

    Raises LocalProtocolError if the payload is longer than `max_frame_size` (the peer would
    refuse it anyway).
    """
    n = len(payload)
    if n > max_frame_size:
        raise LocalProtocolError(
            "frame of %d bytes exceeds the maximum of %d" % (n, max_frame_size)
        )
    return n.to_bytes(HEADER_SIZE, "big") + payload


class FrameDecoder:
    """Splits a byte stream into frames; see the theory of operation above."""

    __slots__ = ("_base", "_buffer", "_dead", "_eof", "_offset", "_scanned", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        if type(max_frame_size) is not int or not 0 <= max_frame_size <= MAX_LENGTH:
            raise LocalProtocolError("max_frame_size must be an int in 0..%d" % MAX_LENGTH)
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._base = 0  # stream offset of _buffer[0], for error messages
        self._offset = 0  # start of the first frame not yet returned by next_frame
        self._scanned = 0  # start of the first frame not yet complete (headers checked up to here)
        self._eof = False
        self._dead = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as frames."""
        return len(self._buffer) - self._offset

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the stream.

        Raises:
            RemoteProtocolError: a frame header in the buffered data announces more than
                `max_frame_size` bytes (reason "too-large").
            LocalProtocolError: called after an error or after receive_eof, or while a complete
                frame is still waiting for next_frame.
        """
        self._check_alive()
        if self._eof:
            raise LocalProtocolError("receive_data after receive_eof")
        if self._scanned > self._offset:
            raise LocalProtocolError("drain next_frame() before feeding more data")
        if not data:
            return
        if self._offset:
            # Compact: everything before _offset has been handed out. (Slice assignment, not
            # `del`: MicroPython's bytearray has no item deletion.)
            self._buffer[: self._offset] = b""
            self._base += self._offset
            self._scanned -= self._offset
            self._offset = 0
        self._buffer.extend(data)
        self._scan()

    def receive_eof(self) -> None:
        """Mark the end of the stream. next_frame() then raises if the stream stopped mid-frame."""
        self._check_alive()
        self._eof = True

    def next_frame(self) -> "bytes | None":
        """Return the next complete frame's payload, or None if more data is needed.

        Raises:
            RemoteProtocolError: after receive_eof, when the stream ended inside a frame
                (reason "malformed").
        """
        self._check_alive()
        start = self._offset
        if start < self._scanned:
            buf = self._buffer
            length = int.from_bytes(buf[start : start + HEADER_SIZE], "big")
            body = start + HEADER_SIZE
            self._offset = body + length
            return bytes(buf[body : self._offset])
        if self._eof and len(self._buffer) > start:
            self._dead = True
            raise RemoteProtocolError(
                "stream ended inside the frame at stream offset %d (%d bytes of it received)"
                % (self._base + start, len(self._buffer) - start),
                REASON_MALFORMED,
            )
        return None

    def _scan(self) -> None:
        # Walk the headers of complete frames; stop at the first incomplete one. Every header
        # that is fully buffered is checked against the bound here, body or no body.
        buf = self._buffer
        end = len(buf)
        pos = self._scanned
        limit = self.max_frame_size
        while end - pos >= HEADER_SIZE:
            length = int.from_bytes(buf[pos : pos + HEADER_SIZE], "big")
            if length > limit:
                self._dead = True
                raise RemoteProtocolError(
                    "frame at stream offset %d announces %d bytes, the maximum is %d"
                    % (self._base + pos, length, limit),
                    REASON_TOO_LARGE,
                )
            if end - pos - HEADER_SIZE < length:
                break
            pos += HEADER_SIZE + length
        self._scanned = pos

    def _check_alive(self) -> None:
        if self._dead:
            raise LocalProtocolError("the frame decoder failed earlier and cannot be used")
