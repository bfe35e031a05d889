"""The member side end to end over in-memory stores: groups, invitations, chain keys, messages.

Entries travel between members only by copying blocks from one store to another (decode_entry +
put_entries), which is what a relay does; `relay` below is a store that holds nothing but the
entries and each log's sign_pub.
"""

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.crypto._nacl import NaclSuite
from node.crypto.address import MESSAGES_STORE, METADATA_STORE
from node.member import appmessage
from node.member.client import MemberClient
from node.member.errors import MemberError
from node.member.invitation import PREFIX, decode_invitation
from node.member.logio import log_entries, op_payload, parse_op
from node.sync.entry import create_entry, decode_entry
from node.sync.store import REFUSED, STORED, MemoryStore, Store

SUITE = NaclSuite()
T0 = 1_700_000_000.0


def new_store() -> MemoryStore:
    return MemoryStore(SUITE.ed25519_verify)


def member(tmp_path: Path, name: str) -> MemberClient:
    return MemberClient.init(SUITE, new_store(), tmp_path / name, name)


def copy(src: Store, dst: Store, now: float = T0, only: str | None = None) -> int:
    """Copy every entry of the logs both stores carry (optionally one store type): a relay hop."""
    moved = 0
    for log_id in src.logs():
        if log_id not in dst.logs() or (only is not None and not log_id.endswith(only)):
            continue
        blocks = [src.get_block(e.cid) for e in log_entries(src, log_id)]
        results = dst.put_entries([decode_entry(b) for b in blocks if b is not None], now)
        assert all(r.status != REFUSED for r in results), results
        moved += sum(1 for r in results if r.status == STORED)
        dst.commit()
    return moved


def relay_for(*clients: MemberClient) -> MemoryStore:
    """A relay-side store carrying the logs of these members (address + sign_pub only)."""
    relay = new_store()
    for client in clients:
        for log in client.sync_logs():
            relay.add_log(log.address, log.sign_pub)
    return relay


def sync(client: MemberClient, relay: Store, now: float = T0) -> None:
    """Upload then download through the relay, then process (what `peer sync` will do)."""
    copy(client.store, relay, now)
    copy(relay, client.store, now)
    client.process(now)


def bodies(client: MemberClient, group: str) -> list[str]:
    """The readable messages' texts, in order."""
    return [m.body for m in client.read(group) if not m.unreadable]


@pytest.fixture
def trio(tmp_path: Path) -> tuple[MemberClient, MemberClient, str, MemoryStore]:
    """alice created a group, bob joined; each side has seen the other's device."""
    alice = member(tmp_path, "alice")
    bob = member(tmp_path, "bob")
    group = alice.create_group("friends", T0)
    assert bob.join(alice.invitation(group), T0 + 1) == group
    relay = relay_for(alice, bob)
    sync(bob, relay, T0 + 2)  # bob's device announcement reaches the relay; bob sees alice
    sync(alice, relay, T0 + 3)  # alice sees bob's device: sends him her chain key
    sync(bob, relay, T0 + 4)
    return alice, bob, group, relay


def test_create_group_writes_activation_entries(tmp_path: Path) -> None:
    alice = member(tmp_path, "alice")
    group = alice.create_group("friends", T0)
    assert len(group) == 64 and alice.list_groups() == [(group, "friends")]
    state = alice.groups[group]
    meta = log_entries(alice.store, state.metadata_address)
    # GroupMemberDeviceAdded, MultiMemberGroupInitialMemberAnnounced, SetUserInfo
    assert len(meta) == 3
    assert [e.clock_time for e in meta] == [1, 2, 3]
    assert meta[1].next == [meta[0].cid] and meta[2].next == [meta[1].cid]
    assert state.initial_member == state.member_pk
    assert state.devices == {state.device_pk: state.member_pk}
    assert state.names == {state.device_pk: "alice"}
    assert all(e.log_id.endswith("_" + METADATA_STORE) for e in meta)
    payload = meta[0].payload
    assert payload.startswith('{"op":"ADD","value":"') and payload.endswith('"}')


def test_offline_member_reads_everything_in_order_and_replies(trio: tuple) -> None:
    alice, bob, group, relay = trio
    for i in range(5):  # bob is offline
        alice.send(group, "message %d" % i, T0 + 10 + i)
    assert bodies(alice, group) == ["message %d" % i for i in range(5)]
    assert bodies(bob, group) == []
    sync(alice, relay, T0 + 20)
    sync(bob, relay, T0 + 30)
    got = bob.read(group)
    assert [m.body for m in got] == ["message %d" % i for i in range(5)]
    assert {m.author for m in got} == {"alice"}
    assert [m.sent_date for m in got] == [int((T0 + 10 + i) * 1000) for i in range(5)]
    assert not any(m.mine for m in got)
    assert got[0].member == alice.groups[group].member_pk.hex()
    bob.send(group, "hi alice", T0 + 40)
    sync(bob, relay, T0 + 41)
    sync(alice, relay, T0 + 42)
    assert bodies(alice, group) == ["message %d" % i for i in range(5)] + ["hi alice"]
    assert alice.read(group)[-1].author == "bob"
    assert bob.read(group)[-1].mine


