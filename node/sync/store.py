# The relay's entry store: the interface, its policy, and an in-memory implementation (L0).
#
# Theory of operation. A store holds the verified entries of the logs a relay carries. A log is
# registered first (`add_log`: its address, which is the entries' `id`, and the group signing
# public key `sign_pub` every entry of the log must be signed with). Entries arrive already decoded
# (`node.sync.entry.decode_entry`), in batches, in any order: an entry whose `next` is not stored
# yet is still stored, because sync delivers logs out of order. For every entry `put_entries`
# answers one PutResult, decided in this order:
#
#   1. the log is not registered                  -> refused "unknown-log"
#   2. the block is larger than max_entry_bytes   -> refused "too-large"
#   3. the exact block is already stored          -> "duplicate" (not verified again)
#   4. the disk has no room for it (SQLite store)  -> refused "disk-full"
#   5. CID, key or signature does not check       -> refused, the verifier's reason ("integrity")
#   6. an unpinned log over its quota, and the entry is not newer than what it keeps
#                                                 -> refused "over-quota"
#   7. no room even after eviction                -> refused "quota"
#   8. otherwise                                  -> "stored" (evicting others first if needed)
#
# Refusals are counted in stats() ("refused.<reason>") and never reach the storage.
#
# Heads of a log are its stored entries that no other stored entry of the same log names in `next`
# (links across logs are ignored, so one log cannot hide another's heads). Evicting or expiring an
# entry can therefore surface its stored parents as heads again.
#
# Space. Each log has a byte quota (its own or Limits.max_log_bytes), and all logs together share
# Limits.max_total_bytes; bytes are block bytes. When a new entry does not fit, entries are evicted
# until it does: highest weight first, weight = age (now - stored_at) * size, ties by (log id,
# lamport time, digest). Unpinned logs' entries go first; an unpinned log's entry never evicts a
# pinned log's; a pinned log's head is never evicted for space (only expiry removes it). An
# eviction is all or nothing: if it cannot free enough, the new entry is refused "quota".
# A log over its own quota: a pinned log evicts its own entries by weight; an unpinned one keeps
# its newest (as the LXMF propagation node): it evicts its oldest by key down to the low-water
# mark, and above that mark an entry older than all it holds is refused "over-quota", unwritten.
# So nothing is stored only to be evicted by the same sync, and a sender that sends newest first
# (node/app/passes.py) costs the relay at most the quota in block writes, whatever the length.
#
# Expiry. expire(now) removes every entry whose age reached Limits.expiry_seconds, pinned or not
# (the LXMF propagation node does the same after 30 days).
#
# Acknowledgement. put_entries makes entries visible at once (has, heads, keyset); commit() makes
# everything put since the previous commit durable and returns the CIDs that may now be
# acknowledged to peers (stored and duplicate outcomes, in submission order). `generation` counts
# the rollbacks of uncommitted work (a failed put or commit): whoever waits for a commit notes the
# generation when it puts, and may acknowledge only if it has not changed (node/app/context.py
# Committer). MemoryStore holds nothing durable; its commit() only hands back that list. A
# subclass implements the storage primitives (the `_` methods below `# storage primitives`); the
# policy lives here once: SQLite and memory decide alike (tests/property/test_store_model.py).

