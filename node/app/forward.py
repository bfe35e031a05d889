"""New entries on their way from one link to the others: the Hub and its ForwardCache (L2).

Plain synchronous code, no asyncio: the sans-IO link parts (node.app.linkcore and the modules it
joins) use it, and tests drive it without an event loop. node.app.context re-exports every name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from node.sync.entry import Entry

if TYPE_CHECKING:
    from node.sync.keyset import Key

# Node-wide bound on the entries kept for forwarding (ForwardCache), in accounted bytes.
FORWARD_CACHE_BYTES = 4 * 1024 * 1024
FRESH_OVERHEAD = 512  # accounted per cached entry for its Python objects (CID, tuples, Identity)


class Fresh:
    """An entry just stored, with the wire item it arrived as and the log header (sign_pub ‖
    identity signature, 96 bytes) that item was compacted against (node.sync.wire)."""

    __slots__ = ("entry", "header", "item", "size")

    def __init__(self, entry: Entry, item: bytes, header: bytes) -> None:
        self.entry = entry
        self.item = item
        self.header = header
        self.size = len(entry.block) + len(entry.payload) + len(item) + FRESH_OVERHEAD


class ForwardCache:
    """The entries just stored, kept only while some link still has to push them.

    Pushing an entry to the other links then reads nothing back from the store and decodes
    nothing again. The Hub adds each published entry's record, the links that queue the key take
    a hold on it (`hold`) and give it back once they sent or dropped it (`release`, also for every
    hold still taken when a link ends); a record nobody holds is dropped at once. So the cache is
    empty whenever no push is pending, and it never holds more than `max_bytes` accounted bytes
    (block + payload + item + FRESH_OVERHEAD per entry): a record that would not fit is not kept,
    and the links read that entry from the store as before.
    """

    def __init__(self, max_bytes: int = FORWARD_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._records: dict[Key, Fresh] = {}
        self._holds: dict[Key, int] = {}

    def __len__(self) -> int:
        return len(self._records)

    def add(self, key: Key, fresh: Fresh) -> None:
        """Keep `fresh` under `key` (unheld) if it fits in the budget."""
        if key in self._records or self.bytes + fresh.size > self.max_bytes:
            return
        self._records[key] = fresh
        self._holds[key] = 0
        self.bytes += fresh.size

    def hold(self, key: Key) -> bool:
        """Take a hold on `key`'s record; False if there is none."""
        count = self._holds.get(key)
        if count is None:
            return False
        self._holds[key] = count + 1
        return True

    def get(self, key: Key) -> Fresh | None:
        """The record of `key`, if kept."""
        return self._records.get(key)

    def release(self, key: Key) -> None:
        """Give back one hold on `key`; the record goes with its last hold."""
        count = self._holds.get(key)
        if count is None:
            return
        if count > 1:
            self._holds[key] = count - 1
        else:
            self._forget(key)

    def drop_unheld(self, keys: list[Key]) -> None:
        """Forget the records of `keys` that no link took a hold on."""
        for key in keys:
            if self._holds.get(key) == 0:
                self._forget(key)

    def _forget(self, key: Key) -> None:
        del self._holds[key]
        self.bytes -= self._records.pop(key).size


class Hub:
    """Fan-out of newly stored entries to the other open links that carry the same log."""

    def __init__(self, forward_cache_bytes: int = FORWARD_CACHE_BYTES) -> None:
        self._listeners: dict[int, Callable[[str, list[Key], object], None]] = {}
        self._next_id = 0
        self.on_new_entries: list[Callable[[str], None]] = []
        self.cache = ForwardCache(forward_cache_bytes)

    def subscribe(self, listener: Callable[[str, list[Key], object], None]) -> int:
        """Register `listener(log_id, keys, source)`; returns a token for unsubscribe."""
        self._next_id += 1
        self._listeners[self._next_id] = listener
        return self._next_id

    def unsubscribe(self, token: int) -> None:
        """Forget a listener (idempotent)."""
        self._listeners.pop(token, None)

    def published(
        self, log_id: str, keys: list[Key], source: object, fresh: list[Fresh] | None = None
    ) -> None:
        """New entries of `log_id` were stored, received from `source` (a LinkCore, or None).

        `fresh`, when given, holds the entries of `keys` (same order) with their wire items: the
        listeners may push those without reading them back from the store (ForwardCache).
        """
        if fresh is not None:
            for key, record in zip(keys, fresh, strict=True):
                self.cache.add(key, record)
        for listener in list(self._listeners.values()):
            listener(log_id, keys, source)
        if fresh is not None:
            self.cache.drop_unheld(keys)
        for hook in self.on_new_entries:
            hook(log_id)