def test_both_sides_agree_on_order_of_concurrent_messages(trio: tuple) -> None:
    alice, bob, group, relay = trio
    alice.send(group, "from alice", T0 + 10)
    bob.send(group, "from bob", T0 + 10)
    for _ in range(2):
        sync(alice, relay, T0 + 11)
        sync(bob, relay, T0 + 12)
    assert sorted(bodies(alice, group)) == ["from alice", "from bob"]
    assert bodies(alice, group) == bodies(bob, group)
    assert [m.cid for m in alice.read(group)] == [m.cid for m in bob.read(group)]


def test_late_joiner_reads_from_when_it_joined(trio: tuple, tmp_path: Path) -> None:
    alice, bob, group, relay = trio
    alice.send(group, "before carol", T0 + 10)
    sync(alice, relay, T0 + 11)
    sync(bob, relay, T0 + 12)
    bob.send(group, "bob before carol", T0 + 13)
    sync(bob, relay, T0 + 13)
    carol = member(tmp_path, "carol")
    carol.join(bob.invitation(group), T0 + 20)
    for log in carol.sync_logs():
        relay.add_log(log.address, log.sign_pub)
    sync(carol, relay, T0 + 21)
    sync(alice, relay, T0 + 22)  # alice and bob see carol's device and send their keys
    sync(bob, relay, T0 + 23)
    alice.send(group, "welcome carol", T0 + 30)
    sync(alice, relay, T0 + 32)
    sync(bob, relay, T0 + 33)  # bob has seen alice's message: his reply comes after it
    bob.send(group, "hello carol", T0 + 31)
    sync(bob, relay, T0 + 33)
    sync(carol, relay, T0 + 34)
    assert bodies(carol, group) == ["welcome carol", "hello carol"]
    assert {m.author for m in carol.read(group)} == {"alice", "bob"}
    assert carol.pending(group) == 0
    carol.send(group, "thanks", T0 + 40)
    sync(carol, relay, T0 + 41)
    sync(alice, relay, T0 + 42)
    assert bodies(alice, group) == [
        "before carol",
        "bob before carol",
        "welcome carol",
        "hello carol",
        "thanks",
    ]
    assert alice.read(group)[-1].author == "carol"


def test_message_waits_for_its_chain_key(tmp_path: Path) -> None:
    alice = member(tmp_path, "alice")
    bob = member(tmp_path, "bob")
    group = alice.create_group("g", T0)
    bob.join(alice.invitation(group), T0)
    relay = relay_for(alice, bob)
    copy(alice.store, relay)
    copy(relay, bob.store)
    bob.process(T0 + 1)  # bob sees alice's device: his chain key for alice is written
    bob.send(group, "early", T0 + 2)
    copy(bob.store, relay)
    copy(relay, alice.store, only=MESSAGES_STORE)  # the message, but not bob's chain key
    report = alice.process(T0 + 3)
    assert report.queued == 1 and report.opened == 0
    assert bodies(alice, group) == [] and alice.pending(group) == 1
    # the queue survives a restart
    alice = MemberClient(SUITE, alice.store, alice.data_dir)
    assert alice.pending(group) == 1
    copy(relay, alice.store, only=METADATA_STORE)
    report = alice.process(T0 + 4)
    assert report.chain_keys_received == 1 and report.opened == 1
    assert bodies(alice, group) == ["early"] and alice.pending(group) == 0
    assert alice.read(group)[0].author == "bob"


def test_process_is_idempotent_and_state_survives_restart(trio: tuple) -> None:
    alice, bob, group, relay = trio
    alice.send(group, "one", T0 + 10)
    sync(alice, relay, T0 + 11)
    sync(bob, relay, T0 + 12)
    again = bob.process(T0 + 13)
    assert again.opened == 0 and again.rejected == 0 and again.chain_keys_sent == 0
    reopened = MemberClient(SUITE, bob.store, bob.data_dir)
    assert [m.body for m in reopened.read(group)] == ["one"]
    reopened.send(group, "two", T0 + 14)
    assert bodies(reopened, group) == ["one", "two"]