from node._compat import TYPE_CHECKING
from node.errors import LocalProtocolError, RemoteProtocolError
from node.sync.entry import verify_entry
from node.sync.keyset import KeySet
from node.sync.storetypes import (  # re-exported: the store's public names live here too
    DEFAULT_EXPIRY_SECONDS,
    DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_MAX_LOG_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    DUPLICATE,
    EVICT_HEADROOM,
    REFUSED,
    REFUSED_DISK_FULL,
    REFUSED_OVER_QUOTA,
    REFUSED_QUOTA,
    REFUSED_TOO_LARGE,
    REFUSED_UNKNOWN_LOG,
    STORED,
    Candidate,
    Held,
    Limits,
    LogInfo,
    LogRecord,
    MemoryLog,
    PutResult,
    eviction_order,
    positive_int,
    seconds,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from node.sync.cid import CID
    from node.sync.entry import Entry
    from node.sync.keyset import Key

    Verify = Callable[[bytes, bytes, bytes], bool]


__all__ = [
    "DEFAULT_EXPIRY_SECONDS", "DEFAULT_MAX_ENTRY_BYTES", "DEFAULT_MAX_LOG_BYTES",
    "DEFAULT_MAX_TOTAL_BYTES", "DUPLICATE", "EVICT_HEADROOM", "REFUSED", "REFUSED_DISK_FULL",
    "REFUSED_OVER_QUOTA", "REFUSED_QUOTA", "REFUSED_TOO_LARGE", "REFUSED_UNKNOWN_LOG", "STORED",
    "Candidate", "Limits", "LogInfo", "LogRecord", "MemoryStore", "PutResult", "Store",
    "eviction_order", "seconds",
]


class Store:
    """The store interface with its policy; subclasses implement the storage primitives.

    Args:
        verify: the Ed25519 verify function, (public key, message, signature) -> bool, e.g. a
            Suite's `ed25519_verify`. Every entry not already stored is checked with
            `verify_entry(entry, verify, log.sign_pub)` before it is stored.
        limits: the limits; defaults: 256 KiB entries, 64 MiB per log, 512 MiB in all, 30 days.

    Attributes:
        thread_safe: every call may come from any thread (serialised by the store). Only then
            does the daemon's Committer run `commit()` on its own thread, off the event loop.
    """

    thread_safe = False

    def __init__(self, verify: "Verify", limits: "Limits | None" = None) -> None:
        if not callable(verify):
            raise LocalProtocolError("Store needs a verify callable (e.g. suite.ed25519_verify)")
        self.verify = verify
        self._verified_identities: "dict[tuple[bytes, bytes], bool]" = {}
        self.limits = limits if limits is not None else Limits()
        self._acks: list[CID] = []
        self._ack_set: set[CID] = set()
        # Bumped whenever uncommitted work is rolled back: what was put under an older
        # generation is gone and must never be acknowledged.
        self.generation = 0

    # ---- logs ---------------------------------------------------------------------------------

    def add_log(
        self, log_id: str, sign_pub: bytes, pinned: bool = False, quota: "int | None" = None
    ) -> None:
        """Register a log, or update `pinned` and `quota` of a registered one.

        Raises:
            LocalProtocolError: bad arguments, or `sign_pub` differs from the registered one.
        """
        if not isinstance(log_id, str) or not log_id:
            raise LocalProtocolError("log id must be a non-empty str")
        if not isinstance(sign_pub, bytes) or len(sign_pub) != 32:
            raise LocalProtocolError("sign_pub must be 32 bytes")
        if pinned is not True and pinned is not False:
            raise LocalProtocolError("pinned must be a bool")
        if quota is not None:
            positive_int("quota", quota)
        record = self._log(log_id)
        if record is None:
            self._new_log(log_id, sign_pub, pinned, quota)
            return
        if record.sign_pub != sign_pub:
            raise LocalProtocolError("log %s is registered with another sign_pub" % log_id)
        record.pinned = pinned
        record.quota = quota
        self._update_log(record)

    def logs(self) -> "list[str]":
        """The ids of all registered logs, sorted."""
        return sorted(self._log_ids())

    def has_log(self, log_id: str) -> bool:
        """True if `log_id` is registered (O(1); logs() sorts every id)."""
        return self._log(log_id) is not None

    def log_count(self) -> int:
        """How many logs are registered."""
        return len(self._log_ids())

    def sign_pub_of(self, log_id: str) -> "bytes | None":
        """The signing key a registered log was added with, or None (no storage read)."""
        record = self._log(log_id)
        return record.sign_pub if record is not None else None

    def log_info(self, log_id: str) -> LogInfo:
        """Metadata of one log. Raises LocalProtocolError for an unknown log."""
        record = self._known_log(log_id)
        return LogInfo(
            record.log_id,
            record.sign_pub,
            record.pinned,
            record.quota,
            record.entry_count,
            record.byte_count,
            self._heads(record),
        )

    def heads(self, log_id: str) -> "list[CID]":
        """CIDs of the log's heads, sorted by binary CID."""
        return self._heads(self._known_log(log_id))

    def keyset(self, log_id: str) -> KeySet:
        """The log's live KeySet of (lamport time, digest); kept in step by the store. Read only."""
        return self._known_log(log_id).keyset

    def missing_parents(self, log_id: str) -> "list[CID]":
        """CIDs that stored entries of the log name in `next` but that the log does not hold
        (not synced yet, or evicted/expired: a hole), sorted."""
        return sorted(self._missing_parents(self._known_log(log_id)))

    def hole(self, log_id: str) -> str:
        """What a reader of the log must be told when the log has a hole, or "" when it has none.

        A member calls this after reading a log (node/member: where it reads a group's logs) and
        shows the text instead of skipping silently."""
        missing = self.missing_parents(log_id)
        record = self._known_log(log_id)
        if not missing or not len(record.keyset):
            return ""
        return "entries before lamport time %d are no longer held by any relay you reached" % (
            record.keyset.key_at(0)[0]
        ) + " (%d missing, named by the log)" % len(missing)

    def _known_log(self, log_id: str) -> LogRecord:
        record = self._log(log_id)
        if record is None:
            raise LocalProtocolError("unknown log %r" % (log_id,))
        return record

    # ---- entries ------------------------------------------------------------------------------

    def put_entries(self, entries: "Iterable[Entry]", now: "int | float") -> "list[PutResult]":
        """Store a batch of decoded entries; one PutResult per entry, in order.

        Stored entries are visible at once; they are durable (and may be acknowledged) only once
        commit() has returned their CIDs.
        """
        at = seconds(now)
        return [self._put_one(entry, at) for entry in entries]

    def _put_one(self, entry: "Entry", now: int) -> PutResult:
        cid = entry.cid
        record = self._log(entry.log_id)
        if record is None:
            return self._refuse(cid, REFUSED_UNKNOWN_LOG, "log %r is not carried" % (entry.log_id,))
        size = len(entry.block)
        if size > self.limits.max_entry_bytes:
            return self._refuse(
                cid,
                REFUSED_TOO_LARGE,
                "entry of %d bytes, limit %d" % (size, self.limits.max_entry_bytes),
            )
        if self._block(cid) == entry.block:
            self._count("duplicate", 1)
            self._acknowledge_later(cid)
            return PutResult(cid, DUPLICATE)
        no_room = self._disk_room(size)
        if no_room:
            return self._refuse(cid, REFUSED_DISK_FULL, no_room)
        over = self._over_quota(record, (entry.clock_time, cid.digest), size)
        if over:
            return self._refuse(cid, REFUSED_OVER_QUOTA, over)
        try:
            verify_entry(entry, self.verify, record.sign_pub, self._verified_identities)
        except RemoteProtocolError as exc:
            return self._refuse(cid, exc.reason, exc.message, exc)
        plan = self._plan_room(record, size, now)
        if plan is None:
            return self._refuse(cid, REFUSED_QUOTA, "no room for %d bytes in log or store" % size)
        for candidate in plan:
            self._delete(candidate.cid)
            self._count("evicted", 1)
            self._count("evicted_bytes", candidate.size)
        self._insert(entry, record, now)
        self._count("stored", 1)
        self._count("stored_bytes", size)
        self._acknowledge_later(cid)
        return PutResult(cid, STORED)

    def _refuse(
        self, cid: "CID", reason: str, detail: str, error: "RemoteProtocolError | None" = None
    ) -> PutResult:
        self._count("refused." + reason, 1)
        return PutResult(cid, REFUSED, reason, detail, error)

    def _acknowledge_later(self, cid: "CID") -> None:
        if cid not in self._ack_set:
            self._ack_set.add(cid)
            self._acks.append(cid)

    def quota_of(self, record: LogRecord) -> int:
        """The byte quota of a log: its own, or Limits.max_log_bytes."""
        return record.quota if record.quota is not None else self.limits.max_log_bytes

    def quota_of_log(self, log_id: str) -> int:
        """The byte quota of a registered log (LocalProtocolError if unknown)."""
        return self.quota_of(self._known_log(log_id))

    def _over_quota(self, record: LogRecord, key: "Key", size: int) -> str:
        """Why an unpinned log keeps none of this entry (it is not among its newest), or ""."""
        quota = self.quota_of(record)
        if record.pinned or not len(record.keyset) or key > record.keyset.key_at(0):
            return ""  # newer than the oldest it holds: the oldest make room if needed
        if record.byte_count + size <= quota - quota // EVICT_HEADROOM:
            return ""  # room below the low-water mark: an older entry is welcome
        return "relay keeps the newest %d entries (%d bytes) of this log: quota %d bytes" % (
            record.entry_count,
            record.byte_count,
            self.quota_of(record),
        )

    def _oldest(self, record: LogRecord) -> "Iterator[Candidate]":
        keyset = record.keyset
        for index in range(len(keyset)):
            key = keyset.key_at(index)
            found = self._entry_at(record, key)
            if found is not None:
                yield found

    def _plan_room(self, record: LogRecord, size: int, now: int) -> "list[Candidate] | None":
        """The entries to evict so `size` more bytes fit; None when impossible.

        When the quota of an unpinned log overflows, the log is brought down to a low-water mark
        (1/EVICT_HEADROOM of its quota below the limit) when it has that much to evict, so a full
        community log does not pay one eviction query per new entry. Pinned logs and the total
        limit evict only what is needed.
        """
        quota = self.quota_of(record)
        need_log = record.byte_count + size - quota
        need_total = self._total_bytes() + size - self.limits.max_total_bytes
        plan: list[Candidate] = []
        if need_log <= 0 and need_total <= 0:
            return plan
        chosen: set[CID] = set()
        freed = 0
        if need_log > 0:
            target = need_log if record.pinned else need_log + quota // EVICT_HEADROOM
            found = self._candidates(now, record, True) if record.pinned else self._oldest(record)
            for candidate in found:
                plan.append(candidate)
                chosen.add(candidate.cid)
                freed += candidate.size
                if freed >= target:
                    break
            if freed < need_log:
                return None
        if need_total > freed:
            for candidate in self._candidates(now, None, record.pinned):
                if candidate.cid in chosen:
                    continue
                plan.append(candidate)
                freed += candidate.size
                if freed >= need_total:
                    break
            if freed < need_total:
                return None
        return plan

    def commit(self) -> "list[CID]":
        """Make pending work durable; return the CIDs that may now be acknowledged.

        Those are the stored and duplicate outcomes since the previous commit, in submission
        order. Raises StoreError (SQLite) if the work could not be made durable; then none of it
        is acknowledged.
        """
        self._make_durable()
        acks = self._acks
        self._acks = []
        self._ack_set = set()
        return acks

    def pending(self) -> int:
        """How many CIDs wait for the next commit()."""
        return len(self._acks)

    def expire(self, now: "int | float") -> int:
        """Remove every entry whose age reached expiry_seconds; return how many."""
        cutoff = seconds(now) - self.limits.expiry_seconds
        removed = 0
        for cid, size in self._stored_before(cutoff):
            self._delete(cid)
            self._count("expired", 1)
            self._count("expired_bytes", size)
            removed += 1
        return removed

    def stats(self) -> "dict[str, int]":
        """Counters (stored, duplicate, refused.<reason>, evicted, expired, ..._bytes) and gauges
        (logs, entries, bytes)."""
        result = self._counters()
        ids = self._log_ids()
        result["logs"] = len(ids)
        entries = 0
        for log_id in ids:
            record = self._log(log_id)
            if record is not None:
                entries += record.entry_count
        result["entries"] = entries
        result["bytes"] = self._total_bytes()
        return result

    def close(self) -> None:
        """Release resources; work not committed is discarded (never acknowledged)."""

    # ---- reads (implemented by subclasses) -----------------------------------------------------

    def has(self, cid: "CID") -> bool:
        """True when the block `cid` is stored."""
        return self._block(cid) is not None

    def get_block(self, cid: "CID") -> "bytes | None":
        """The exact stored block, or None."""
        return self._block(cid)

    def entries_by_keys(self, log_id: str, keys: "Iterable[Key]") -> "list[Entry]":
        """The stored entries of a log for the given (lamport time, digest) keys, in the order
        given; keys not stored are skipped."""
        raise LocalProtocolError("Store.entries_by_keys not implemented")

    # ---- storage primitives ---------------------------------------------------------------------

    def _log(self, log_id: str) -> "LogRecord | None":
        raise LocalProtocolError("Store._log not implemented")

    def _log_ids(self) -> "list[str]":
        raise LocalProtocolError("Store._log_ids not implemented")

    def _new_log(self, log_id: str, sign_pub: bytes, pinned: bool, quota: "int | None") -> None:
        raise LocalProtocolError("Store._new_log not implemented")

    def _update_log(self, record: LogRecord) -> None:
        raise LocalProtocolError("Store._update_log not implemented")

    def _heads(self, record: LogRecord) -> "list[CID]":
        raise LocalProtocolError("Store._heads not implemented")

    def _block(self, cid: "CID") -> "bytes | None":
        raise LocalProtocolError("Store._block not implemented")

    def _insert(self, entry: "Entry", record: LogRecord, now: int) -> None:
        raise LocalProtocolError("Store._insert not implemented")

    def _delete(self, cid: "CID") -> None:
        raise LocalProtocolError("Store._delete not implemented")

    def _candidates(
        self, now: int, record: "LogRecord | None", include_pinned: bool
    ) -> "Iterator[Candidate]":
        """Eviction candidates in eviction order (see eviction_order): of `record`'s log only,
        or of every log when None; pinned logs only if include_pinned; never a pinned log's
        head."""
        raise LocalProtocolError("Store._candidates not implemented")

    def _entry_at(self, record: LogRecord, key: "Key") -> "Candidate | None":
        """The entry of `record`'s log with `key`, as an eviction candidate."""
        raise LocalProtocolError("Store._entry_at not implemented")

    def _missing_parents(self, record: LogRecord) -> "list[CID]":
        raise LocalProtocolError("Store._missing_parents not implemented")

    def _stored_before(self, cutoff: int) -> "list[tuple[CID, int]]":
        """(cid, size) of every entry with stored_at <= cutoff."""
        raise LocalProtocolError("Store._stored_before not implemented")

    def _total_bytes(self) -> int:
        raise LocalProtocolError("Store._total_bytes not implemented")

    def _count(self, name: str, delta: int) -> None:
        raise LocalProtocolError("Store._count not implemented")

    def _counters(self) -> "dict[str, int]":
        raise LocalProtocolError("Store._counters not implemented")

    def _make_durable(self) -> None:
        raise LocalProtocolError("Store._make_durable not implemented")

    def _disk_room(self, size: int) -> str:
        """Why the medium cannot take `size` more bytes in this commit window, or "" if it can."""
        return ""


class MemoryStore(Store):
    """An in-memory Store (portable tests, MicroPython, and the model for the SQLite store)."""

    def __init__(self, verify: "Verify", limits: "Limits | None" = None) -> None:
        super().__init__(verify, limits)
        self._logs: dict[str, MemoryLog] = {}
        self._held: dict[CID, Held] = {}
        self._bytes = 0
        self._stats: dict[str, int] = {}

    def entries_by_keys(self, log_id: str, keys: "Iterable[Key]") -> "list[Entry]":
        record = self._logs.get(log_id)
        if record is None:
            raise LocalProtocolError("unknown log %r" % (log_id,))
        found = []
        for key in keys:
            cid = record.by_key.get((key[0], key[1]))
            if cid is not None:
                found.append(self._held[cid].entry)
        return found

    def _log(self, log_id: str) -> "LogRecord | None":
        return self._logs.get(log_id)

    def _log_ids(self) -> "list[str]":
        return list(self._logs)

    def _new_log(self, log_id: str, sign_pub: bytes, pinned: bool, quota: "int | None") -> None:
        self._logs[log_id] = MemoryLog(log_id, sign_pub, pinned, quota)

    def _update_log(self, record: LogRecord) -> None:
        pass  # the record is the storage

    def _heads(self, record: LogRecord) -> "list[CID]":
        return sorted(self._logs[record.log_id].heads)

    def _block(self, cid: "CID") -> "bytes | None":
        held = self._held.get(cid)
        return None if held is None else held.entry.block

    def _insert(self, entry: "Entry", record: LogRecord, now: int) -> None:
        log = self._logs[record.log_id]
        parents = sorted(set(entry.next))
        held = Held(entry, log.log_id, parents, now)
        cid = entry.cid
        self._held[cid] = held
        log.by_key[held.key] = cid
        log.keyset.add(held.key)
        for parent in parents:
            log.referrers[parent] = log.referrers.get(parent, 0) + 1
            log.heads.discard(parent)
        if log.referrers.get(cid, 0) == 0:
            log.heads.add(cid)
        log.entry_count += 1
        log.byte_count += held.size
        self._bytes += held.size

    def _delete(self, cid: "CID") -> None:
        held = self._held.pop(cid)
        log = self._logs[held.log_id]
        del log.by_key[held.key]
        log.keyset.remove(held.key)
        log.heads.discard(cid)
        for parent in held.parents:
            left = log.referrers[parent] - 1
            if left:
                log.referrers[parent] = left
                continue
            del log.referrers[parent]
            if parent in self._held and self._held[parent].log_id == log.log_id:
                log.heads.add(parent)
        log.entry_count -= 1
        log.byte_count -= held.size
        self._bytes -= held.size

    def _candidates(
        self, now: int, record: "LogRecord | None", include_pinned: bool
    ) -> "Iterator[Candidate]":
        ranked = []
        for cid, held in self._held.items():
            log = self._logs[held.log_id]
            if record is not None and log is not record:
                continue
            if log.pinned and (not include_pinned or cid in log.heads):
                continue
            order = eviction_order(
                log.pinned, now, held.stored_at, held.size, log.log_id, held.key[0], held.key[1]
            )
            ranked.append((order, cid))
        ranked.sort(key=lambda item: item[0])
        for _order, cid in ranked:
            yield Candidate(cid, self._held[cid].size)

    def _missing_parents(self, record: LogRecord) -> "list[CID]":
        held = self._held
        return [
            parent
            for parent in self._logs[record.log_id].referrers
            if parent not in held or held[parent].log_id != record.log_id
        ]

    def _entry_at(self, record: LogRecord, key: "Key") -> "Candidate | None":
        cid = self._logs[record.log_id].by_key.get(key)
        return None if cid is None else Candidate(cid, self._held[cid].size)

    def _stored_before(self, cutoff: int) -> "list[tuple[CID, int]]":
        found = [(cid, held.size) for cid, held in self._held.items() if held.stored_at <= cutoff]
        found.sort(key=lambda item: item[0])
        return found

    def _total_bytes(self) -> int:
        return self._bytes

    def _count(self, name: str, delta: int) -> None:
        self._stats[name] = self._stats.get(name, 0) + delta

    def _counters(self) -> "dict[str, int]":
        return dict(self._stats)

    def _make_durable(self) -> None:
        return  # memory holds nothing durable: commit() only hands back what may be acknowledged
