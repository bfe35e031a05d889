"""TCP links (L1): asyncio streams carrying length-prefixed frames (node.proto.framing).

A `TcpLink` moves whole frames: `recv()` returns the next frame or None at end of stream, `send()`
writes frames and waits for the socket buffer to drain (backpressure), `close()` ends the link.
Foreign errors (OSError, asyncio.IncompleteReadError, TimeoutError) become LinkError here and
nowhere else; a peer's oversize frame header becomes RemoteProtocolError from the decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from node.errors import LinkError
from node.proto.framing import FrameDecoder, encode_frame

READ_CHUNK = 65536
FRAME_HINT = 65535  # the largest frame a TCP link carries well (node.link.Link.frame_hint)
CLOSE_FLUSH_S = 2.0  # how long close() lets buffered frames drain before aborting


class TcpLink:
    """One framed TCP connection (a node.link.Link of kind "tcp").

    Args:
        reader, writer: the asyncio stream pair.
        max_frame: the largest frame accepted from the peer (bytes).
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_frame: int
    ) -> None:
        self.kind = "tcp"
        self.frame_hint = FRAME_HINT
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_frame)
        self._max_frame = max_frame
        self._eof = False
        peer = writer.get_extra_info("peername")
        self.label = "tcp:%s:%s" % (peer[0], peer[1]) if peer else "tcp:?"
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def recv(self) -> bytes | None:
        """The next frame, or None once the peer closed the stream.

        Raises:
            LinkError: the connection failed.
            RemoteProtocolError: the peer announced a frame over the limit, or the stream ended
                inside a frame.
        """
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return frame
            if self._eof:
                return None
            try:
                chunk = await self._reader.read(READ_CHUNK)
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise LinkError(
                    "read failed on %s: %s" % (self.label, exc), type(exc).__name__
                ) from exc
            if not chunk:
                self._eof = True
                self._decoder.receive_eof()
                continue
            self._decoder.receive_data(chunk)

    async def send(self, frames: list[bytes]) -> None:
        """Write frames and wait until the kernel has room for more.

        Raises:
            LinkError: the connection failed.
        """
        if not frames:
            return
        try:
            self._writer.write(b"".join(encode_frame(f, self._max_frame) for f in frames))
            await self._writer.drain()
        except (OSError, ConnectionError) as exc:
            raise LinkError(
                "write failed on %s: %s" % (self.label, exc), type(exc).__name__
            ) from exc

    async def close(self) -> None:
        """Close the connection (idempotent, never raises).

        What is still buffered gets CLOSE_FLUSH_S to reach the peer (a Bye, say); a peer that
        reads nothing does not hold the connection open: after that it is aborted.
        """
        with contextlib.suppress(OSError, ConnectionError):
            if not self._writer.is_closing():
                self._writer.close()
            try:
                async with asyncio.timeout(CLOSE_FLUSH_S):
                    await self._writer.wait_closed()
            except TimeoutError:
                self._writer.transport.abort()


async def connect(host: str, port: int, max_frame: int, timeout: float) -> TcpLink:
    """Open a framed TCP link to host:port within `timeout` seconds.

    Raises:
        LinkError: the connection could not be made in time.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError as exc:
        raise LinkError(
            "cannot connect to %s:%d: timed out" % (host, port), "TimeoutError"
        ) from exc
    except OSError as exc:
        # "Connection refused" rather than asyncio's "[Errno 111] Connect call failed (...)".
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise LinkError(
            "cannot connect to %s:%d: %s" % (host, port, reason), type(exc).__name__
        ) from exc
    return TcpLink(reader, writer, max_frame)