def test_member_files_are_private(trio: tuple) -> None:
    alice, _bob, _group, _relay = trio
    data = alice.data_dir
    files = list(data.glob("member.sqlite3*"))
    assert data / "member.sqlite3" in files
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert not list(data.rglob("*.tmp"))


def test_tampered_and_forged_entries_are_refused(trio: tuple) -> None:
    alice, bob, group, relay = trio
    alice.send(group, "genuine", T0 + 10)
    state = alice.groups[group]
    entry = log_entries(alice.store, state.messages_address)[-1]
    # one byte of the payload changed: new CID, signature no longer matches
    block = bytearray(entry.block)
    at = bytes(block).index(b'"op":"ADD"') + 2
    block[at] ^= 0x01
    tampered = decode_entry(bytes(block))
    assert relay.put_entries([tampered], T0)[0].reason == "integrity"
    # a well-formed entry for the same log signed by another key
    pk, sk = SUITE.ed25519_keypair(bytes(32))
    forged = create_entry(
        state.messages_address,
        op_payload(b"x"),
        [],
        [],
        1,
        pk,
        lambda m: SUITE.ed25519_sign(sk, m),
    )
    result = relay.put_entries([forged], T0)[0]
    assert result.status == REFUSED and result.reason == "integrity"
    # the member's own store refuses them too, and they never appear in read()
    assert bob.store.put_entries([tampered, forged], T0)[0].status == REFUSED
    bob.process(T0 + 1)
    assert "genuine" not in bodies(bob, group)


def test_garbage_envelope_signed_by_the_group_is_rejected_not_fatal(trio: tuple) -> None:
    """A member (who holds the signing key) writes junk: others count it and carry on."""
    alice, bob, group, relay = trio
    state = alice.groups[group]
    from node.member.logio import append_entry

    append_entry(alice.store, SUITE, state.group, state.messages_address, b"junk", T0 + 5)
    append_entry(alice.store, SUITE, state.group, state.metadata_address, b"junk", T0 + 5)
    alice.send(group, "after junk", T0 + 6)
    sync(alice, relay, T0 + 7)
    copy(relay, bob.store)
    report = bob.process(T0 + 8)
    assert report.rejected == 2 and report.unreadable == 1
    assert bodies(bob, group) == ["after junk"]
    junk = [m for m in bob.read(group) if m.unreadable]
    assert len(junk) == 1 and "MessageEnvelope" in junk[0].body


def test_relay_view_holds_no_plaintext_and_no_secret(trio: tuple) -> None:
    alice, bob, group, relay = trio
    alice.send(group, "top secret rendezvous at noon", T0 + 10)
    bob.send(group, "bringing the maps", T0 + 11)
    sync(alice, relay, T0 + 12)
    sync(bob, relay, T0 + 13)
    sync(alice, relay, T0 + 14)
    assert len(bodies(alice, group)) == 2
    state = alice.groups[group]
    blob = b"".join(
        relay.get_block(e.cid) or b"" for log in relay.logs() for e in log_entries(relay, log)
    )
    assert len(blob) > 1000
    secrets = [state.group.secret, state.member_sk, state.device_sk[:32]]
    secrets += [bob.groups[group].device_sk[:32], state.ratchet.own_chain()[0]]
    for secret in secrets:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form not in blob
    for text in (b"top secret", b"rendezvous", b"bringing the maps", b"alice", b"bob", b"friends"):
        # A name of a few letters occurs by chance in ciphertext and base32 addresses ("bob" did,
        # once in a few hundred runs): look for short ones as a leak would carry them, as a CBOR
        # or JSON string.
        forms = [text] if len(text) >= 6 else [bytes([0x60 + len(text)]) + text, b'"%s"' % text]
        for form in forms:
            assert form not in blob, form
        assert base64.b64encode(text)[:8] not in blob


def test_invitation_carries_the_group_and_is_checked(tmp_path: Path) -> None:
    alice = member(tmp_path, "alice")
    group = alice.create_group("book club", T0)
    text = alice.invitation(group)
    assert text.startswith(PREFIX) and "=" not in text
    parsed, name = decode_invitation(SUITE, text)
    assert parsed == alice.groups[group].group and name == "book club"
    wrapped = text[:40] + "\n  " + text[40:]
    assert decode_invitation(SUITE, wrapped)[0] == parsed
    for bad in ("hello", PREFIX + "!!!", PREFIX + "AAAA", text[:-12]):
        with pytest.raises(MemberError):
            decode_invitation(SUITE, bad)
    # a record whose secret_sig is not by the group key
    other = member(tmp_path, "mallory")
    forged_group = other.groups[other.create_group("x", T0)].group
    from node.crypto.keys import Group
    from node.member.invitation import encode_invitation

    mixed = Group(
        parsed.public_key,
        forged_group.secret,
        forged_group.secret_sig,
        parsed.group_type,
        forged_group.sign_pub,
        b"",
        parsed.link_key_sig,
    )
    with pytest.raises(MemberError, match="does not check"):
        decode_invitation(SUITE, encode_invitation(mixed, "x"))


