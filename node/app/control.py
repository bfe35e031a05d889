"""The local control endpoint: a UNIX socket in the data directory that speaks JSON lines.

Theory of operation
-------------------
The daemon serves `DATA/control.sock` (mode 0600, so only its own user and root can connect; a
peer whose SO_PEERCRED uid is neither is refused once more, in case someone loosened the mode).
A client writes one request per line and reads one reply per line, in order, as many as it likes
on one connection (docs/operations.md, "The control endpoint", is the reference):

    -> {"cmd": "status", "args": {}, "id": 7}
    <- {"id": 7, "ok": true, "result": {...}}
    <- {"id": 7, "ok": false, "error": "unknown-command", "message": "..."}

Each request is a JSON object of at most MAX_REQUEST_BYTES bytes, `cmd` a string naming a handler,
`args` an optional object, `id` an optional scalar echoed back. Everything a client sends is
hostile: a request that is not JSON, too long, or names no command gets exactly one error line
(and, when the line boundary is lost, the connection is closed); a client that sends nothing for
REQUEST_DEADLINE_S or does not read its replies is cut; at most MAX_CLIENTS connections are
served at once (the next gets one `busy` line). A handler that fails unexpectedly answers
`internal-error` and is logged; the daemon never notices.

Handlers are plain callables `args -> JSON-able result`; they run on the daemon's event loop, so
they must be quick (reading counters, not scanning disks). Commands the console issue adds (its
`status`, `peers`, `logs`, ...) are more entries in the same table, so a serial line, `waystation
console` and a script get the same JSON.

The client side (`request`) is synchronous: `waystation status` is a short-lived command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from node.errors import NodeError

log = logging.getLogger("waystation.control")

SOCKET_NAME = "control.sock"
MAX_REQUEST_BYTES = 4096
REQUEST_DEADLINE_S = 10.0
WRITE_DEADLINE_S = 10.0
MAX_CLIENTS = 8
MAX_REPLY_BYTES = 16 * 1024 * 1024  # what the client accepts
SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the terminating NUL

# Error codes of a reply (docs/operations.md lists them).
BAD_REQUEST = "bad-request"
TOO_LARGE = "too-large"
UNKNOWN_COMMAND = "unknown-command"
BAD_ARGUMENTS = "bad-arguments"
INTERNAL_ERROR = "internal-error"
TIMEOUT = "timeout"
FORBIDDEN = "forbidden"
BUSY = "busy"

Handler = Callable[[Mapping[str, object]], object]


class CommandError(NodeError):
    """A handler refuses a request; the client gets `code` and `message`.

    Args:
        code: one of the error codes (usually BAD_ARGUMENTS).
        message: what was wrong and what is accepted, in the user's words.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ControlUnavailableError(NodeError):
    """The client could not get an answer.

    Attributes:
        running: False when no daemon serves the socket (no socket, or nobody listening);
            True when one seems to run but did not answer properly (permissions, deadline).
    """

    def __init__(self, message: str, running: bool) -> None:
        super().__init__(message)
        self.running = running


def socket_path(data_dir: Path) -> Path:
    """Where the daemon of `data_dir` serves its control endpoint."""
    return data_dir / SOCKET_NAME


def error_reply(request_id: object, code: str, message: str) -> dict[str, object]:
    """The reply for a refused request."""
    return {"id": request_id, "ok": False, "error": code, "message": message}


