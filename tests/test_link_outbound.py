"""Outbound (node/app/outbound.py) on its own: keys in, Entries messages out, within the credit.

No event loop: a real open Session pair (joined in memory) carries what Outbound sends, and the
receiving session's events show exactly which entries arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from node.app.forward import ForwardCache, Fresh
from node.app.interest import SessionLog
from node.app.outbound import Outbound
from node.proto.session import EntriesReceived, SessionLimits
from node.sync.entry import Entry
from node.sync.store import MemoryStore
from node.sync.wire import decode_item, encode_item
from tests.session_helpers import SessionPair
from tests.sync_helpers import SUITE, GroupLog

if TYPE_CHECKING:
    from node.sync.keyset import Key


class CountingStore(MemoryStore):
    """Counts entries_by_keys calls and the keys they read."""

    reads = 0
    read_keys = 0

    def entries_by_keys(self, log_id: str, keys: Iterable[Key]) -> list[Entry]:
        wanted = list(keys)
        self.reads += 1
        self.read_keys += len(wanted)
        return super().entries_by_keys(log_id, wanted)


def key_of(entry: Entry) -> Key:
    return (entry.clock_time, entry.cid.digest)


def setup(
    count: int, text: str = "m", window: int = 1 << 20, expired: int | None = None
) -> tuple[GroupLog, list[Entry], CountingStore, SessionLog, SessionPair]:
    """A store holding `count` entries of one log (entry `expired` stored, then expired), its
    SessionLog, and an open session pair."""
    group = GroupLog.make(70)
    entries = [group.append("%s%d" % (text, i)) for i in range(count)]
    store = CountingStore(SUITE.ed25519_verify)
    store.add_log(group.address, group.sign_pub)
    for i, entry in enumerate(entries):
        store.put_entries([entry], 1 if i == expired else 1_000_000)
    if expired is not None:
        assert store.expire(1 + store.limits.expiry_seconds) == 1
    store.commit()
    slog = SessionLog(0, group.address, group.sign_pub, ours=True, theirs=True)
    slog.our_identity_signature = group.identity_signature
    pair = SessionPair(SessionLimits(window=window))
    pair.transfer()
    assert pair.client.is_open and pair.server.is_open
    SessionPair.events(pair.server)
    return group, entries, store, slog, pair


def arrived(pair: SessionPair, group: GroupLog) -> list[Key]:
    """Keys of the entries the server's session received (decoded as the relay would)."""
    pair.transfer()
    keys: list[Key] = []
    for event in SessionPair.events(pair.server):
        if isinstance(event, EntriesReceived):
            for item in event.items:
                entry = decode_item(item, group.address, group.sign_pub, group.identity_signature)
                keys.append(key_of(entry))
    return keys


def test_queue_takes_each_key_once_and_says_when_it_is_full() -> None:
    _, entries, store, slog, _ = setup(5)
    outbound = Outbound(store, ForwardCache(), max_keys=3)
    keys = [key_of(e) for e in entries]
    assert outbound.queue(slog, keys[:2]) == (keys[:2], True)
    assert outbound.queue(slog, keys[:2]) == ([], True)
    assert outbound.queue(slog, keys) == ([keys[2]], False)  # the rest for a later pass
    assert list(slog.outbound) == keys[:3]


def test_pump_sends_stored_entries_in_order_and_drops_the_rest() -> None:
    group, entries, store, slog, pair = setup(6, expired=2)  # never sent, leaves the queue
    keys = [key_of(e) for e in entries]
    outbound = Outbound(store, ForwardCache(), batch=4)
    outbound.queue(slog, keys)
    assert outbound.pump(pair.client, [slog], pair.now) == 5
    assert arrived(pair, group) == keys[:2] + keys[3:]
    assert not slog.outbound and not slog.queued
    assert [k for k, _ in slog.in_flight] == keys[:2] + keys[3:]
    assert outbound.unacked == 5
    assert store.reads == 2  # batches of 4 keys: 4 + 2


def test_pump_stops_at_the_credit_and_resumes_after_acks() -> None:
    group, entries, store, slog, pair = setup(8, text="x" * 20_000, window=65536)
    keys = [key_of(e) for e in entries]
    outbound = Outbound(store, ForwardCache())
    outbound.queue(slog, keys)
    first = outbound.pump(pair.client, [slog], pair.now)
    assert 0 < first < 8  # ~27 KB items in a 64 KiB window
    assert arrived(pair, group) == keys[:first]
    assert outbound.pump(pair.client, [slog], pair.now) == 0  # no credit, nothing read
    reads = store.reads
    assert outbound.pump(pair.client, [slog], pair.now) == 0 and store.reads == reads
    pair.server.send_ack(0, first, 65536, pair.now)
    pair.transfer()
    outbound.acked(slog, first)
    assert outbound.unacked == 0 and len(slog.in_flight) == 0
    second = outbound.pump(pair.client, [slog], pair.now)
    assert second > 0
    assert arrived(pair, group) == keys[first : first + second]


def test_handed_entries_come_from_the_cache_and_give_their_holds_back() -> None:
    group, entries, store, slog, pair = setup(4)
    cache = ForwardCache()
    header = group.sign_pub + group.identity_signature
    for entry in entries:
        item = encode_item(entry, group.sign_pub, group.identity_signature)
        cache.add(key_of(entry), Fresh(entry, item, header))
    keys = [key_of(e) for e in entries]
    outbound = Outbound(store, cache)
    assert outbound.offer(slog, keys[:3])
    assert slog.held == set(keys[:3]) and slog.handed == set(keys[:3])
    cache.drop_unheld(keys)  # what the Hub does after its listeners ran
    assert len(cache) == 3
    assert outbound.pump(pair.client, [slog], pair.now) == 3
    assert store.reads == 0  # nothing read back from the store
    assert arrived(pair, group) == keys[:3]
    assert len(cache) == 0 and cache.bytes == 0  # sent: holds given back
    outbound.acked(slog, 3)
    assert slog.moved_count == 3  # handed, and now the peer holds them too


def test_release_gives_back_the_holds_of_unsent_keys() -> None:
    group, entries, store, slog, _ = setup(3)
    cache = ForwardCache()
    header = group.sign_pub + group.identity_signature
    for entry in entries:
        item = encode_item(entry, group.sign_pub, group.identity_signature)
        cache.add(key_of(entry), Fresh(entry, item, header))
    outbound = Outbound(store, cache)
    outbound.offer(slog, [key_of(e) for e in entries])
    assert len(cache) == 3
    outbound.release([slog])
    assert len(cache) == 0 and cache.bytes == 0 and not slog.held


def test_acks_for_an_unknown_log_only_return_credit() -> None:
    _, entries, store, slog, pair = setup(2)
    outbound = Outbound(store, ForwardCache())
    outbound.queue(slog, [key_of(e) for e in entries])
    outbound.pump(pair.client, [slog], pair.now)
    outbound.acked(None, 5)
    assert outbound.unacked == 0 and len(slog.in_flight) == 2
