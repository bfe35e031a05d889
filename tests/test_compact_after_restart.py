"""A restarted relay sends compact entries from its first sync (issue 14, the defect).

A log's identity signature (the same in every entry of a group) lets a node send each entry as
the compact wire item (node/sync/wire.py) instead of the full block. A relay used to learn it only
from entries a link sent it, so after a restart it served every entry as the full block until
some link sent it an entry of that log. Here: member A pushes a log to a relay over a pipe (real
SQLite, real LinkDriver and Session), the relay "restarts" (its store is closed and reopened and
it gets a fresh NodeContext, as a new daemon process has), and member B, who holds nothing, syncs
the log from it. Every item B receives must be compact, and the relay's bytes to B must be those
of the compact items, not of the blocks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.app import linkcore
from node.pipe import Pipe
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.store.sqlite import SQLiteStore
from node.sync.entry import Entry
from node.sync.store import MemoryStore
from node.sync.wire import FULL, encode_item
from tests.sync_helpers import SUITE, GroupLog, drive_pair, make_context

COUNT = 24


def _log() -> tuple[GroupLog, list[Entry]]:
    group = GroupLog.make(91)
    return group, [group.append("restart %d" % i) for i in range(COUNT)]


def _member(group: GroupLog, entries: list[Entry]) -> MemoryStore:
    store = MemoryStore(SUITE.ed25519_verify)
    store.add_log(group.address, group.sign_pub, pinned=True)
    store.put_entries(entries, 1_000_000)
    store.commit()
    return store


def test_a_restarted_relay_sends_compact_items_from_the_first_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group, entries = _log()
    own = {group.address: (group.sign_pub, group.identity_signature)}

    # First life of the relay: member A pushes the log to it.
    relay_store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    relay = make_context(relay_store, ROLE_RELAY)
    a = make_context(_member(group, entries), ROLE_MEMBER, own=own)
    outcome, _ = asyncio.run(drive_pair(a, relay, *Pipe("restart-a").ends))
    assert outcome.in_sync and outcome.entries_sent == COUNT, outcome
    relay_store.close()

    # Restart: the store reopened, a fresh context (nothing learned from links).
    relay_store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    relay = make_context(relay_store, ROLE_RELAY)
    assert relay.identity_signatures == {}
    b_store = _member(group, [])
    b = make_context(b_store, ROLE_MEMBER, own=own)

    kinds: list[int] = []
    real_decode = linkcore.decode_item

    def spy(item: bytes, *args: object) -> Entry:
        kinds.append(item[0])
        return real_decode(item, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(linkcore, "decode_item", spy)
    pipe = Pipe("restart-b")
    try:
        outcome, relay_outcome = asyncio.run(drive_pair(b, relay, *pipe.ends))
    finally:
        relay_store.close()

    assert outcome.in_sync and outcome.entries_received == COUNT, outcome
    assert relay_outcome.entries_sent == COUNT, relay_outcome
    assert sorted(b_store.keyset(group.address)) == sorted(
        (e.clock_time, e.cid.digest) for e in entries
    )
    assert len(kinds) == COUNT
    assert FULL not in kinds, "the restarted relay sent full blocks: %r" % kinds
    # On the wire: the relay's bytes to B are below what the full blocks alone would take.
    to_b = pipe._directions[1].stats.frame_bytes
    compact = sum(len(encode_item(e, group.sign_pub, group.identity_signature)) for e in entries)
    full = sum(len(e.block) for e in entries)
    assert compact < to_b < full, (compact, to_b, full)
