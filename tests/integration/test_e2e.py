"""End to end with real processes on loopback: relays (`waystation run`) and members (`waystation
peer ...`), each member command a fresh process over its own data directory.

What "a member that joins later reads from the moment it joined" means here (docs/member.md,
"Forward secrecy for late joiners"): when member X processes the newcomer's
GroupMemberDeviceAdded, X sends the newcomer its chain key in its *current* state (CK_n, n). The
newcomer can derive message keys for counters n, n+1, ... only. So the newcomer reads exactly the
messages each sender wrote *after that sender processed the newcomer's announcement* (i.e. after
the sender's next sync once the announcement reached the relay), plus everything it writes
itself. A message a sender wrote after the newcomer pasted the invitation but before the sender
heard of it stays unreadable to the newcomer, as does all earlier history. Berty behaves the same.

Waiting: on one relay every step is a synchronous command, so no waiting is needed. Across two
relays delivery depends on the relays' own sync schedule, so the test polls the member's sync and
read with a deadline. Daemon start is an event (its "listening on" log line).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.crypto._nacl import NaclSuite
from tests.integration.procs import (
    WAYSTATION,
    Member,
    Relay,
    byte_forms,
    child_env,
    find_in_tree,
    text_forms,
    trusting,
    wait_until,
)

DELIVERY_DEADLINE_S = 20.0


def make_members(root: Path, tag: str, *names: str) -> list[Member]:
    members = []
    for name in names:
        member = Member(root / name, "%s-%s" % (name, tag))
        member.init()
        members.append(member)
    return members


def message_texts(tag: str) -> list[str]:
    """Texts that stress encodings: non-ASCII, emoji, HTML specials, quotes, a newline."""
    return [
        "first message %s: plain ASCII" % tag,
        "héllo wörld — ünïcödé, 日本語, Ελληνικά, emoji 🎉🐍 %s" % tag,
        "<script>alert('x')</script> & <b>bold</b> \"quoted\" &amp; %s" % tag,
        "two\nlines, a tab\t, U+2028 \u2028, U+2029 \u2029, NEL \x85 %s" % tag,
        "last of the offline batch %s" % tag,
    ]


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [m["body"] for m in messages]


def member_pk(member: Member, group: str) -> bytes:
    member_sk: bytes = member.group_file(group)["member_sk"]
    return member_sk[32:]


def chain_key_sent(sender: Member, receiver: Member, group: str) -> bool:
    """`sender` has processed `receiver`'s announcement and written its chain key for it."""
    return member_pk(receiver, group) in sender.group_file(group)["secrets_sent"]


def ratchet_needles(member: Member, group: str) -> dict[str, list[bytes]]:
    """Every chain key and message key in `member`'s saved ratchet (node/crypto/ratchet.py
    RatchetState.to_dict: its own chain and sent keys, each device's chain and precomputed keys,
    the keys of messages it read), in every searchable form."""
    ratchet = member.group_file(group)["ratchet"]
    chains = [ratchet["own_chain_key"], *(d["chain_key"] for d in ratchet["devices"])]
    messages = [key for _counter, key in ratchet["own_sent"]]
    messages += [key for d in ratchet["devices"] for _counter, key in d["keys"]]
    messages += [key for _cid, _device, _counter, key in ratchet["read_keys"]]
    needles: dict[str, list[bytes]] = {}
    for kind, keys in (("chain", chains), ("message", messages)):
        for i, key in enumerate(sorted({k for k in keys if k is not None})):
            assert len(key) == 32, (kind, key)
            needles["%s %s key %d" % (member.name, kind, i)] = byte_forms(key)
    return needles


def secret_needles(members: list[Member], group: str) -> dict[str, list[bytes]]:
    """The group secret, every member's group keys, chain keys and message keys, in every
    searchable form."""
    state = members[0].group_file(group)
    needles = {"group secret": byte_forms(state["group"]["secret"])}
    for member in members:
        mine = member.group_file(group)
        needles["%s member key" % member.name] = byte_forms(mine["member_sk"][:32])
        needles["%s device key" % member.name] = byte_forms(mine["device_sk"][:32])
        needles.update(ratchet_needles(member, group))
    return needles


def plaintext_needles(texts: list[str], names: list[str]) -> dict[str, list[bytes]]:
    needles = {"message %r" % text: text_forms(text) for text in texts}
    needles.update({"name %r" % name: text_forms(name) for name in names})
    return needles


