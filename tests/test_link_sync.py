"""Member <-> relay sync over real loopback TCP with the link driver, the session and the stores."""

from __future__ import annotations

import asyncio

from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.sync.store import MemoryStore
from tests.sync_helpers import SUITE, GroupLog, make_context, member_store, sync_over_tcp


def keys_of(store: MemoryStore, address: str) -> list[tuple[int, bytes]]:
    return list(store.keyset(address))


def test_member_uploads_everything_to_an_empty_relay() -> None:
    group = GroupLog.make(1)
    for i in range(50):
        group.append("message %d" % i)
    alice_store = member_store(group)
    relay_store = MemoryStore(SUITE.ed25519_verify)
    alice = make_context(
        alice_store, ROLE_MEMBER, own={group.address: (group.sign_pub, group.identity_signature)}
    )
    relay = make_context(relay_store, ROLE_RELAY)
    outcome, relay_outcome = asyncio.run(sync_over_tcp(alice, relay))
    assert outcome.in_sync, outcome
    assert outcome.reason == "ok" and relay_outcome.by_peer
    assert keys_of(relay_store, group.address) == keys_of(alice_store, group.address)
    assert outcome.entries_sent == 50
    for entry in group.entries:
        assert relay_store.get_block(entry.cid) == entry.block


def test_member_downloads_what_it_lacks_and_uploads_what_the_relay_lacks() -> None:
    group = GroupLog.make(2)
    for i in range(30):
        group.append("m%d" % i)
    base = group.entries[:20]
    relay_store = MemoryStore(SUITE.ed25519_verify)
    relay_store.add_log(group.address, group.sign_pub)
    relay_store.put_entries(group.entries, 1_000_000)  # the relay has all 30
    relay_store.commit()
    bob_store = MemoryStore(SUITE.ed25519_verify)
    bob_store.add_log(group.address, group.sign_pub, pinned=True)
    bob_store.put_entries(base, 1_000_000)
    extra = group.append("bob's own", [base[-1]])  # bob wrote on an older head
    bob_store.put_entries([extra], 1_000_000)
    bob_store.commit()
    bob = make_context(
        bob_store, ROLE_MEMBER, own={group.address: (group.sign_pub, group.identity_signature)}
    )
    relay = make_context(relay_store, ROLE_RELAY)
    outcome, _ = asyncio.run(sync_over_tcp(bob, relay))
    assert outcome.in_sync
    assert outcome.entries_received == 10 and outcome.entries_sent == 1
    assert keys_of(bob_store, group.address) == keys_of(relay_store, group.address)
    assert len(keys_of(bob_store, group.address)) == 31


def test_relay_refuses_nothing_it_should_carry_and_stays_zero_knowledge() -> None:
    group = GroupLog.make(3)
    group.append("secret words")
    alice_store = member_store(group)
    relay_store = MemoryStore(SUITE.ed25519_verify)
    alice = make_context(
        alice_store, ROLE_MEMBER, own={group.address: (group.sign_pub, group.identity_signature)}
    )
    relay = make_context(relay_store, ROLE_RELAY)
    asyncio.run(sync_over_tcp(alice, relay))
    assert relay_store.logs() == [group.address]
    assert relay_store.log_info(group.address).sign_pub == group.sign_pub


def test_in_sync_pair_converges_in_one_pass() -> None:
    group = GroupLog.make(4)
    for i in range(10):
        group.append("x%d" % i)
    alice = make_context(
        member_store(group),
        ROLE_MEMBER,
        own={group.address: (group.sign_pub, group.identity_signature)},
    )
    relay = make_context(member_store(group), ROLE_RELAY)
    outcome, _ = asyncio.run(sync_over_tcp(alice, relay))
    assert outcome.in_sync and outcome.passes == 1
    assert outcome.entries_sent == 0 and outcome.entries_received == 0


class ForgetfulStore(MemoryStore):
    """Loses one entry the first time it is asked for it (as if evicted during the pass)."""

    def __init__(self, verify) -> None:  # type: ignore[no-untyped-def]
        super().__init__(verify)
        self.forgot = False

    def entries_by_keys(self, log_id, keys):  # type: ignore[no-untyped-def]
        found = super().entries_by_keys(log_id, keys)
        if found and not self.forgot:
            self.forgot = True
            return found[1:]
        return found


def test_an_entry_that_vanishes_mid_pass_does_not_stall_the_sync() -> None:
    group = GroupLog.make(5)
    for i in range(12):
        group.append("e%d" % i)
    relay_store = ForgetfulStore(SUITE.ed25519_verify)
    relay_store.add_log(group.address, group.sign_pub)
    relay_store.put_entries(group.entries, 1_000_000)
    relay_store.commit()
    bob_store = MemoryStore(SUITE.ed25519_verify)
    bob_store.add_log(group.address, group.sign_pub, pinned=True)
    bob = make_context(
        bob_store, ROLE_MEMBER, own={group.address: (group.sign_pub, group.identity_signature)}
    )
    relay = make_context(relay_store, ROLE_RELAY)
    outcome, _ = asyncio.run(sync_over_tcp(bob, relay, timeout=10))
    assert relay_store.forgot
    assert outcome.in_sync and outcome.passes >= 2
    assert keys_of(bob_store, group.address) == keys_of(relay_store, group.address)
