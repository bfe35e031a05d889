"""Hypothesis: a member and a relay joined by two LinkCores always converge, whatever each holds.

Entries are one real signed chain (made once); each example gives each side any subset of it,
the relay possibly none, and any frame hint. After the exchange both hold the union, the member
ended in sync with Bye "ok", every entry crossed at most once, and a second sync moves nothing.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.sync.entry import Entry
from tests.sync_helpers import GroupLog
from tests.test_link_core import CorePair, group_contexts, keys

GROUP = GroupLog.make(90)
CHAIN = [GROUP.append("h%d" % i) for i in range(24)]

subsets = st.sets(st.integers(0, len(CHAIN) - 1)).map(lambda s: [CHAIN[i] for i in sorted(s)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(member=subsets, relay=subsets, hint=st.integers(23, 65535))
def test_any_split_converges_and_moves_each_entry_once(
    member: list[Entry], relay: list[Entry], hint: int
) -> None:
    group = GroupLog(GROUP.address, GROUP.sign_pub, GROUP.sign_secret, [])
    member_ctx, relay_ctx = group_contexts(member, relay, group)
    pair = CorePair(member_ctx, relay_ctx, frame_hint=hint)
    pair.run()
    union = keys(list({e.cid: e for e in member + relay}.values()))
    assert list(member_ctx.store.keyset(GROUP.address)) == union
    assert list(relay_ctx.store.keyset(GROUP.address)) == union
    outcome = pair.member.outcome
    assert outcome.in_sync and outcome.reason == "ok"
    missing_member = len(union) - len({e.cid for e in member})
    missing_relay = len(union) - len({e.cid for e in relay})
    assert (outcome.entries_received, outcome.entries_sent) == (missing_member, missing_relay)
    again = CorePair(member_ctx, relay_ctx, frame_hint=hint)
    again.run()
    assert again.member.outcome.in_sync and again.member.outcome.passes == 1
    assert again.member.outcome.entries_sent == again.member.outcome.entries_received == 0