def assert_relay_knows_nothing(relay: Relay, needles: dict[str, list[bytes]]) -> None:
    """No needle in any file of the relay's data directory (store, WAL, shm, status) or its log."""
    assert find_in_tree(relay.data_dir, needles) == []
    log = relay.log.encode()
    assert [name for name, forms in needles.items() if any(f in log for f in forms)] == []


def assert_search_works(member: Member, needles: dict[str, list[bytes]], text: str) -> None:
    """Positive control: the same search finds the secret and a text in a member's own files."""
    found = find_in_tree(member.data_dir, needles)
    assert any(item.endswith(": group secret") for item in found), found
    assert any(item.endswith(": message %r" % text) for item in found), found


def assert_ratchet_keys_found(members: list[Member], group: str) -> None:
    """Positive control: each member's chain and message keys are found in its own files (it
    holds at least one of each), so their absence from a relay's files means something."""
    for member in members:
        needles = ratchet_needles(member, group)
        kinds = {name.rsplit(" ", 3)[1] for name in needles}
        assert kinds == {"chain", "message"}, (member.name, sorted(needles))
        found = {item.split(": ", 1)[1] for item in find_in_tree(member.data_dir, needles)}
        # A value in an SQLite row longer than a page continues on an overflow page, so a key
        # inside the group's JSON row can straddle two pages of member.sqlite3: look at the rows.
        rows = member.database_rows()
        found |= {name for name, forms in needles.items() if any(f in rows for f in forms)}
        assert found == set(needles), (member.name, sorted(set(needles) - found))


# ---- one relay -------------------------------------------------------------------------------


def test_offline_delivery_reply_and_late_joiner_through_one_relay(tmp_path: Path) -> None:
    tag = secrets.token_hex(4)
    with contextlib.ExitStack() as stack:
        relay = stack.enter_context(Relay(tmp_path / "relay"))
        alice, bob, carol = make_members(tmp_path, tag, "alice", "bob", "carol")
        group_name = "book club %s" % tag
        group = alice.create_group(group_name)
        invitation = alice.invite(group)
        assert bob.join(invitation) == group

        # The membership handshake: bob announces his device, alice answers with her chain key.
        bob.sync(relay.address)
        alice.sync(relay.address)
        assert chain_key_sent(alice, bob, group)

        # bob is away; alice writes, then syncs with the relay.
        texts = message_texts(tag)
        for text in texts:
            alice.send(group, text)
        alice.sync(relay.address)
        # The relay restarts while bob is away: what it acknowledged must still be there.
        assert relay.terminate() == 0
        relay = stack.enter_context(Relay(relay.data_dir))

        # bob comes back and reads everything, in order.
        bob.sync(relay.address)
        at_bob = bob.read(group)
        assert bodies(at_bob) == texts
        assert {(m["author"], m["mine"]) for m in at_bob} == {(alice.name, False)}
        lamports = [m["lamport"] for m in at_bob]
        assert lamports == sorted(lamports) and len(set(lamports)) == len(lamports)

        reply = "bob's reply ↩ <ok> & thanks %s" % tag
        bob.send(group, reply)
        bob.sync(relay.address)
        alice.sync(relay.address)
        at_alice = alice.read(group)
        assert bodies(at_alice) == [*texts, reply]
        assert (at_alice[-1]["author"], at_alice[-1]["mine"]) == (bob.name, False)
        assert all(m["mine"] for m in at_alice[:-1])

        # carol joins late: the history is on the relay, but she cannot read it.
        assert carol.join(invitation) == group
        carol.sync(relay.address)  # announces carol, fetches history, answers with her chain key
        history = carol.run("read", group, "--json")
        assert history.stdout == ""
        # Until the senders' chain keys arrive carol cannot tell old messages from new ones.
        assert "%d message(s) wait" % (len(texts) + 1) in history.stderr
        hello = "carol says hi %s" % tag
        carol.send(group, hello)
        carol.sync(relay.address)
        gap = "alice writes before she has heard of carol %s" % tag
        alice.send(group, gap)
        alice.sync(relay.address)  # uploads `gap`, learns of carol, sends her chain key
        assert chain_key_sent(alice, carol, group)
        bob.sync(relay.address)  # bob learns of carol and sends his chain key too
        assert chain_key_sent(bob, carol, group)
        after_alice = "alice, after hearing of carol %s" % tag
        alice.send(group, after_alice)
        alice.sync(relay.address)
        bob.sync(relay.address)
        after_bob = "bob, after hearing of carol %s" % tag
        bob.send(group, after_bob)
        bob.sync(relay.address)
        alice.sync(relay.address)
        carol.sync(relay.address)

        views = {member.name: member.read(group) for member in (alice, bob, carol)}
        # Every sender's chain key has reached carol: the history is known to be unreadable now.
        assert carol.run("read", group).stderr == ""
        full = views[alice.name]
        everything = [*texts, reply, hello, gap, after_alice, after_bob]
        assert sorted(bodies(full)) == sorted(everything)
        assert [m["cid"] for m in views[bob.name]] == [m["cid"] for m in full]  # one order
        readable_by_carol = {hello, after_alice, after_bob}
        assert [m["cid"] for m in views[carol.name]] == [
            m["cid"] for m in full if m["body"] in readable_by_carol
        ]
        authors = {m["body"]: m["author"] for m in views[carol.name]}
        assert authors == {hello: carol.name, after_alice: alice.name, after_bob: bob.name}

        members = [alice, bob, carol]
        needles = {
            **secret_needles(members, group),
            **plaintext_needles(everything, [group_name, *(m.name for m in members)]),
        }
        assert_search_works(alice, needles, texts[0])
        assert_ratchet_keys_found(members, group)
        assert_relay_knows_nothing(relay, needles)  # while running: WAL and shm files too
        assert relay.terminate() == 0
        assert_relay_knows_nothing(relay, needles)


