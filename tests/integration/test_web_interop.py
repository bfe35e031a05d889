"""The web app's protocol code (Pyodide in Node, libsodium.js suite) against real processes.

A real relay (`waystation run`, 127.0.0.1, port 0), a real desktop member (`waystation peer`) and
the web app's member code driven from Node (web/tests/web_peer.mjs) reaching the relay over TCP
with Node's `net` bridged into Pyodide. Messages cross in both directions, in a group created on
either side. Needs Node.js and the npm packages of web/package-lock.json (tests/web_helpers.py
installs them with `npm ci` when missing).
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.procs import Member, Relay
from tests.web_helpers import WebPeer


def _bodies(messages: list[dict[str, object]]) -> list[object]:
    return [m["body"] for m in messages]


def test_python_group_messages_both_ways_with_the_web_member(tmp_path: Path) -> None:
    with Relay(tmp_path / "relay") as relay, WebPeer(tmp_path) as web:
        alice = Member(tmp_path / "alice", "Alice")
        alice.init()
        group = alice.create_group("friends")
        web.call("init", name="Bob-web")
        assert web.call("join", invitation=alice.invite(group)) == group
        assert web.call("sync", relay="tcp:" + relay.address)["ok"]  # Bob announces himself
        alice.sync(relay.address)  # Alice meets Bob and sends him her chain key
        alice.send(group, "hello from python")
        alice.sync(relay.address)

        outcome = web.call("sync", relay="tcp:" + relay.address)
        assert outcome["ok"], outcome
        assert outcome["received"] > 0
        messages = web.call("read", group=group)
        assert "hello from python" in _bodies(messages)
        assert [m["author"] for m in messages if m["body"] == "hello from python"] == ["Alice"]

        web.call("send", group=group, text="hello from the web ✓")
        assert web.call("sync", relay="tcp:" + relay.address)["ok"]
        alice.sync(relay.address)
        read = alice.read(group)
        assert "hello from the web ✓" in _bodies(read)
        assert [m["author"] for m in read if m["body"] == "hello from the web ✓"] == ["Bob-web"]


def test_web_group_joined_by_a_python_member(tmp_path: Path) -> None:
    with Relay(tmp_path / "relay") as relay, WebPeer(tmp_path) as web:
        web.call("init", name="Carol-web")
        group = web.call("group", name="from the phone")
        dave = Member(tmp_path / "dave", "Dave")
        dave.init()
        assert dave.join(web.call("invite", group=group)) == group
        dave.sync(relay.address)
        assert web.call("sync", relay="tcp:" + relay.address)["ok"]  # meets Dave, sends key
        web.call("send", group=group, text="written in the browser's code")
        assert web.call("sync", relay="tcp:" + relay.address)["ok"]
        dave.sync(relay.address)
        assert "written in the browser's code" in _bodies(dave.read(group))
        dave.send(group, "read on the desktop, answered")
        dave.sync(relay.address)
        assert web.call("sync", relay="tcp:" + relay.address)["ok"]
        assert "read on the desktop, answered" in _bodies(web.call("read", group=group))


def test_web_sync_with_no_relay_is_an_outcome_with_a_reason(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe, WebPeer(tmp_path) as web:
        probe.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        web.call("init", name="Erin-web")
        outcome = web.call("sync", relay="tcp:127.0.0.1:%d" % probe.getsockname()[1], timeout=5)
        assert outcome["ok"] is False
        assert "ECONNREFUSED" in outcome["reason"] or "refused" in outcome["reason"]
