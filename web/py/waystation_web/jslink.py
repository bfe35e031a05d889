"""A `node.link.Link` over a JavaScript byte stream (TCP framing, docs/protocol.md).

Theory of operation
-------------------
The page and the Node tests give Python a *stream* object made in JavaScript: ``read()``
returns a Promise of the next chunk (a Uint8Array) or undefined (None) at the end,
``write(bytes)`` a Promise that resolves once the stream has room again (backpressure),
``close()`` a Promise, and ``label``.
Node's ``net`` gives one (web/src/node_tcp.mjs); the BLE stream of phase 2 will carry fragments
instead and get its own Link. `StreamLink` cuts the byte stream into session frames with the same
L0 codec as node.lan.tcp (node.proto.framing), so the bytes on the wire are the TCP link's.

This is the one place where the stream's JavaScript errors (JsException) become LinkError.
"""

import contextlib
from typing import Any

from node.errors import LinkError
from node.link import MAX_FRAME_HINT, PeerAddress, check_frame_hint
from node.proto.framing import FrameDecoder, encode_frame
from waystation_web.ffi import JsException, to_js


class StreamLink:
    """Session frames over a JavaScript byte stream.

    Args:
        stream: the JavaScript stream (read/write/close/label).
        max_frame: the largest frame accepted from the peer (bytes).
        kind: the link kind reported to the session ("tcp" for Node's net).
    """

    def __init__(self, stream: Any, max_frame: int, kind: str = "tcp") -> None:
        self._stream = stream
        self._decoder = FrameDecoder(max_frame)
        self._max_frame = max_frame
        self._eof = False
        self._closed = False
        self.kind = kind
        self.label = str(stream.label)
        self.frame_hint = check_frame_hint(MAX_FRAME_HINT)

    async def recv(self) -> bytes | None:
        """The next frame, or None once the peer closed the stream.

        Raises:
            LinkError: the stream failed.
            RemoteProtocolError: an oversize frame, or the stream ended inside a frame.
        """
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return frame
            if self._eof:
                return None
            try:
                chunk = await self._stream.read()
            except JsException as exc:
                text = "read failed on %s: %s" % (self.label, exc)
                raise LinkError(text, "JsException") from None
            if chunk is None:
                self._eof = True
                self._decoder.receive_eof()
                continue
            self._decoder.receive_data(bytes(chunk.to_bytes()))

    async def send(self, frames: list[bytes]) -> None:
        """Write frames; waits while the stream has no room.

        Raises:
            LinkError: the stream failed.
        """
        if not frames:
            return
        data = b"".join(encode_frame(f, self._max_frame) for f in frames)
        try:
            await self._stream.write(to_js(data))
        except JsException as exc:
            raise LinkError("write failed on %s: %s" % (self.label, exc), "JsException") from None

    async def close(self) -> None:
        """Close the stream (idempotent, never raises)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(JsException):
            await self._stream.close()


class StreamDialer:
    """Dials ``tcp:HOST:PORT`` through a JavaScript function that opens a stream.

    Args:
        open_stream: JavaScript ``(host, port, timeoutMs) => Promise<stream>``.
        max_frame: the largest frame accepted from a peer (bytes).
    """

    kind = "tcp"

    def __init__(self, open_stream: Any, max_frame: int) -> None:
        self._open = open_stream
        self._max_frame = max_frame

    async def dial(self, address: PeerAddress, timeout: float) -> StreamLink:
        """A link to `address` within `timeout` seconds.

        Raises:
            LinkError: not a tcp address, or the peer could not be reached.
        """
        host, sep, port = address.where.rpartition(":")
        if address.kind != self.kind or not sep or not port.isdigit():
            raise LinkError("cannot dial %s: expected tcp:HOST:PORT" % address)
        try:
            stream = await self._open(host.strip("[]"), int(port), int(timeout * 1000))
        except JsException as exc:
            text = "cannot connect to %s: %s" % (address.where, exc)
            raise LinkError(text, "JsException") from None
        return StreamLink(stream, self._max_frame)