# ---- two relays ------------------------------------------------------------------------------


def test_delivery_through_two_relays(tmp_path: Path) -> None:
    tag = secrets.token_hex(4)
    fast = "[lan]\nsync_interval_s = 1\n"
    # Each relay treats the other as a relay only because its link key is listed (relay.trusted).
    config1 = trusting(tmp_path / "relay1.toml", [tmp_path / "relay2"], fast)
    config2 = trusting(tmp_path / "relay2.toml", [tmp_path / "relay1"])
    with (
        Relay(tmp_path / "relay2", config=config2) as r2,
        Relay(tmp_path / "relay1", peers=[r2.address], config=config1) as r1,
    ):
        alice, bob = make_members(tmp_path, tag, "alice", "bob")
        group_name = "two hops %s" % tag
        group = alice.create_group(group_name)
        alice.sync(r1.address)  # alice only ever meets R1, bob only R2
        assert bob.join(alice.invite(group)) == group

        def bob_synced_and(condition: Any) -> Any:
            return lambda: bool(bob.sync(r2.address)) and condition()

        def alice_synced_and(condition: Any) -> Any:
            return lambda: bool(alice.sync(r1.address)) and condition()

        wait_until(
            bob_synced_and(lambda: chain_key_sent(bob, alice, group)),
            DELIVERY_DEADLINE_S,
            "alice's announcement reaches bob through R1 -> R2",
        )
        wait_until(
            alice_synced_and(lambda: chain_key_sent(alice, bob, group)),
            DELIVERY_DEADLINE_S,
            "bob's announcement reaches alice through R2 -> R1",
        )

        texts = message_texts(tag)
        for text in texts:
            alice.send(group, text)
        alice.sync(r1.address)
        wait_until(
            bob_synced_and(lambda: len(bob.read(group)) >= len(texts)),
            DELIVERY_DEADLINE_S,
            "alice's messages reach bob through R1 -> R2",
        )
        assert bodies(bob.read(group)) == texts

        reply = "bob answers over two hops ✓ <&> %s" % tag
        bob.send(group, reply)
        bob.sync(r2.address)
        wait_until(
            alice_synced_and(lambda: len(alice.read(group)) > len(texts)),
            DELIVERY_DEADLINE_S,
            "bob's reply reaches alice through R2 -> R1",
        )
        at_alice = alice.read(group)
        assert bodies(at_alice) == [*texts, reply]
        assert [m["cid"] for m in bob.read(group)] == [m["cid"] for m in at_alice]

        members = [alice, bob]
        needles = {
            **secret_needles(members, group),
            **plaintext_needles([*texts, reply], [group_name, alice.name, bob.name]),
        }
        assert_search_works(alice, needles, texts[0])
        assert_ratchet_keys_found(members, group)
        for relay in (r1, r2):
            assert_relay_knows_nothing(relay, needles)
        assert r1.terminate() == 0 and r2.terminate() == 0
        for relay in (r1, r2):
            assert_relay_knows_nothing(relay, needles)
            counters = json.loads((relay.data_dir / "status.json").read_text())["counters"]
            assert [name for name in counters if name.startswith("peer_errors.")] == []
            # R1 syncs with R2 every second: SIGTERM may land in the middle of one such link,
            # which then ends "shutdown". Every other link that opened ended "ok".
            interrupted = counters.get("links.closed.shutdown", 0)
            ok, opened = counters.get("links.closed.ok", 0), counters["links.opened"]
            assert interrupted <= 1, counters
            assert ok == opened or (ok == opened - 1 and interrupted == 1), counters


