"""Two relays with many logs each (some shared, some not) converge in one session.

Interest messages are cut by size (a 1000-log declaration does not fit one), the initiator ends
its declarations with an empty Interest before the responder declares its own, and a pass's log
list travels in a message of its own.
"""

from __future__ import annotations

import asyncio

import pytest

from node.proto.messages import ROLE_RELAY
from node.sync.store import MemoryStore
from tests.sync_helpers import SUITE, GroupLog, make_context, sync_over_tcp

GROUPS: dict[int, GroupLog] = {}


def group(i: int) -> GroupLog:
    if i not in GROUPS:
        log = GroupLog.make_indexed(i)
        log.append("entry of log %d" % i)
        GROUPS[i] = log
    return GROUPS[i]


def relay_store(indexes: range) -> MemoryStore:
    store = MemoryStore(SUITE.ed25519_verify)
    for i in indexes:
        log = group(i)
        store.add_log(log.address, log.sign_pub)
        store.put_entries(log.entries, 1_000_000)
    store.commit()
    return store


@pytest.mark.parametrize("n", [129, 400, 1000])
def test_relays_with_many_logs_converge(n: int) -> None:
    a = relay_store(range(0, n))
    b = relay_store(range(n // 2, n + n // 2))
    outcome, other = asyncio.run(
        sync_over_tcp(make_context(a, ROLE_RELAY), make_context(b, ROLE_RELAY), timeout=60)
    )
    assert outcome.reason == "ok" and outcome.in_sync, outcome
    assert other.reason == "ok"
    everything = {group(i).address for i in range(0, n + n // 2)}
    assert set(a.logs()) == everything == set(b.logs())
    for i in range(0, n + n // 2):
        log = group(i)
        assert a.get_block(log.entries[0].cid) == b.get_block(log.entries[0].cid) is not None