def parse_request(line: bytes) -> tuple[object, str, Mapping[str, object]]:
    """Decode one request line into (id, cmd, args).

    Raises:
        CommandError: BAD_REQUEST, naming what was wrong.
    """
    try:
        request = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CommandError(BAD_REQUEST, "request is not UTF-8: %s" % exc.reason) from exc
    except ValueError as exc:
        raise CommandError(BAD_REQUEST, "request is not JSON: %s" % exc) from exc
    if not isinstance(request, dict):
        raise CommandError(BAD_REQUEST, "request must be a JSON object, got %s" % _kind(request))
    request_id = request.get("id")
    if isinstance(request_id, dict | list):
        raise CommandError(BAD_REQUEST, "id must be a string, number or null")
    unknown = sorted(set(request) - {"cmd", "args", "id"})
    if unknown:
        raise CommandError(
            BAD_REQUEST, "unknown request field %r (fields: cmd, args, id)" % unknown[0]
        )
    cmd = request.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise CommandError(BAD_REQUEST, 'request needs "cmd": a command name string')
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise CommandError(BAD_REQUEST, '"args" must be a JSON object, got %s' % _kind(args))
    return request_id, cmd, args


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def encode_reply(reply: Mapping[str, object]) -> bytes:
    """One reply line (compact JSON, newline-terminated)."""
    return json.dumps(reply, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"


class ControlServer:
    """Serves the handlers on `DATA/control.sock` (see the module docstring).

    Args:
        data_dir: the daemon's data directory.
        handlers: command name -> handler.
        count: called with a counter name for each refused request or client (the daemon's
            `ctx.count`), so `status` shows them.
    """

    def __init__(
        self,
        data_dir: Path,
        handlers: Mapping[str, Handler],
        count: Callable[[str], None] = lambda _name: None,
    ) -> None:
        self.path = socket_path(data_dir)
        self.handlers = dict(handlers)
        self._count = count
        self._server: asyncio.Server | None = None
        self._clients = 0
        self._uid = os.getuid()

    @property
    def serving(self) -> bool:
        """True once the socket is bound and accepting."""
        return self._server is not None

    async def open(self) -> None:
        """Bind the socket (owner-only) and start accepting; never raises.

        A stale socket left by a daemon that died is replaced (the data directory's lock,
        `waystation.lock`, has already made sure no other daemon uses this directory). When the
        socket cannot be made, the relay keeps relaying without it: the error is logged and
        counted.
        """
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            old_umask = os.umask(0o177)
            try:
                with _short_path(self.path) as path:
                    self._server = await asyncio.start_unix_server(
                        self._client, path, limit=MAX_REQUEST_BYTES + 1
                    )
            finally:
                os.umask(old_umask)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            self._count("control.errors")
            log.error(
                "control endpoint %s unavailable (`waystation status` will not work): %s",
                self.path,
                exc.strerror or exc,
            )

    async def serve(self) -> None:
        """Serve until cancelled, then close and remove the socket."""
        try:
            await asyncio.Event().wait()  # the server accepts on its own; we only wait
        finally:
            self.close()

    def close(self) -> None:
        """Stop accepting and remove the socket (clients being served finish on their own)."""
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Runs in asyncio's per-connection task; it must end on its own (deadlines) and never raise.
        self._clients += 1
        try:
            refusal = self._refusal(writer)
            if refusal is not None:
                self._count("control.refused." + refusal[0])
                await self._send(writer, error_reply(None, *refusal))
                return
            while await self._one_request(reader, writer):
                pass
        except Exception:  # a bug here costs this client, never the daemon
            self._count("control.errors")
            log.exception("control client: internal error")
        finally:
            self._clients -= 1
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(WRITE_DEADLINE_S):
                    await writer.wait_closed()

    def _refusal(self, writer: asyncio.StreamWriter) -> tuple[str, str] | None:
        if self._clients > MAX_CLIENTS:
            return BUSY, "%d control clients are connected already; try again" % MAX_CLIENTS
        uid = _peer_uid(writer)
        if uid is not None and uid not in (self._uid, 0):
            return FORBIDDEN, "uid %d may not use this relay's control endpoint" % uid
        return None

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read one request and answer it; False when the connection should end."""
        try:
            async with asyncio.timeout(REQUEST_DEADLINE_S):
                line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # EOF: fine between requests, not inside one
            if exc.partial.strip():
                self._count("control.refused." + BAD_REQUEST)
                await self._send(
                    writer, error_reply(None, BAD_REQUEST, "request ends without a newline")
                )
            return False
        except asyncio.LimitOverrunError:
            self._count("control.refused." + TOO_LARGE)
            message = "request longer than %d bytes" % MAX_REQUEST_BYTES
            await self._send(writer, error_reply(None, TOO_LARGE, message))
            return False
        except TimeoutError:
            self._count("control.refused." + TIMEOUT)
            message = "no complete request within %.0f s" % REQUEST_DEADLINE_S
            await self._send(writer, error_reply(None, TIMEOUT, message))
            return False
        except OSError:
            return False
        if not line.strip():
            return True  # an empty line (a person pressing Enter in socat) is no request
        return await self._send(writer, self.answer(line))

    def answer(self, line: bytes) -> dict[str, object]:
        """The reply to one request line (also usable without a socket)."""
        request_id: object = None
        try:
            request_id, cmd, args = parse_request(line)
            handler = self.handlers.get(cmd)
            if handler is None:
                names = ", ".join(sorted(self.handlers))
                raise CommandError(
                    UNKNOWN_COMMAND, "unknown command %r (commands: %s)" % (cmd, names)
                )
            result = handler(args)
            encode_reply({"result": result})  # a result that is not JSON is the handler's bug
        except CommandError as exc:
            self._count("control.refused." + exc.code)
            return error_reply(request_id, exc.code, exc.message)
        except Exception as exc:  # a handler's bug costs this request only
            self._count("control.errors")
            log.exception("control command failed")
            return error_reply(
                request_id, INTERNAL_ERROR, "internal error: %s" % type(exc).__name__
            )
        return {"id": request_id, "ok": True, "result": result}

    async def _send(self, writer: asyncio.StreamWriter, reply: Mapping[str, object]) -> bool:
        try:
            writer.write(encode_reply(reply))
            async with asyncio.timeout(WRITE_DEADLINE_S):
                await writer.drain()
        except (OSError, TimeoutError):
            return False
        return True


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


@contextlib.contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """`path` as a string short enough for sockaddr_un (through /proc/self/fd when needed)."""
    text = str(path)
    if len(os.fsencode(text)) <= SUN_PATH_MAX:
        yield text
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield "/proc/self/fd/%d/%s" % (fd, path.name)
    finally:
        os.close(fd)


def request(
    data_dir: Path, cmd: str, args: Mapping[str, object] | None = None, timeout: float = 5.0
) -> dict[str, object]:
    """Ask the daemon of `data_dir` one command and return its `result`.

    Raises:
        ControlUnavailableError: no daemon runs there, or it did not answer in time or in form.
        CommandError: the daemon refused the request (its `error` and `message`).
    """
    path = socket_path(data_dir)
    line = encode_reply({"cmd": cmd, "args": dict(args or {}), "id": 1})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with _short_path(path) as short:
                sock.connect(short)
            with contextlib.suppress(BrokenPipeError):  # refused at once: its reply is waiting
                sock.sendall(line)
            reply = _read_line(sock)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if not isinstance(exc, FileNotFoundError):
                why = "stale control socket %s: nobody answers" % path
            elif data_dir.is_dir():
                why = "no control socket %s" % path
            else:
                why = "no such directory"
            message = "no waystation daemon is running on %s (%s)" % (data_dir, why)
            raise ControlUnavailableError(message, running=False) from exc
        except PermissionError as exc:
            raise ControlUnavailableError(
                "permission denied on %s: run as the relay's user or root" % path, running=True
            ) from exc
        except TimeoutError as exc:
            raise ControlUnavailableError(
                "the daemon did not answer within %.0f s (%s)" % (timeout, path), running=True
            ) from exc
        except OSError as exc:
            raise ControlUnavailableError(
                "%s: %s" % (path, exc.strerror or exc), running=True
            ) from exc
    try:
        decoded = json.loads(reply)
    except ValueError as exc:
        raise ControlUnavailableError(
            "the daemon's reply is not JSON: %s" % exc, running=True
        ) from exc
    if not isinstance(decoded, dict) or not isinstance(decoded.get("ok"), bool):
        raise ControlUnavailableError('the daemon\'s reply has no "ok" field', running=True)
    if not decoded["ok"]:
        raise CommandError(str(decoded.get("error")), str(decoded.get("message")))
    result = decoded.get("result")
    if not isinstance(result, dict):
        raise ControlUnavailableError("the daemon's reply has no result object", running=True)
    return result


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ControlUnavailableError("the daemon closed the connection without a reply", True)
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)
        if size > MAX_REPLY_BYTES:
            raise OSError("reply longer than %d bytes" % MAX_REPLY_BYTES)
