"""A failing disk, a peer's invented Bye reason, and a flood of declarations each cost one link."""

from __future__ import annotations

import asyncio

from node.app.peer import counter_reason
from node.errors import StoreError
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.sync.store import MemoryStore
from tests.sync_helpers import SUITE, GroupLog, make_context, member_store, sync_over_tcp


class FailingOnceStore(MemoryStore):
    """Its first commit with work pending fails, as a full disk would (the work is rolled back)."""

    def __init__(self, verify) -> None:  # type: ignore[no-untyped-def]
        super().__init__(verify)
        self.failed = False

    def commit(self):  # type: ignore[no-untyped-def]
        if not self.failed and self.pending():
            self.failed = True
            for log_id in self.logs():  # roll back what was put since the last commit
                for key in list(self.keyset(log_id)):
                    for entry in self.entries_by_keys(log_id, [key]):
                        self._delete(entry.cid)
            self._acks.clear()
            self._ack_set.clear()
            raise StoreError("disk full")
        return super().commit()


def member_of(group: GroupLog):  # type: ignore[no-untyped-def]
    return make_context(
        member_store(group),
        ROLE_MEMBER,
        own={group.address: (group.sign_pub, group.identity_signature)},
    )


def test_a_failed_commit_acknowledges_nothing_and_the_next_sync_delivers() -> None:
    group = GroupLog.make(31)
    for i in range(5):
        group.append("m%d" % i)
    relay_store = FailingOnceStore(SUITE.ed25519_verify)
    relay = make_context(relay_store, ROLE_RELAY)
    outcome, relay_outcome = asyncio.run(sync_over_tcp(member_of(group), relay, timeout=20))
    assert relay_store.failed
    assert relay_outcome.reason == "store-error"
    assert outcome.reason == "store-error" and outcome.by_peer and not outcome.in_sync
    assert relay.committer.failures == 1
    assert relay.stats["links.closed.store-error"] == 1
    fresh_relay = make_context(relay_store, ROLE_RELAY)  # a new event loop needs a new committer
    again, _ = asyncio.run(sync_over_tcp(member_of(group), fresh_relay, timeout=20))
    assert again.in_sync and again.entries_sent == 5
    assert all(relay_store.get_block(e.cid) == e.block for e in group.entries)


def test_peer_bye_reasons_cannot_invent_counter_names() -> None:
    assert counter_reason("ok") == "ok"
    assert counter_reason("integrity") == "integrity"
    assert counter_reason("x" * 32) == "other"
    assert counter_reason("../../etc") == "other"


def test_a_peer_declaring_too_many_logs_loses_its_link() -> None:
    groups = [GroupLog.make_indexed(5000 + i) for i in range(12)]
    member_store_ = MemoryStore(SUITE.ed25519_verify)
    own = {}
    for g in groups:
        g.append("x")
        member_store_.add_log(g.address, g.sign_pub, pinned=True)
        member_store_.put_entries(g.entries, 1_000_000)
        own[g.address] = (g.sign_pub, g.identity_signature)
    member_store_.commit()
    member = make_context(member_store_, ROLE_MEMBER, own=own)
    relay_store = MemoryStore(SUITE.ed25519_verify)
    relay = make_context(relay_store, ROLE_RELAY)
    relay.policy.max_session_logs = 10
    outcome, relay_outcome = asyncio.run(sync_over_tcp(member, relay, timeout=20))
    assert relay_outcome.reason == "too-large"
    assert outcome.reason == "too-large" and outcome.by_peer
    assert relay.stats["peer_errors.too-large"] == 1
