"""`waystation status` against real relay processes, over the real control socket.

Every relay is a `waystation run` child process (tests/integration/procs.py); every status query
is a `waystation status` child process, or a raw UNIX-socket client for hostile requests. Waits
are on the relays' log lines, with deadlines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from node.app.control import MAX_REQUEST_BYTES, SOCKET_NAME
from node.proto.framing import encode_frame
from node.proto.messages import ROLE_MEMBER
from node.proto.session import Session
from tests.integration.procs import WAYSTATION, Member, Relay, child_env, trusting
from tests.sync_helpers import SUITE

DEADLINE_S = 20.0


def status(data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WAYSTATION, "status", "--data", str(data_dir), *flags],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env=child_env(data_dir.parent),
        stdin=subprocess.DEVNULL,
    )


def status_json(data_dir: Path) -> dict[str, Any]:
    done = status(data_dir, "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def ask(path: Path, data: bytes, half_close: bool = True) -> list[dict[str, Any]]:
    """Send raw bytes on the control socket and return every reply line until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(DEADLINE_S)
        sock.connect(str(path))
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        replies = b""
        while chunk := sock.recv(65536):
            replies += chunk
    return [json.loads(line) for line in replies.splitlines()]


def test_status_of_a_running_relay_shows_identity_links_store_and_peers(tmp_path: Path) -> None:
    # Each relay lists the other's link key (relay.trusted), so they treat each other as relays.
    config = trusting(tmp_path / "r2.toml", [tmp_path / "r1"], "[lan]\nsync_interval_s = 1\n")
    with Relay(tmp_path / "r1", config=trusting(tmp_path / "r1.toml", [tmp_path / "r2"])) as r1:
        member = Member(tmp_path / "alice", "Alice")
        member.init()
        group = member.create_group("friends")
        member.send(group, "hello")
        member.sync(r1.address)
        with Relay(tmp_path / "r2", peers=[r1.address, "127.0.0.1:1"], config=config) as r2:
            r2.wait_for_line(re.compile(r"relay tcp:127\.0\.0\.1:1 unreachable"), DEADLINE_S)
            r2.wait_for_line(re.compile(r"tcp:127\.0\.0\.1:%d closed: ok" % r1.port), DEADLINE_S)
            # A link left open in the middle of its handshake: one Noise message, then silence.
            with socket.create_connection(("127.0.0.1", r1.port), timeout=DEADLINE_S) as link:
                session = Session(SUITE, True, SUITE.random_bytes(32), ROLE_MEMBER, 0)
                sent = b"".join(encode_frame(f) for f in session.frames_to_send())
                link.sendall(sent)
                assert link.recv(4)  # the relay answered, so it has taken the link
                report = status_json(r1.data_dir)
                text = status(r1.data_dir)
            peer_report = status_json(r2.data_dir)

    identity = subprocess.run(
        [WAYSTATION, "identity", "--data", str(r1.data_dir)], capture_output=True, text=True
    )
    fingerprint = identity.stdout.split()[1]
    assert report["fingerprint"] == fingerprint
    assert report["pid"] == r1.proc.pid
    version = subprocess.run([WAYSTATION, "--version"], capture_output=True, text=True)
    assert report["version"] == version.stdout.split()[1]
    assert report["uptime_s"] >= 0 and report["time"] >= report["started"]
    assert report["listening"] == [{"transport": "tcp", "address": r1.address}]
    assert report["transports"]["tcp"] == "listening"
    assert report["transports"]["zeroconf"] == "off"
    [open_link] = report["links"]
    assert open_link["kind"] == "tcp" and open_link["direction"] == "in"
    assert open_link["role"] == "handshake"
    assert open_link["bytes_in"] == len(sent) - 4  # frame payload, without the length prefix
    assert open_link["bytes_out"] > 0 and open_link["age_s"] >= 0
    assert report["links_open"] == 1
    assert report["logs"] == 2  # the group's two logs (metadata and messages)
    assert report["store"]["entries"] >= 2 and report["store"]["bytes"] > 0
    assert report["store"]["quota"]["total_bytes"] == 1073741824
    fullest = report["log_usage"]["fullest"]
    assert 0 < fullest["bytes"] <= fullest["quota"] == 16777216
    assert report["counters"]["links.closed.ok"] >= 2  # alice's sync and r2's
    assert report["relay_peers"] == []

    peers = {p["address"]: p for p in peer_report["relay_peers"]}
    assert set(peers) == {"tcp:" + r1.address, "tcp:127.0.0.1:1"}
    synced = peers["tcp:" + r1.address]
    assert synced["source"] == "config"
    assert synced["last_sync"]["outcome"] == "ok"
    assert synced["last_sync"]["at"] <= peer_report["time"]
    assert peer_report["logs"] == 2  # what alice wrote to r1 reached r2
    assert peers["tcp:127.0.0.1:1"]["last_sync"]["outcome"] == "unreachable"
    assert peer_report["counters"]["peers.unreachable"] >= 1

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("waystation %s, pid %d, up " % (report["version"], r1.proc.pid))
    assert lines[1].startswith("node       %s (waystation)" % fingerprint)
    assert "listening  tcp:%s" % r1.address in lines
    assert "links      1 open" in lines
    assert any(line.startswith("logs       2 carried (0 pinned); fullest ") for line in lines)
    assert "relays     0 known" in lines


