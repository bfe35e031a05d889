"""node.app.sdnotify against real AF_UNIX datagram sockets (path and abstract)."""

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(5)  # a deadline for recv, not a sleep
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_messages_to_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("listening on 0.0.0.0:4740")
    assert received(sock) == ["READY=1", "STATUS=listening on 0.0.0.0:4740"]
    assert notifier.status("2 links\nopen")
    assert received(sock) == ["STATUS=2 links open"]
    assert notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert received(sock) == ["STOPPING=1"]
    notifier.close()


def test_abstract_socket() -> None:
    name = "waystation-test-%d" % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert received(sock) == ["READY=1"]
        notifier.close()
    finally:
        sock.close()


def test_unset_is_a_no_op() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval() is None


def test_unsupported_address_is_a_no_op() -> None:
    assert not Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_missing_socket_does_not_raise(tmp_path: Path) -> None:
    with Notifier(str(tmp_path / "gone")) as notifier:
        assert notifier.enabled
        assert notifier.ready() is False


def test_watchdog_interval(listener: tuple[socket.socket, str]) -> None:
    _, path = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_environ(env).watchdog_interval() == 15.0
    mine = dict(env, WATCHDOG_PID=str(os.getpid()))
    assert Notifier.from_environ(mine).watchdog_interval() == 15.0
    other = dict(env, WATCHDOG_PID=str(os.getpid() + 1))
    assert Notifier.from_environ(other).watchdog_interval() is None
    bad = dict(env, WATCHDOG_USEC="soon")
    assert Notifier.from_environ(bad).watchdog_interval() is None


def test_rejects_malformed_assignment(listener: tuple[socket.socket, str]) -> None:
    with Notifier(listener[1]) as notifier:
        with pytest.raises(ValueError):
            notifier.notify("READY")
        with pytest.raises(ValueError):
            notifier.notify("STATUS=a\nREADY=1")