def test_user_mistakes_raise_member_error(tmp_path: Path) -> None:
    with pytest.raises(MemberError, match="peer init"):
        MemberClient(SUITE, new_store(), tmp_path / "nobody")
    alice = member(tmp_path, "alice")
    with pytest.raises(MemberError, match="already"):
        MemberClient.init(SUITE, new_store(), alice.data_dir, "again")
    with pytest.raises(MemberError, match="unknown group"):
        alice.send("feedface", "hi", T0)
    group = alice.create_group("one", T0)
    assert alice.resolve("one").group_id == group
    assert alice.resolve(group[:8]).group_id == group
    with pytest.raises(MemberError, match="empty"):
        alice.send(group, "   ", T0)
    with pytest.raises(MemberError):
        alice.create_group("", T0)
    assert alice.join(alice.invitation(group), T0) == group  # joining twice: nothing new


def test_appmessage_wire_form() -> None:
    data = appmessage.user_message("hé", 1234)
    # type = 1 (08 01), payload = UserMessage{body} (12 len 0a len "hé"), sent_date = 1234
    assert data == b"\x08\x01\x12\x05\x0a\x03h\xc3\xa9\x18\xd2\x09"
    decoded = appmessage.decode(data)
    assert (decoded.type, decoded.body, decoded.sent_date) == (1, "hé", 1234)
    info = appmessage.decode(appmessage.set_user_info("bob", 5))
    assert (info.type, info.body) == (appmessage.TYPE_SET_USER_INFO, "bob")


def test_op_payload_round_trip_and_refusals() -> None:
    assert parse_op(op_payload(b"\x00\xff")) == b"\x00\xff"
    from node.errors import RemoteProtocolError

    for bad in ("", "[]", '{"op":"DEL","value":""}', '{"op":"ADD","value":"!"}'):
        with pytest.raises(RemoteProtocolError):
            parse_op(bad)


def test_append_plan_from_store_matches_the_whole_log_view(trio: tuple) -> None:
    """The newest-entries view gives the same next, refs and clock as the whole log, with
    concurrent branches (two writers that did not see each other) and more than 64 entries."""
    from node.member.logio import append_plan_from_store
    from node.sync.log import append_plan

    alice, bob, group, relay = trio
    for i in range(40):
        alice.send(group, "a%d" % i, T0 + 10 + i)
        bob.send(group, "b%d" % i, T0 + 10 + i)
        if i % 9 == 0:
            sync(alice, relay, T0 + 60 + i)
            sync(bob, relay, T0 + 60 + i)
    copy(bob.store, relay)
    copy(relay, alice.store)  # alice now has two heads
    for client in (alice, bob):
        for address in (
            client.groups[group].messages_address,
            client.groups[group].metadata_address,
        ):
            whole = {e.cid: e for e in log_entries(client.store, address)}
            assert append_plan_from_store(client.store, address) == append_plan(whole)
            assert append_plan_from_store(client.store, address, 10_000)[2] == 10_001
    assert len(alice.store.heads(alice.groups[group].messages_address)) == 2


def test_parse_op_bounds_nesting_and_size() -> None:
    from node.errors import RemoteProtocolError
    from node.member.logio import MAX_PAYLOAD_CHARS

    assert parse_op(op_payload(b"ok")) == b"ok"
    for payload, why in (
        ("[" * 994 + "]" * 994, "nested deeper"),
        ('{"op":"ADD","value":"AA==","x":' + "[" * 5 + "]" * 5 + "}", "nested deeper"),
        (" " * (MAX_PAYLOAD_CHARS + 1), "characters"),
        ('{"op":"ADD","value":"[[[[[[[[[["}', "base64"),  # brackets inside a string: not nesting
    ):
        with pytest.raises(RemoteProtocolError, match=why):
            parse_op(payload)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


@given(JSON_VALUES, st.integers(min_value=0, max_value=8))
def test_json_depth_scan_agrees_with_the_parsed_depth(value: object, limit: int) -> None:
    """The scan that runs before json.loads counts what json.loads would recurse into, with
    brackets, quotes and backslashes inside strings ignored."""
    from node.member.store_files import json_depth_error

    text = json.dumps(value)
    assert (json_depth_error(text, limit) is None) == (_depth(value) <= limit)
