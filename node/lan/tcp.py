"""TCP links (L1): asyncio streams carrying length-prefixed frames (node.proto.framing).

Theory of operation
-------------------
This module is the whole TCP transport; nothing TCP-specific lives outside node/lan/.

- `TcpLink` moves whole frames: `recv()` returns the next frame or None at end of stream, `send()`
  writes frames and waits for the socket buffer to drain (backpressure), `close()` ends the link.
  Its `kind` is ``tcp``, its `label` ``tcp:HOST:PORT`` (the peer's address), its `frame_hint`
  65,535 unless told otherwise: TCP carries large frames well.
- `TcpListener` binds every listening address first (`open()`: a port that is taken fails before
  the daemon creates anything), then `serve()` hands each accepted connection, as a finished
  TcpLink, to the daemon's one bounded LinkQueue with its source (the peer's IP address); a
  full queue, or the daemon's admission gate refusing that source, closes the newcomer at once. An
  address's host may be an IP literal, a DNS name, a wildcard (``0.0.0.0``, ``::``) or the name
  of a network interface (``eth0``: every address it has). IPv6 sockets are IPv6-only, so
  ``::`` and ``0.0.0.0`` on one port are two sockets that do not collide. Port 0 lets the kernel
  pick a port for the first socket; every other socket of a port-0 address takes the same one.
- `TcpDialer` turns a ``tcp:HOST:PORT`` PeerAddress into a TcpLink.

The limit `max_frame` is the largest frame *payload* accepted from the peer (the 4-byte length
header is the decoder's business, never the caller's). Foreign errors (OSError,
asyncio.IncompleteReadError, TimeoutError, socket.gaierror) become LinkError here and nowhere
else; a peer's oversize frame header becomes RemoteProtocolError from the decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Sequence

from node.errors import ConfigError, LinkError
from node.lan.address import HostPort, parse_host_port
from node.link import MAX_FRAME_HINT, LinkQueue, PeerAddress, check_frame_hint
from node.proto.framing import FrameDecoder, encode_frame

READ_CHUNK = 65536
CLOSE_FLUSH_S = 2.0  # how long close() lets buffered frames drain before aborting
BACKLOG = 128
WILDCARDS = ("0.0.0.0", "::")
# A wildcard address whose family this host lacks (no IPv6 at all) is skipped, not fatal, as
# long as another socket is bound: the default listens on both families.
_FAMILY_MISSING = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)

SockAddr = tuple[str, int] | tuple[str, int, int, int]


def _format(host: str, port: int) -> str:
    return str(HostPort(host, port))


class TcpLink:
    """One framed TCP connection.

    Args:
        reader, writer: the asyncio stream pair.
        max_frame: the largest frame payload accepted from the peer (bytes).
        frame_hint: the largest frame this link carries well (bytes).
    """

    kind = "tcp"

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_frame: int,
        frame_hint: int = MAX_FRAME_HINT,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_frame)
        self._max_frame = max_frame
        self._eof = False
        self.frame_hint = check_frame_hint(frame_hint)
        peer = writer.get_extra_info("peername")
        self.label = "tcp:" + _format(peer[0], peer[1]) if peer else "tcp:?"
        # Per-source admission limits count links by the peer's IP address (a whole address,
        # also for IPv6: on a LAN every member shares one /64).
        self.source: str = peer[0] if peer else "?"
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


async def connect(
    host: str, port: int, max_frame: int, timeout: float, frame_hint: int = MAX_FRAME_HINT
) -> TcpLink:
    """Open a framed TCP link to host:port within `timeout` seconds.

    Raises:
        LinkError: the connection could not be made in time.
    """
    where = _format(host, port)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError as exc:
        raise LinkError("cannot connect to %s: timed out" % where, "TimeoutError") from exc
    except OSError as exc:
        # "Connection refused" rather than asyncio's "[Errno 111] Connect call failed (...)".
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise LinkError("cannot connect to %s: %s" % (where, reason), type(exc).__name__) from exc
    return TcpLink(reader, writer, max_frame, frame_hint)


class TcpDialer:
    """Opens TCP links to ``tcp:HOST:PORT`` peer addresses.

    Args:
        max_frame: the largest frame payload accepted from a peer (bytes).
        frame_hint: the frame hint of the links it makes.
    """

    kind = "tcp"

    def __init__(self, max_frame: int, frame_hint: int = MAX_FRAME_HINT) -> None:
        self.max_frame = max_frame
        self.frame_hint = check_frame_hint(frame_hint)

    async def dial(self, address: PeerAddress, timeout: float) -> TcpLink:
        """A link to `address` within `timeout` seconds.

        Raises:
            LinkError: not a tcp address, a malformed one, or the peer could not be reached.
        """
        if address.kind != self.kind:
            raise LinkError("the tcp dialer cannot dial %s" % address)
        try:
            where = parse_host_port(address.where, str(address))
        except ConfigError as exc:
            raise LinkError("cannot dial %s" % exc) from None
        return await connect(where.host, where.port, self.max_frame, timeout, self.frame_hint)


def tcp_address(host: str, port: int) -> PeerAddress:
    """The peer address ``tcp:HOST:PORT`` of a TCP endpoint (an IPv6 host in brackets)."""
    return PeerAddress("tcp", _format(host, port))


def interface_addresses(name: str, port: int) -> list[SockAddr] | None:
    """The socket addresses of every IP of the network interface `name`, or None if no local
    interface has that name. IPv6 link-local addresses carry their scope."""
    import ifaddr

    for adapter in ifaddr.get_adapters():
        if name not in (adapter.name, adapter.nice_name):
            continue
        found: list[SockAddr] = []
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple):
                address, flowinfo, scope = ip.ip
                found.append((address, port, flowinfo, scope))
            else:
                found.append((ip.ip, port))
        return found
    return None


def _resolve(endpoint: HostPort) -> list[SockAddr]:
    """The socket addresses to bind for one configured endpoint."""
    addresses = interface_addresses(endpoint.host, endpoint.port)
    if addresses is not None:
        if not addresses:
            raise LinkError("interface %s has no IP address" % endpoint.host)
        return addresses
    try:
        infos = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise LinkError(
            "%s is neither a network interface of this machine nor a known address (%s)"
            % (endpoint.host, exc.strerror),
            "gaierror",
        ) from None
    found: list[SockAddr] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr not in found:
            found.append(sockaddr)  # type: ignore[arg-type]
    return found


def _bind(sockaddr: SockAddr) -> socket.socket:
    family = socket.AF_INET6 if len(sockaddr) == 4 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class TcpListener:
    """Accepts TCP links on one or more addresses and hands them to the daemon.

    Args:
        endpoints: where to listen; hosts may be IP literals, names, wildcards or interfaces.
        max_frame: the largest frame payload accepted from a peer (bytes).
        frame_hint: the frame hint of the links it makes.
    """

    kind = "tcp"

    def __init__(
        self, endpoints: Sequence[HostPort], max_frame: int, frame_hint: int = MAX_FRAME_HINT
    ) -> None:
        if not endpoints:
            raise LinkError("a TCP listener needs at least one address")
        self.endpoints = tuple(endpoints)
        self.max_frame = max_frame
        self.frame_hint = check_frame_hint(frame_hint)
        self.skipped: list[str] = []  # wildcard addresses whose family this host lacks
        self._sockets: list[socket.socket] = []

    @property
    def bound(self) -> list[HostPort]:
        """The addresses actually listened on (ports resolved), after `open()`."""
        return [HostPort(*s.getsockname()[:2]) for s in self._sockets]

    @property
    def port(self) -> int:
        """The port of the first address listened on (zeroconf advertises it)."""
        if not self._sockets:
            raise LinkError("the TCP listener is not open")
        port: int = self._sockets[0].getsockname()[1]
        return port

    def open(self) -> None:
        """Bind every address now (idempotent).

        Raises:
            LinkError: an address cannot be listened on (in use, not ours, unknown name); what
                was bound so far is closed again.
        """
        if self._sockets:
            return
        picked = 0  # the port the kernel picked for the first port-0 socket
        try:
            for endpoint in self.endpoints:
                for sockaddr in _resolve(endpoint):
                    if endpoint.port == 0 and picked:
                        sockaddr = (sockaddr[0], picked, *sockaddr[2:])
                    try:
                        sock = _bind(sockaddr)
                    except OSError as exc:
                        if endpoint.host in WILDCARDS and exc.errno in _FAMILY_MISSING:
                            self.skipped.append(str(endpoint))
                            continue
                        raise LinkError(
                            "cannot listen on %s: %s"
                            % (_format(sockaddr[0], sockaddr[1]), exc.strerror or exc),
                            type(exc).__name__,
                        ) from None
                    self._sockets.append(sock)
                    if endpoint.port == 0 and not picked:
                        picked = sock.getsockname()[1]
            if not self._sockets:
                raise LinkError(
                    "cannot listen on %s: no address of this host"
                    % ", ".join(map(str, self.endpoints))
                )
        except LinkError:
            self.close()
            raise

    def close(self) -> None:
        """Stop listening (idempotent); links already accepted are not touched."""
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    async def serve(self, accepted: LinkQueue) -> None:
        """Accept links on every address and offer each to `accepted` until cancelled.

        Raises:
            LinkError: an address cannot be listened on.
        """
        self.open()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Runs in asyncio's server task: hand the link over (bounded) and return at once.
            link = TcpLink(reader, writer, self.max_frame, self.frame_hint)
            if not accepted.offer(link, link.source):
                writer.transport.abort()  # refused: no lingering close for a flood to pile up

        servers: list[asyncio.Server] = []
        try:
            for sock in self._sockets:
                servers.append(await asyncio.start_server(on_connect, sock=sock))
            await asyncio.Future()  # until cancelled
        finally:
            for server in servers:
                server.close()
            self._sockets = []
