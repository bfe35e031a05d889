"""Entries on their way to the peer (sans-IO, L2): per-log send queues, credit, acknowledgements.

Theory of operation
-------------------
Keys enter a log's queue from two places: a pass's reconciliation results (entries the peer
lacks) and the Hub (entries another link just stored, `offer`). A key is queued once; at most
`max_keys` keys wait per log, and a key that does not fit is left to a later pass (`queue` says
so). `pump` moves keys from the front of each queue into Entries messages while the session has
send room (the peer's credit, within the session's in-flight cap from the link's frame hint):
handed keys take their wire item from the ForwardCache (no store read, no re-encode when it was
compacted against the header we declared), the others are read from the store, at most `batch`
at a time and no more than the room can take. A key no longer stored (evicted or expired
meanwhile) is dropped from the queue. Sent keys wait in `in_flight` until the peer's Ack; an
acked key the Hub handed us counts as held by the peer since the pass's OPEN (node.app.passes).

Each queued key the Hub handed us holds its ForwardCache record until it is sent or dropped, and
`release` gives back every hold still taken when the link ends, so the cache never outlives the
pushes that need it. `Outbound` does no I/O and needs no event loop: the session it writes into is
sans-IO, and the store and cache are synchronous.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.sync.wire import encode_item, forward_item

if TYPE_CHECKING:
    from collections.abc import Iterable

    from node.app.forward import ForwardCache
    from node.app.interest import SessionLog
    from node.proto.session import Session
    from node.sync.keyset import Key
    from node.sync.store import Store

SEND_BATCH = 64  # entries fetched from the store at a time for one log (at the largest hint)
MAX_OUTBOUND = 100_000  # keys queued per log; beyond that the next pass finds the rest


class Outbound:
    """The send side of one link's logs.

    Args:
        store: the node's store (what is still stored, and the entries to send).
        cache: the node's ForwardCache (entries handed by the Hub).
        batch: entries read from the store at a time for one log.
        max_keys: keys queued per log at most.
    """

    def __init__(
        self,
        store: Store,
        cache: ForwardCache,
        batch: int = SEND_BATCH,
        max_keys: int = MAX_OUTBOUND,
    ) -> None:
        self.store = store
        self.cache = cache
        self.batch = batch
        self.max_keys = max_keys
        self.unacked = 0  # entries sent and not acknowledged yet, all logs

    def queue(self, slog: SessionLog, keys: list[Key]) -> tuple[list[Key], bool]:
        """Queue `keys` of `slog` for sending.

        Returns:
            The keys that were not queued already, and False if some did not fit (a later pass
            finds them).
        """
        added: list[Key] = []
        for key in keys:
            if key in slog.queued:
                continue
            if len(slog.queued) >= self.max_keys:
                return added, False
            slog.queued.add(key)
            slog.outbound.append(key)
            added.append(key)
        return added, True

    def offer(self, slog: SessionLog, keys: list[Key]) -> bool:
        """Queue keys the Hub handed us (just stored from another link), holding their records.

        Returns:
            False if some did not fit (a later pass finds them).
        """
        added, complete = self.queue(slog, keys)
        for key in added:
            slog.handed.add(key)
            if self.cache.hold(key):
                slog.held.add(key)
        return complete

    def pending(self, logs: Iterable[SessionLog]) -> bool:
        """Some key of `logs` waits to be sent."""
        return any(s.outbound for s in logs)

    def pump(self, session: Session, logs: Iterable[SessionLog], now: int) -> int:
        """Send queued entries while the session has room; returns how many were sent."""
        total = 0
        for slog in logs:
            while slog.outbound and session.send_room > 0:
                count = min(self.batch, len(slog.outbound))
                if slog.item_bytes:  # read no more than the room can take
                    if session.send_room < slog.item_bytes and self.unacked:
                        break  # likely too little to send one; the acks in flight bring more
                    count = min(count, session.send_room // slog.item_bytes + 1)
                keys = [slog.outbound[i] for i in range(count)]
                present = self._items_for(slog, keys)
                items = [present[key] for key in keys if key in present]
                sent = session.send_entries(slog.ref, items, now) if items else 0
                if sent:
                    slog.item_bytes = max(1, sum(len(item) for item in items[:sent]) // sent)
                self._settle(slog, keys, present, sent)
                self.unacked += sent
                total += sent
                if sent < len(items):
                    break
        return total

    def _settle(
        self, slog: SessionLog, keys: list[Key], present: dict[Key, bytes], sent: int
    ) -> None:
        """Take keys off the front: the first `sent` stored ones, and any key no longer stored
        (evicted or expired meanwhile)."""
        remaining = sent
        for key in keys:
            if key in present:
                if remaining == 0:
                    break
                remaining -= 1
                slog.in_flight.append((key, key in slog.handed))
            slog.outbound.popleft()
            slog.queued.discard(key)
            slog.handed.discard(key)
            if key in slog.held:
                slog.held.discard(key)
                self.cache.release(key)

    def _items_for(self, slog: SessionLog, keys: list[Key]) -> dict[Key, bytes]:
        """The wire items of those `keys` still stored: handed ones from the ForwardCache, the
        rest read from the store."""
        keyset = self.store.keyset(slog.address)
        found: dict[Key, bytes] = {}
        lookup: list[Key] = []
        for key in keys:
            fresh = self.cache.get(key) if key in slog.held else None
            if fresh is None or fresh.entry.log_id != slog.address:
                lookup.append(key)
            elif key in keyset:  # not evicted or expired since it was handed
                found[key] = forward_item(
                    fresh.item,
                    fresh.header,
                    fresh.entry,
                    slog.sign_pub,
                    slog.our_identity_signature,
                )
        if lookup:
            for entry in self.store.entries_by_keys(slog.address, lookup):
                found[(entry.clock_time, entry.cid.digest)] = encode_item(
                    entry, slog.sign_pub, slog.our_identity_signature
                )
        return found

    def acked(self, slog: SessionLog | None, stored: int) -> None:
        """The peer acknowledged the next `stored` entries we sent on `slog` (None: unknown ref)."""
        self.unacked = max(0, self.unacked - stored)
        if slog is None:
            return
        for _ in range(min(stored, len(slog.in_flight))):
            key, handed = slog.in_flight.popleft()
            if handed:  # stored here after OPEN, and now the peer has it too
                slog.peer_holds(key)

    def release(self, logs: Iterable[SessionLog]) -> None:
        """Give back every ForwardCache hold still taken (the link ended)."""
        for slog in logs:
            for key in slog.held:
                self.cache.release(key)
            slog.held.clear()