def test_status_json_file_has_the_same_fields_and_a_timestamp(tmp_path: Path) -> None:
    with Relay(tmp_path / "r") as relay:
        live = status_json(relay.data_dir)
        assert relay.terminate() == 0
    written = json.loads((relay.data_dir / "status.json").read_text())
    assert set(written) == set(live)
    assert written["time"] >= live["time"] and written["pid"] == live["pid"]
    assert not (relay.data_dir / SOCKET_NAME).exists()  # removed at exit


def test_status_with_no_daemon_says_so_and_exits_3(tmp_path: Path) -> None:
    missing = status(tmp_path / "nowhere")
    assert missing.returncode == 3
    assert missing.stdout == ""
    assert missing.stderr == (
        "waystation: no waystation daemon is running on %s (no such directory)\n"
        % (tmp_path / "nowhere")
    )
    (tmp_path / "empty").mkdir()
    empty = status(tmp_path / "empty")
    assert empty.returncode == 3
    assert "(no control socket %s)" % (tmp_path / "empty" / SOCKET_NAME) in empty.stderr
    # A socket left behind by a daemon that was killed: nobody listens on it.
    stale_dir = tmp_path / "stale"
    stale_dir.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leftover:
        leftover.bind(str(stale_dir / SOCKET_NAME))
    stale = status(stale_dir)
    assert stale.returncode == 3
    assert "stale control socket" in stale.stderr and "nobody answers" in stale.stderr


def test_a_killed_relay_leaves_a_stale_socket_that_the_next_start_replaces(tmp_path: Path) -> None:
    with Relay(tmp_path / "r") as relay:
        relay.kill()
    assert (relay.data_dir / SOCKET_NAME).exists()
    assert status(relay.data_dir).returncode == 3
    with Relay(tmp_path / "r") as again:
        assert status_json(again.data_dir)["pid"] == again.proc.pid


