"""`waystation peer` as a person meets it: real processes, real files, a real relay where needed.

Hostile content (issue 16 findings 1 and 6), the JSON-file migration, Ctrl-C, two commands at
once, a closed stdout, a lost or damaged store, errors in the user's words, --json, and the
refusal of each other's data directory by a relay and a member. Setup that is not under test
(accounts, groups, entries moving between two members) runs in-process through the same code;
whatever is under test runs as a `waystation` child process.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.member import exchange  # what a sync through a relay does, in-process
from node.app.peer_cli import open_member
from node.app.peer_session import PeerSession
from node.crypto._nacl import NaclSuite
from node.member.logio import append_plan_from_store
from node.member.store_files import write_json
from node.sync.cid import CID
from node.sync.entry import create_entry
from tests.integration.procs import WAYSTATION, Member, Relay, child_env

SUITE = NaclSuite()
T0 = 1_700_000_000.0
NOBODY = "nobody else in this group can read this yet"


def run(home: Path, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """One `waystation ...` process; never raises on its exit status."""
    return subprocess.run(
        [WAYSTATION, *argv],
        capture_output=True,
        text=True,
        env=child_env(home),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def clean_failure(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one stderr line of a refused command (no traceback)."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


def pair(tmp_path: Path) -> tuple[Path, Path, str]:
    """alice created a group, bob joined, each has seen the other (in-process setup)."""
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    PeerSession(alice, create_name="alice").close()
    PeerSession(bob, create_name="bob").close()
    with open_member(alice) as a:
        group = a.client.create_group("friends", T0)
        invitation = a.client.invitation(group)
    with open_member(bob) as b:
        b.client.join(invitation, T0 + 1)
    exchange(bob, alice)
    exchange(alice, bob)
    return alice, bob, group


def write_raw_message(data: Path, group: str, payload: str) -> None:
    """An entry of the group's messages log with this payload, validly signed by the group key:
    what any member (everyone holds the signing key) can write."""
    with open_member(data) as session:
        state = session.client.groups[group]
        address = state.messages_address
        next_cids, refs, clock = append_plan_from_store(session.store, address)
        sign_pub, sign_sk = state.group.signing_keypair(SUITE)
        entry = create_entry(
            address,
            payload,
            next_cids,
            refs,
            clock,
            sign_pub,
            lambda m: SUITE.ed25519_sign(sign_sk, m),
        )
        session.store.put_entries([entry], T0)
        session.store.commit()


# ---- issue 16 finding 1: a member's payload bricks the others --------------------------------


def test_deeply_nested_payload_is_shown_as_unreadable_not_fatal(tmp_path: Path) -> None:
    alice, bob, group = pair(tmp_path)
    write_raw_message(alice, group, "[" * 994 + "]" * 994)
    with open_member(alice) as session:
        session.client.send(group, "after the bomb", T0 + 10)
    exchange(alice, bob)  # bob's process() meets the entry in-process: must not raise either
    for _ in range(2):  # and every later command keeps working
        read = run(tmp_path, "peer", "read", "--data", str(bob), group)
        assert read.returncode == 0 and "Traceback" not in read.stderr, read.stderr
        lines = read.stdout.splitlines()
        assert any(
            "(an unreadable message from an unknown member: entry payload is nested deeper" in line
            for line in lines
        ), lines
        assert lines[-1].endswith("alice: after the bomb"), lines
    as_json = run(tmp_path, "peer", "read", "--data", str(bob), group, "--json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["unreadable"] for r in records].count(True) == 1
    sent = run(tmp_path, "peer", "send", "--data", str(bob), group, "still here")
    assert sent.returncode == 0, sent.stderr


# ---- issue 16 finding 6, and the same rule for member.sqlite3 --------------------------------


def export_legacy(data: Path) -> None:
    """Turn a member directory into the JSON files of before member.sqlite3 (account.json,
    groups/<id>.json version 1 with done, messages and the ratchet's read keys)."""
    with open_member(data) as session:
        client = session.client
        write_json(data / "account.json", client.account.to_dict())
        (data / "groups").mkdir(mode=0o700)
        conn = sqlite3.connect(data / "member.sqlite3")
        for group_id, state in client.groups.items():
            saved = state.to_dict()
            saved["version"] = 1
            del saved["retry"]
            done = []
            for address in (state.metadata_address, state.messages_address):
                row = client.saved.marks[address].row
                for (digest,) in conn.execute("SELECT digest FROM handled WHERE log = ?", (row,)):
                    done.append(CID(0x71, digest).to_bytes())
            saved["done"] = done
            saved["messages"] = [m.to_dict() for m in client.saved.messages(state, None)]
            saved["ratchet"]["read_keys"] = [
                list(row)
                for row in conn.execute(
                    "SELECT cid, device, counter, message_key FROM read_keys WHERE group_id = ?",
                    (group_id,),
                )
            ]
            write_json(data / "groups" / (group_id + ".json"), saved)
        conn.close()
    for path in data.glob("member.sqlite3*"):
        path.unlink()


def test_json_files_are_migrated(tmp_path: Path) -> None:
    alice, bob, group = pair(tmp_path)
    with open_member(alice) as session:
        session.client.send(group, "one", T0 + 10)
        session.client.send(group, "two", T0 + 11)
    exchange(alice, bob)
    before = run(tmp_path, "peer", "read", "--data", str(bob), group, "--json").stdout
    assert [json.loads(line)["body"] for line in before.splitlines()] == ["one", "two"]
    export_legacy(bob)
    after = run(tmp_path, "peer", "read", "--data", str(bob), group, "--json")
    assert after.returncode == 0, after.stderr
    assert after.stdout == before
    assert (bob / "account.json.migrated").exists() and (bob / "groups.migrated").is_dir()
    assert not (bob / "account.json").exists()
    assert run(tmp_path, "peer", "send", "--data", str(bob), group, "three").returncode == 0
    exchange(bob, alice)
    with open_member(alice) as session:
        assert [m.body for m in session.client.read(group)] == ["one", "two", "three"]


def damage_account_bytes(data: Path) -> str:
    (data / "account.json").write_text('{"$b": 5}')
    return "account.json"


def damage_account_nesting(data: Path) -> str:
    (data / "account.json").write_text("[" * 5000)
    return "account.json"


def damage_group_key(data: Path) -> str:
    path = next((data / "groups").glob("*.json"))
    saved = json.loads(path.read_text())
    saved["device_sk"] = {}
    path.write_text(json.dumps(saved))
    return "groups/"


@pytest.mark.parametrize("damage", [damage_account_bytes, damage_account_nesting, damage_group_key])
def test_damaged_json_file_is_named_not_a_traceback(tmp_path: Path, damage: Any) -> None:
    alice, _bob, _group = pair(tmp_path)
    export_legacy(alice)
    named = damage(alice)
    err = clean_failure(run(tmp_path, "peer", "groups", "--data", str(alice)))
    assert err.startswith("waystation peer: ") and named in err and len(err.splitlines()) == 1, err
    assert not (alice / "member.sqlite3").exists()  # nothing half-migrated


def garbage_database(path: Path) -> str:
    path.write_bytes(b"this is not SQLite at all" * 100)
    return "member.sqlite3"


def wrong_group_row(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE groups SET state = json_set(state, '$.device_sk', json('{}'))")
    return "device_sk"


def wrong_message_row(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE messages SET body = X'00ff'")
    return "a message row"


@pytest.mark.parametrize("damage", [garbage_database, wrong_group_row, wrong_message_row])
def test_damaged_database_is_named_not_a_traceback(tmp_path: Path, damage: Any) -> None:
    alice, _bob, group = pair(tmp_path)
    with open_member(alice) as session:
        session.client.send(group, "one", T0 + 10)
    what = damage(alice / "member.sqlite3")
    err = clean_failure(run(tmp_path, "peer", "read", "--data", str(alice), group))
    assert "member.sqlite3 is damaged" in err and what in err and len(err.splitlines()) == 1, err


# ---- Ctrl-C, two commands at once, a closed stdout -------------------------------------------


def test_ctrl_c_during_sync_exits_130_without_traceback(tmp_path: Path) -> None:
    data = tmp_path / "alice"
    PeerSession(data, create_name="alice").close()
    with socket.socket() as silent:  # accepts (kernel backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        proc = subprocess.Popen(
            [WAYSTATION, "peer", "sync", "--data", str(data), "--relay", "127.0.0.1:%d" % port],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(tmp_path),
        )
        started = threading.Event()
        lines: list[str] = []

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if line.startswith("syncing with"):
                    started.set()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        try:
            assert started.wait(30), lines
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
        finally:
            proc.kill()
            proc.wait()
            reader.join(10)
            assert proc.stderr is not None
            proc.stderr.close()
    err = "".join(lines)
    assert "Traceback" not in err and "interrupted" in err, err


def test_a_second_command_on_the_same_directory_is_told_so(tmp_path: Path) -> None:
    data = tmp_path / "alice"
    PeerSession(data, create_name="alice").close()
    fd = os.open(data / "peer.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running command holds
        err = clean_failure(run(tmp_path, "peer", "groups", "--data", str(data)))
        assert "another waystation peer command is using %s" % data in err
        assert "locked" not in err
    finally:
        os.close(fd)
    assert run(tmp_path, "peer", "groups", "--data", str(data)).returncode == 0


def test_read_into_head_exits_quietly(tmp_path: Path) -> None:
    alice, _bob, group = pair(tmp_path)
    with open_member(alice) as session:
        for i in range(8):  # ~128 KB of output: more than a pipe holds
            session.client.send(group, ("%d " % i) * 8000, T0 + 10 + i)
    script = '"%s" peer read --data "%s" "%s" | head -c 100 >/dev/null; exit ${PIPESTATUS[0]}' % (
        WAYSTATION,
        alice,
        group,
    )
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=child_env(tmp_path), timeout=60
    )
    assert done.returncode == 141 and done.stderr == "", (done.returncode, done.stderr)


# ---- a lost store ----------------------------------------------------------------------------


def lamports(member: Member, group: str) -> list[int]:
    return [m["lamport"] for m in member.read(group)]


@pytest.mark.parametrize("how", ["deleted", "damaged"])
def test_lost_store_is_recovered_before_writing(tmp_path: Path, how: str) -> None:
    alice = Member(tmp_path / "alice", "alice")
    alice.init()
    group = alice.create_group("friends")
    with Relay(tmp_path / "relay") as relay:
        for text in ("one", "two", "three"):
            alice.send(group, text)
        alice.sync(relay.address)
        had = max(lamports(alice, group))
        store = alice.data_dir / "store.sqlite3"
        for path in alice.data_dir.glob("store.sqlite3*"):
            path.unlink()
        if how == "damaged":
            store.write_bytes(b"\x00garbage" * 512)
        refused = alice.run("send", group, "too early", check=False)
        err = clean_failure(refused)
        assert "run `waystation peer sync` first" in err, err
        noticed = alice.run("read", group)
        assert "run `waystation peer sync` to recover" in noticed.stderr, noticed.stderr
        if how == "damaged":
            assert (alice.data_dir / "store.sqlite3.damaged-1").exists()
        synced = alice.run("sync", "--relay", relay.address)
        assert "recovered this device's log" in synced.stderr, synced.stderr
        cid = alice.send(group, "four")
        assert "run `waystation peer sync`" not in alice.run("read", group).stderr
        after = alice.read(group)
        assert [m["body"] for m in after] == ["one", "two", "three", "four"]
        assert after[-1]["cid"] == cid and after[-1]["lamport"] > had


# ---- words, --json, each other's directories -------------------------------------------------


def test_errors_are_in_the_users_words(tmp_path: Path) -> None:
    data = tmp_path / "alice"
    PeerSession(data, create_name="alice").close()
    sync = ["peer", "sync", "--data", str(data)]
    err = clean_failure(run(tmp_path, *sync, "--relay", "no-such-host.invalid:4740"))
    assert "cannot find host 'no-such-host.invalid'" in err and "error -" not in err, err
    err = clean_failure(run(tmp_path, *sync, "--relay", "http://127.0.0.1:4740"))
    assert "--relay takes HOST:PORT" in err and "not a URL" in err, err
    err = clean_failure(run(tmp_path, *sync, "--relay", "127.0.0.1:70000"))
    assert "--relay" in err and "1..65535" in err, err
    err = clean_failure(run(tmp_path, *sync, "--relay", "127.0.0.1:1", "--timeout", "-1"), 2)
    assert "--timeout: must be a positive number of seconds, got -1" in err, err
    listing = clean_failure(run(tmp_path, "peer"), 2)
    for command in ("init", "group create", "groups", "invite", "join", "send", "sync", "read"):
        assert command in listing, listing


def test_send_join_and_json_say_what_they_did(tmp_path: Path) -> None:
    alice = Member(tmp_path / "alice", "alice")
    bob = Member(tmp_path / "bob", "bob")
    alice.init()
    bob.init()
    made = json.loads(alice.run("group", "create", "friends", "--json").stdout)
    group = made["group"]
    assert made["name"] == "friends"
    lone = alice.run("send", group, "anyone?", "--json")
    record = json.loads(lone.stdout)
    assert record["devices_met"] == 0 and record["lamport"] > 0
    assert NOBODY in lone.stderr and "sent to 'friends'" in lone.stderr, lone.stderr
    invitation = json.loads(alice.run("invite", group, "--json").stdout)["invitation"]
    joined = bob.run("join", invitation)
    assert joined.stdout.strip() == group and "before writing" in joined.stderr
    again = bob.run("join", invitation, "--json")
    assert json.loads(again.stdout)["already_member"] is True
    assert "already a member of 'friends'" in again.stderr
    listed = [json.loads(line) for line in bob.run("groups", "--json").stdout.splitlines()]
    assert listed == [{"group": group, "name": "friends"}]
    exchange(bob.data_dir, alice.data_dir)
    met = alice.run("send", group, "hi bob")
    assert NOBODY not in met.stderr, met.stderr


def test_relay_and_member_refuse_each_others_directory(tmp_path: Path) -> None:
    with Relay(tmp_path / "relay") as relay:
        relay_dir = relay.data_dir
        assert relay.terminate() == 0
    err = clean_failure(run(tmp_path, "peer", "init", "--data", str(relay_dir), "--name", "x"))
    assert "is a relay's data directory (it holds node.key)" in err, err
    member = tmp_path / "member"
    PeerSession(member, create_name="alice").close()
    before = sorted(p.name for p in member.iterdir())
    refused = run(
        tmp_path, "run", "--data", str(member), "--listen", "127.0.0.1:0", "--no-zeroconf"
    )
    err = clean_failure(refused, 2)
    assert "is a member's data directory (it holds member.sqlite3)" in err, err
    assert sorted(p.name for p in member.iterdir()) == before
    shutil.rmtree(member)
