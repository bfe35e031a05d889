"""Pushing just-stored entries without reading them back: ForwardCache, forward_item, the relay.

- ForwardCache keeps a record only while a link holds it, and never more than its byte budget.
- forward_item reuses a received compact item only under the same log header; otherwise the
  receiver would rebuild another block, so it encodes the entry again.
- Through an in-process relay, pushes to online members read nothing from the relay's store, a
  member that got another header from the relay still rebuilds every entry exactly, and the
  cache is empty once everything is pushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

import node.app.outbound as outbound
from node.app.context import FRESH_OVERHEAD, ForwardCache, Fresh
from node.sync.entry import Entry
from node.sync.store import MemoryStore
from node.sync.wire import COMPACT_ADD, FULL, decode_item, encode_item, forward_item
from tests.sync_helpers import SUITE, GroupLog
from tests.test_link_long_lived import (
    Online,
    close_all,
    in_process_relay,
    keys,
    push,
    wait_first_pass,
)

if TYPE_CHECKING:
    from node.sync.keyset import Key


def key_of(entry: Entry) -> Key:
    return (entry.clock_time, entry.cid.digest)


def fresh_of(group: GroupLog, entry: Entry) -> Fresh:
    header = group.sign_pub + group.identity_signature
    return Fresh(entry, encode_item(entry, group.sign_pub, group.identity_signature), header)


def test_cache_keeps_a_record_only_while_held() -> None:
    group = GroupLog.make(50)
    a, b = group.append("a"), group.append("b")
    cache = ForwardCache()
    cache.add(key_of(a), fresh_of(group, a))
    cache.add(key_of(b), fresh_of(group, b))
    assert cache.hold(key_of(a)) and cache.hold(key_of(a))
    cache.drop_unheld([key_of(a), key_of(b)])
    assert cache.get(key_of(b)) is None and not cache.hold(key_of(b))
    record = cache.get(key_of(a))
    assert record is not None and cache.bytes == record.size
    assert record.size == len(a.block) + len(a.payload) + len(record.item) + FRESH_OVERHEAD
    cache.release(key_of(a))
    assert cache.get(key_of(a)) is record  # one hold left
    cache.release(key_of(a))
    assert cache.get(key_of(a)) is None and cache.bytes == 0 and len(cache) == 0
    cache.release(key_of(a))  # releasing what is gone is harmless
    assert cache.bytes == 0


def test_cache_never_exceeds_its_budget() -> None:
    group = GroupLog.make(51)
    entries = [group.append("x" * 300 + str(i)) for i in range(10)]
    one = fresh_of(group, entries[0]).size
    cache = ForwardCache(max_bytes=3 * one + one // 2)
    for entry in entries:
        cache.add(key_of(entry), fresh_of(group, entry))
        cache.hold(key_of(entry))
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    assert cache.get(key_of(entries[3])) is None  # did not fit: the link reads the store
    cache.release(key_of(entries[0]))
    cache.add(key_of(entries[3]), fresh_of(group, entries[3]))
    assert cache.get(key_of(entries[3])) is not None and cache.bytes <= cache.max_bytes


def test_forward_item_reuses_a_compact_item_only_under_the_same_header() -> None:
    group = GroupLog.make(52)
    entry = group.append("hello")
    sign_pub, id_sig = group.sign_pub, group.identity_signature
    item = encode_item(entry, sign_pub, id_sig)
    assert item[0] == COMPACT_ADD
    assert forward_item(item, sign_pub + id_sig, entry, sign_pub, id_sig) is item
    # Our header on the outgoing link names another identity signature (a relay that declared
    # before it learned the group's): the item must be encoded again, and rebuild exactly.
    other = bytes(64)
    again = forward_item(item, sign_pub + id_sig, entry, sign_pub, other)
    assert again != item
    rebuilt = decode_item(again, group.address, sign_pub, other)
    assert rebuilt.block == entry.block and rebuilt.cid == entry.cid
    # what forwarding it as is would have done: another block, which would not verify
    assert decode_item(item, group.address, sign_pub, other).cid != entry.cid
    # A FULL item is encoded again too (it may compact now).
    full = bytes((FULL,)) + entry.block
    assert forward_item(full, sign_pub + id_sig, entry, sign_pub, id_sig) == item


class CountingStore(MemoryStore):
    """Counts the keys read back with entries_by_keys."""

    read_keys = 0

    def entries_by_keys(self, log_id: str, keys: Iterable[Key]) -> list[Entry]:
        wanted = list(keys)
        self.read_keys += len(wanted)
        return super().entries_by_keys(log_id, wanted)


def test_relay_pushes_from_the_cache_under_either_header(monkeypatch: pytest.MonkeyPatch) -> None:
    group = GroupLog.make(53)
    entries = [group.append("m%d" % i) for i in range(12)]
    reused: list[bool] = []

    def spy(item: bytes, sent_with: bytes, entry: Entry, sign_pub: bytes, sig: bytes) -> bytes:
        out = forward_item(item, sent_with, entry, sign_pub, sig)
        reused.append(out is item)
        return out

    monkeypatch.setattr(outbound, "forward_item", spy)  # where pushes encode items
    store = CountingStore(SUITE.ed25519_verify)

    async def body() -> None:
        async with in_process_relay(store) as (relay, port), asyncio.timeout(30):
            # early: the relay echoes its header before it knows the group's identity
            # signature; late: after, so it declares the same header the writer did
            early, writer, late = Online(group), Online(group), Online(group)
            for member in (early, writer):
                await member.open(port)
                await wait_first_pass(member)
            push(writer, group.address, entries[0])
            await early.until(lambda: len(early.received) >= 1)
            await late.open(port)
            await wait_first_pass(late)
            read_before = store.read_keys
            for count, entry in enumerate(entries[1:], 2):
                push(writer, group.address, entry)
                for member in (early, late):
                    await member.until(lambda m=member, c=count: len(set(m.store.keyset(
                        group.address))) >= c)  # fmt: skip
            for member in (early, late):
                assert list(member.store.keyset(group.address)) == keys(entries)
                assert member.driver is not None and member.driver.outcome.entries_refused == 0
            assert store.read_keys == read_before  # every push came from the cache
            assert True in reused and False in reused  # forwarded as is, and re-encoded
            assert len(relay.hub.cache) == 0 and relay.hub.cache.bytes == 0
            await close_all(early, writer, late)

    asyncio.run(body())