def test_garbage_on_the_control_socket_gets_one_error_line_each(tmp_path: Path) -> None:
    with Relay(tmp_path / "r") as relay:
        path = relay.data_dir / SOCKET_NAME
        replies = ask(
            path,
            b"garbage\n"
            b"\xff\xfe\n"
            b"[1, 2]\n"
            b'{"args": {}}\n'
            b'{"cmd": 5}\n'
            b'{"cmd": "status", "args": []}\n'
            b'{"cmd": "status", "extra": 1}\n'
            b'{"cmd": "status", "id": {"a": 1}}\n'
            b'{"cmd": "reboot", "id": "x"}\n'
            b"\n"
            b'{"cmd": "status", "id": 42}\n'
            b'{"cmd": "status"',  # no newline before EOF
        )
        codes = [(r["ok"], r.get("error"), r["id"]) for r in replies]
        assert codes == [
            (False, "bad-request", None),
            (False, "bad-request", None),
            (False, "bad-request", None),
            (False, "bad-request", None),
            (False, "bad-request", None),
            (False, "bad-request", None),
            (False, "bad-request", None),
            (False, "bad-request", None),
            (False, "unknown-command", "x"),
            (True, None, 42),
            (False, "bad-request", None),
        ]
        messages = [r.get("message", "") for r in replies]
        assert messages[0].startswith("request is not JSON")
        assert messages[1].startswith("request is not UTF-8")
        assert messages[2] == "request must be a JSON object, got an array"
        assert messages[3] == 'request needs "cmd": a command name string'
        assert messages[5] == '"args" must be a JSON object, got an array'
        assert messages[6] == "unknown request field 'extra' (fields: cmd, args, id)"
        assert messages[8] == "unknown command 'reboot' (commands: %s)" % ", ".join(
            sorted(["status", "pair.open", "pair.join", "pair.status", "devices.list",
                    "devices.rename", "devices.set_quota", "devices.revoke"])
        )  # fmt: skip
        assert messages[10] == "request ends without a newline"
        # Too long: one error line, then the connection is closed (the line boundary is lost).
        huge = ask(path, b"x" * (MAX_REQUEST_BYTES + 10), half_close=False)
        assert [(r["error"], r["message"]) for r in huge] == [
            ("too-large", "request longer than %d bytes" % MAX_REQUEST_BYTES)
        ]
        # The daemon is unharmed, and counted every refusal.
        report = status_json(relay.data_dir)
        assert report["pid"] == relay.proc.pid
        counters = report["counters"]
        assert counters["control.refused.bad-request"] == 9
        assert counters["control.refused.unknown-command"] == 1
        assert counters["control.refused.too-large"] == 1
        assert "Traceback" not in relay.log


def test_the_control_socket_is_owner_only(tmp_path: Path) -> None:
    # A data directory anyone may enter, so the socket's own mode is the only barrier.
    base = Path(tempfile.mkdtemp(prefix="operator-perm-"))
    try:
        base.chmod(0o755)
        data = base / "data"
        data.mkdir(mode=0o755)
        with Relay(data) as relay:
            path = relay.data_dir / SOCKET_NAME
            mode = path.stat().st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
            if os.geteuid() != 0:
                pytest.skip("switching to another user needs root")
            assert connect_as_nobody(path) == "EACCES"
            # Loosened by hand: the daemon still refuses a stranger by its credentials.
            path.chmod(0o666)
            reply = connect_as_nobody(path)
            assert reply.startswith('{"error":"forbidden"'), reply
            assert "uid 65534 may not use" in reply
            assert status_json(relay.data_dir)["counters"]["control.refused.forbidden"] == 1
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)


def connect_as_nobody(path: Path) -> str:
    """In a forked child running as uid/gid 65534: connect, ask status, return what came back."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, only the socket and the pipe
        os.close(reader)
        result = b""
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(DEADLINE_S)
                sock.connect(str(path))
                with contextlib.suppress(BrokenPipeError):  # refused before it could ask
                    sock.sendall(b'{"cmd": "status"}\n')
                result = sock.recv(4096)
        except PermissionError:
            result = b"EACCES"
        except BaseException as exc:
            result = repr(exc).encode()
        finally:
            os.write(writer, result)
            os._exit(0)
    os.close(writer)
    deadline = time.monotonic() + DEADLINE_S
    chunks = []
    while chunk := os.read(reader, 65536):
        chunks.append(chunk)
    os.close(reader)
    _, code = os.waitpid(pid, 0)
    assert code == 0 and time.monotonic() < deadline
    return b"".join(chunks).decode()