# ---- the daemon itself -----------------------------------------------------------------------


def test_sigterm_closes_links_writes_status_and_exits_zero(tmp_path: Path) -> None:
    with Relay(tmp_path / "relay") as relay:
        (alice,) = make_members(tmp_path, "t", "alice")
        alice.create_group("g")
        alice.sync(relay.address)
        # A link stuck before its handshake must not hold the shutdown up.
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5):
            status = relay.data_dir / "status.json"
            status.unlink()  # so the file we read below is the one written at exit
            assert relay.terminate(timeout=8) == 0  # grace for links is 3 s
        assert "shutting down" in relay.log
        assert "Traceback" not in relay.log
        counters = json.loads(status.read_text())["counters"]
        assert counters["links.opened"] >= 1
        assert counters["entries.stored"] >= 1


BAD_CONFIGS = [
    ("[store]\nmax_entry_bytes = 5\n", "store.max_entry_bytes"),
    ("[lan]\nbogus = 1\n", "lan.bogus"),
    ('[lan]\nsync_interval_s = "soon"\n', "lan.sync_interval_s"),
    ("[session]\nidle_timeout_s = 0\n", "session.idle_timeout_s"),
    ('[lan]\npeers = ["no-port-here"]\n', "lan.peers"),
    ("[session]\ncredit_bytes = 512\n", "session.credit_bytes"),
    ("[session]\nmax_frame_bytes = 512\n", "session.max_frame_bytes"),
]


@pytest.mark.parametrize(("text", "key"), BAD_CONFIGS)
def test_bad_config_one_error_line_naming_the_key_and_no_store(
    tmp_path: Path, text: str, key: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    data = tmp_path / "relay"
    done = run_waystation(tmp_path, "run", "--config", str(config), "--data", str(data))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert key in lines[0]
    assert not data.exists()


def test_listen_address_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        done = run_waystation(
            tmp_path, "run", "--data", str(tmp_path / "r"), "--listen", address, "--no-zeroconf"
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "lan.listen" in lines[0] and address in lines[0]


def test_peer_sync_fails_with_a_reason_when_no_relay_answers(tmp_path: Path) -> None:
    (alice,) = make_members(tmp_path, "t", "alice")
    alice.create_group("g")
    with socket.socket() as probe:  # a port where nothing listens (bound, never listening)
        probe.bind(("127.0.0.1", 0))
        closed = "127.0.0.1:%d" % probe.getsockname()[1]
        refused = alice.run("sync", "--relay", closed, "--timeout", "5", check=False)
    assert refused.returncode == 3
    assert refused.stdout == ""
    progress, reason = refused.stderr.splitlines()  # what it tried, then why it failed
    assert progress == "syncing with %s ..." % closed
    assert reason.startswith("waystation peer: cannot sync with %s" % closed)
    assert "cannot connect to %s" % closed in reason

    with socket.socket() as silent:  # accepts connections (kernel backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        mute = "127.0.0.1:%d" % silent.getsockname()[1]
        stalled = alice.run("sync", "--relay", mute, "--timeout", "1", check=False)
    assert stalled.returncode == 3
    assert stalled.stderr == "syncing with %s ...\nwaystation peer: sync with %s timed out\n" % (
        mute,
        mute,
    )


def test_node_key_is_private_and_never_logged(tmp_path: Path) -> None:
    with Relay(tmp_path / "relay") as relay:
        (alice,) = make_members(tmp_path, "t", "alice")
        alice.create_group("g")
        alice.sync(relay.address)
        assert relay.terminate() == 0
    key_file = relay.data_dir / "node.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert relay.data_dir.stat().st_mode & 0o777 == 0o700
    seed = key_file.read_bytes()
    public, secret = NaclSuite().ed25519_keypair(seed)
    forms = [*byte_forms(seed), *byte_forms(secret), *byte_forms(public)]
    identity = run_waystation(tmp_path, "identity", "--data", str(relay.data_dir))
    assert identity.returncode == 0
    for text in (relay.log, (relay.data_dir / "status.json").read_text(), identity.stdout):
        assert not [form for form in forms if form in text.encode()]
    fingerprint = identity.stdout.split()[1]
    assert fingerprint in relay.log  # what is logged instead: a short fingerprint


def run_waystation(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WAYSTATION, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=30,
        env=child_env(home),
        stdin=subprocess.DEVNULL,
    )
