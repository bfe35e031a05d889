"""The control endpoint in-process: a real UNIX socket served by ControlServer on an event loop.

The client is node.app.control.request (synchronous, as `waystation status` uses it), run in a
worker thread so the server's loop keeps turning.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.app import control
from node.app.control import (
    CommandError,
    ControlServer,
    ControlUnavailableError,
    parse_request,
    request,
)


def echo(args: Mapping[str, object]) -> object:
    if args.get("fail"):
        raise CommandError(control.BAD_ARGUMENTS, "fail must be false")
    return {"echo": dict(args)}


def broken(_args: Mapping[str, object]) -> object:
    raise ZeroDivisionError


def unencodable(_args: Mapping[str, object]) -> object:
    return {"when": object()}


HANDLERS = {"echo": echo, "broken": broken, "unencodable": unencodable}


async def served(data_dir: Path, counted: list[str]) -> ControlServer:
    server = ControlServer(data_dir, HANDLERS, counted.append)
    await server.open()
    assert server.serving
    return server


async def raw_exchange(path: Path, data: bytes, replies: int) -> list[dict[str, object]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(data)
    await writer.drain()
    lines = [json.loads(await reader.readline()) for _ in range(replies)]
    writer.close()
    return lines


def test_several_requests_on_one_connection_in_order(tmp_path: Path) -> None:
    async def main() -> list[dict[str, object]]:
        server = await served(tmp_path, [])
        try:
            return await raw_exchange(
                server.path,
                b'{"cmd": "echo", "args": {"a": 1}, "id": 1}\n'
                b'{"cmd": "echo", "args": {"fail": true}, "id": 2}\n'
                b'{"cmd": "broken", "id": 3}\n'
                b'{"cmd": "echo", "id": "four"}\n'
                b'{"cmd": "unencodable", "id": 5}\n',
                5,
            )
        finally:
            server.close()

    replies = asyncio.run(main())
    assert replies == [
        {"id": 1, "ok": True, "result": {"echo": {"a": 1}}},
        {"id": 2, "ok": False, "error": "bad-arguments", "message": "fail must be false"},
        {
            "id": 3,
            "ok": False,
            "error": "internal-error",
            "message": "internal error: ZeroDivisionError",
        },
        {"id": "four", "ok": True, "result": {"echo": {}}},
        {"id": 5, "ok": False, "error": "internal-error", "message": "internal error: TypeError"},
    ]
    assert not (tmp_path / control.SOCKET_NAME).exists()  # close() removes it


def test_request_client_gets_result_and_refusals(tmp_path: Path) -> None:
    async def main() -> tuple[object, str]:
        server = await served(tmp_path, [])
        try:
            result = await asyncio.to_thread(request, tmp_path, "echo", {"x": "y"})
            with pytest.raises(CommandError) as refused:
                await asyncio.to_thread(request, tmp_path, "nope")
            return result, refused.value.code
        finally:
            server.close()

    assert asyncio.run(main()) == ({"echo": {"x": "y"}}, "unknown-command")


def test_a_silent_client_is_cut_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "REQUEST_DEADLINE_S", 0.05)
    counted: list[str] = []

    async def main() -> tuple[list[dict[str, object]], bytes]:
        server = await served(tmp_path, counted)
        try:
            reader, writer = await asyncio.open_unix_connection(str(server.path))
            writer.write(b'{"cmd": "ec')  # half a request, then nothing
            line = json.loads(await reader.readline())
            rest = await reader.read()
            writer.close()
            return [line], rest
        finally:
            server.close()

    lines, rest = asyncio.run(main())
    assert lines == [
        {"id": None, "ok": False, "error": "timeout", "message": "no complete request within 0 s"}
    ]
    assert rest == b""  # and the connection is closed
    assert counted == ["control.refused.timeout"]


def test_clients_beyond_the_limit_are_told_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "MAX_CLIENTS", 1)
    counted: list[str] = []

    async def main() -> tuple[dict[str, object], dict[str, object]]:
        server = await served(tmp_path, counted)
        try:
            first_r, first_w = await asyncio.open_unix_connection(str(server.path))
            first_w.write(b'{"cmd": "echo", "id": 1}\n')
            first = json.loads(await first_r.readline())  # the first client is being served
            [second] = await raw_exchange(server.path, b"", 1)
            first_w.close()
            return first, second
        finally:
            server.close()

    first, second = asyncio.run(main())
    assert first["ok"] is True
    assert second["error"] == "busy"
    assert counted == ["control.refused.busy"]


def test_a_long_data_directory_path_still_gets_a_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep / control.SOCKET_NAME)) > control.SUN_PATH_MAX

    async def main() -> object:
        server = await served(deep, [])
        try:
            return await asyncio.to_thread(request, deep, "echo")
        finally:
            server.close()

    assert asyncio.run(main()) == {"echo": {}}


def test_a_socket_that_cannot_be_made_is_logged_not_fatal(tmp_path: Path) -> None:
    counted: list[str] = []

    async def main() -> bool:
        server = ControlServer(tmp_path / "missing", HANDLERS, counted.append)
        await server.open()
        return server.serving

    assert asyncio.run(main()) is False
    assert counted == ["control.errors"]


def test_client_errors_say_whether_a_daemon_runs(tmp_path: Path) -> None:
    with pytest.raises(ControlUnavailableError) as nothing:
        request(tmp_path, "status")
    assert nothing.value.running is False
    # Someone listens but never answers: a running daemon that is stuck.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
        stuck.bind(str(tmp_path / control.SOCKET_NAME))
        stuck.listen(1)
        with pytest.raises(ControlUnavailableError) as silent:
            request(tmp_path, "status", timeout=0.05)
    assert silent.value.running is True
    assert "did not answer within" in str(silent.value)


@given(st.binary(max_size=200))
def test_parse_request_refuses_anything_with_a_command_error(data: bytes) -> None:
    try:
        request_id, cmd, args = parse_request(data)
    except CommandError as exc:
        assert exc.code == control.BAD_REQUEST and exc.message
    else:
        assert isinstance(cmd, str) and cmd and isinstance(args, dict)
        assert not isinstance(request_id, dict | list)


JSON = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(["echo", "broken", "", "status"]),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["fail", "a"]), st.booleans(), max_size=2),
)


@given(st.dictionaries(st.sampled_from(["cmd", "args", "id", "x"]), JSON, max_size=4))
def test_answer_never_raises_on_any_json_object(request_object: dict[str, object]) -> None:
    server = ControlServer(Path("/nonexistent"), HANDLERS)
    reply = server.answer(json.dumps(request_object).encode())
    assert isinstance(reply["ok"], bool)
    assert reply["ok"] or isinstance(reply["message"], str)
    json.dumps(reply)  # always encodable
