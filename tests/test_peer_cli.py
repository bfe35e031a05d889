"""`waystation peer ...` in-process: init, group create, invite, join, send, read, and mistakes.

Two members' data directories exchange entries only through a relay-side SQLite store holding
entries and sign_pub (what `peer sync` will do over the network).
"""

import argparse
import json
from pathlib import Path

import pytest

from node.app.peer_cli import (
    add_peer_commands,
    after_sync,
    open_member,
    run_peer_command,
    sync_logs,
    sync_policy_logs,
)
from node.crypto._nacl import NaclSuite
from node.member.logio import log_entries
from node.store.sqlite import SQLiteStore
from node.sync.entry import decode_entry
from node.sync.store import REFUSED
from node.sync.wire import parse_log_header

SUITE = NaclSuite()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="waystation")
    add_peer_commands(top.add_subparsers(dest="command"))
    return top


def peer(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    args = parser().parse_args(["peer", *argv])
    code = run_peer_command(args)
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = peer(capsys, *argv)
    assert code == 0, err
    return out


def exchange(relay_path: Path, *data_dirs: Path) -> None:
    """Each member uploads to the relay, then each downloads from it (entries + sign_pub only)."""
    relay = SQLiteStore(relay_path, SUITE.ed25519_verify)
    try:
        for direction in ("up", "down"):
            for data in data_dirs:
                with open_member(data) as session:
                    for log in sync_logs(session.client):
                        relay.add_log(log.address, log.sign_pub)
                    src, dst = (
                        (session.store, relay) if direction == "up" else (relay, session.store)
                    )
                    for log in sync_logs(session.client):
                        entries = [
                            decode_entry(src.get_block(e.cid) or b"")
                            for e in log_entries(src, log.address)
                        ]
                        results = dst.put_entries(entries, 1_700_000_000)
                        assert all(r.status != REFUSED for r in results)
                        dst.commit()
                    if direction == "down":
                        after_sync(session.client)
    finally:
        relay.close()


def test_two_members_through_a_relay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob, relay = tmp_path / "alice", tmp_path / "bob", tmp_path / "relay.db"
    assert "account created" in ok(capsys, "init", "--data", str(alice), "--name", "alice")
    ok(capsys, "init", "--data", str(bob), "--name", "bob")
    group = ok(capsys, "group", "create", "--data", str(alice), "picnic").strip()
    assert len(group) == 64 and int(group, 16) >= 0
    assert ok(capsys, "groups", "--data", str(alice)).split() == [group, "picnic"]
    invitation = ok(capsys, "invite", "--data", str(alice), group).strip()
    assert invitation.startswith("waystation:invite:")
    assert ok(capsys, "join", "--data", str(bob), invitation).strip() == group
    exchange(relay, bob, alice, bob)  # alice learns bob's device and shares her chain key
    ok(capsys, "send", "--data", str(alice), "picnic", "bring bread")
    ok(capsys, "send", "--data", str(alice), group[:10], "and cheese\nplease")
    exchange(relay, alice, bob)
    text = ok(capsys, "read", "--data", str(bob), group)
    lines = text.splitlines()
    assert "alice: bring bread" in lines[0] and lines[0].endswith("Z  alice: bring bread")
    assert "alice: and cheese" in lines[1] and lines[2].strip() == "please"
    ok(capsys, "send", "--data", str(bob), "picnic", "on my way")
    exchange(relay, bob, alice)
    records = [
        json.loads(line)
        for line in ok(capsys, "read", "--data", str(alice), "--json", group).splitlines()
    ]
    assert [r["body"] for r in records] == ["bring bread", "and cheese\nplease", "on my way"]
    assert [r["author"] for r in records] == ["alice", "alice", "bob"]
    assert [r["mine"] for r in records] == [True, True, False]
    assert set(records[0]) >= {"cid", "lamport", "member", "device", "sent_ms", "time"}
    # the relay's database holds neither text nor the group secret
    with open_member(alice) as session:
        secret = session.client.groups[group].group.secret
        policy = sync_policy_logs(session.client)
        for log in sync_logs(session.client):
            assert parse_log_header(log.header) == policy[log.address]
    raw = relay.read_bytes()
    for wal in relay.parent.glob(relay.name + "-*"):
        raw += wal.read_bytes()
    for needle in (
        b"bring bread",
        b"cheese",
        b"on my way",
        b"picnic",
        b"alice",
        secret,
        secret.hex().encode(),
    ):
        assert needle not in raw
    assert len(policy) == 2


def test_user_mistakes_exit_non_zero_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "m"
    code, _out, err = peer(capsys, "send", "--data", str(data), "g", "hi")
    assert code == 1 and "peer init" in err and "Traceback" not in err
    assert not data.exists()
    ok(capsys, "init", "--data", str(data), "--name", "me")
    code, _out, err = peer(capsys, "init", "--data", str(data), "--name", "me")
    assert code == 1 and "already" in err
    code, _out, err = peer(capsys, "read", "--data", str(data), "nosuchgroup")
    assert code == 1 and "unknown group" in err
    code, _out, err = peer(capsys, "join", "--data", str(data), "waystation:invite:AAAA")
    assert code == 1 and "invitation" in err
    code, _out, err = peer(capsys, "join", "--data", str(data), "https://example.org")
    assert code == 1 and "not a Waystation invitation" in err
    code, _out, err = peer(capsys, "init", "--data", str(tmp_path / "x"), "--name", " ")
    assert code == 1 and "name" in err
    code, _out, err = peer(capsys)
    assert code == 2 and "name a command" in err
    code, _out, err = peer(capsys, "group")
    assert code == 2


def test_read_of_an_empty_group_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "m"
    ok(capsys, "init", "--data", str(data), "--name", "me")
    group = ok(capsys, "group", "create", "--data", str(data), "solo").strip()
    assert ok(capsys, "read", "--data", str(data), group) == ""
    assert ok(capsys, "read", "--data", str(data), "--json", group) == ""
    cid = ok(capsys, "send", "--data", str(data), "solo", "note to self").strip()
    assert cid.startswith("bafy")
    out = ok(capsys, "read", "--data", str(data), "--json", "solo")
    assert json.loads(out)["body"] == "note to self" and json.loads(out)["cid"] == cid


def test_discover_says_what_it_does_and_what_to_try(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--discover past its deadline. zeroconf itself is replaced here (on this shared machine
    other engineers' relays would answer); the real browser's deadline is the lead's
    tests/integration/test_discovery.py."""
    from node.app import sync_client
    from node.errors import LinkError

    asked: list[float] = []

    async def nobody(timeout: float, interfaces: list[str] | None = None) -> tuple[str, int]:
        asked.append(timeout)
        raise LinkError("no relay answered on the LAN within %.0f s" % timeout)

    monkeypatch.setattr(sync_client, "discover_relay", nobody)
    data = tmp_path / "m"
    ok(capsys, "init", "--data", str(data), "--name", "me")
    code, out, err = peer(capsys, "sync", "--data", str(data), "--discover", "--timeout", "7")
    assert code == 3 and out == "" and asked == [7.0]
    first, last = err.splitlines()
    assert first == "looking for a relay on the LAN (zeroconf) for up to 7 s ..."
    assert last.startswith("waystation peer: no relay answered on the LAN within 7 s")
    assert "--relay HOST:PORT" in last


def test_read_last_and_send_without_readers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "m"
    ok(capsys, "init", "--data", str(data), "--name", "me")
    ok(capsys, "group", "create", "--data", str(data), "solo")
    for text in ("one", "two", "three"):
        code, _out, err = peer(capsys, "send", "--data", str(data), "solo", text)
        assert code == 0 and "nobody else in this group can read this yet" in err
    out = ok(capsys, "read", "--data", str(data), "solo", "--last", "2")
    assert [line.rsplit(": ", 1)[1] for line in out.splitlines()] == ["two", "three"]
