"""The daemon as systemd and a LAN see it: sd_notify READY/STOPPING, zeroconf discovery, SIGTERM.

A real `waystation run` process with NOTIFY_SOCKET pointing at a datagram socket of this test,
zeroconf restricted to 127.0.0.1, and a real `waystation peer sync --discover` finding it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WAYSTATION = str(Path(sys.executable).with_name("waystation"))


def recv_until(sock: socket.socket, wanted: str) -> list[str]:
    """Datagrams until one contains `wanted` (the socket's timeout is the deadline)."""
    seen = []
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message:
            return seen


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WAYSTATION, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_ready_discovery_sync_and_graceful_stop(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path))
    relay = subprocess.Popen(
        [WAYSTATION, "run", "--data", str(tmp_path / "relay"), "--listen", "127.0.0.1:0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = recv_until(sock, "READY=1")[-1]
        port = int(ready.split("relaying on port ")[1].split()[0])
        assert run("peer", "init", "--data", str(tmp_path / "a"), "--name", "A").returncode == 0
        made = run("peer", "group", "create", "--data", str(tmp_path / "a"), "hut")
        assert made.returncode == 0, made.stderr
        synced = run(
            "peer", "sync", "--data", str(tmp_path / "a"),
            "--discover", "--interface", "127.0.0.1", "--timeout", "30",
        )  # fmt: skip
        assert synced.returncode == 0, synced.stderr
        assert "synced with 127.0.0.1:%d" % port in synced.stdout
        assert ": sent 3," in synced.stdout  # device added, initial member, name
        relay.terminate()
        recv_until(sock, "STOPPING=1")
        assert relay.wait(timeout=20) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
        sock.close()
        log = relay.stderr.read() if relay.stderr else ""
        if relay.stderr:
            relay.stderr.close()
    assert "shutting down" in log
    status = json.loads((tmp_path / "relay" / "status.json").read_text())
    assert status["counters"].get("links.closed.ok") == 1
    assert status["store"]["entries"] == 3
    key = (tmp_path / "relay" / "node.key").read_bytes()
    assert (tmp_path / "relay" / "node.key").stat().st_mode & 0o777 == 0o600
    assert key.hex() not in log


def test_peer_sync_discover_without_relay_fails_with_reason(tmp_path: Path) -> None:
    assert run("peer", "init", "--data", str(tmp_path / "a"), "--name", "A").returncode == 0
    result = run(
        "peer", "sync", "--data", str(tmp_path / "a"),
        "--discover", "--interface", "127.0.0.1", "--timeout", "2",
    )  # fmt: skip
    assert result.returncode == 3  # EXIT_SYNC_FAILED: the sync failed, not the user
    assert "no relay answered on the LAN" in result.stderr
