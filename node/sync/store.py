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
#   4. CID, key or signature does not check       -> refused, the verifier's reason ("integrity")
#   5. no room even after eviction                -> refused "quota"
#   6. otherwise                                  -> "stored" (evicting others first if needed)
#
# Refusals are counted in stats() ("refused.<reason>") and never reach the storage.
#
# Heads of a log are its stored entries that no other stored entry of the same log names in `next`
# (links across logs are ignored, so one log cannot hide another's heads). Evicting or expiring an
# entry can therefore surface its stored parents as heads again.
#
# Space. Each log has a byte quota (its own or Limits.max_log_bytes), and all logs together share
# Limits.max_total_bytes; bytes are block bytes. When a new entry does not fit, entries are evicted
# in this order until it does: highest weight first, weight = age (now - stored_at, seconds) *
# size (bytes), ties by (log id, lamport time, digest) ascending. Entries of unpinned logs go
# before entries of pinned logs; an entry of an unpinned log never evicts a pinned log's entry; a
# head of a pinned log is never evicted for space (only expiry removes it). For the per-log quota
# only the log's own entries are candidates. An eviction is all or nothing: if the candidates
# cannot free enough, nothing is evicted and the new entry is refused "quota".
#
# Expiry. expire(now) removes every entry whose age reached Limits.expiry_seconds, pinned or not
# (the LXMF propagation node does the same after 30 days).
#
# Acknowledgement. put_entries makes entries visible at once (has, heads, keyset); commit() makes
# everything put since the previous commit durable and returns the CIDs that may now be
# acknowledged to peers (stored and duplicate outcomes, in submission order). MemoryStore holds
# nothing durable; its commit() only hands back that list. A subclass implements the storage
# primitives (the methods starting with `_` below `# storage primitives`); the policy lives here
# once, so the SQLite store and this one decide identically (tests/property/test_store_model.py).

from node._compat import TYPE_CHECKING
from node.errors import (
    REASON_QUOTA,
    REASON_TOO_LARGE,
    LocalProtocolError,
    RemoteProtocolError,
)
from node.sync.entry import verify_entry
from node.sync.keyset import KeySet

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from node.sync.cid import CID
    from node.sync.entry import Entry
    from node.sync.keyset import Key

    Verify = Callable[[bytes, bytes, bytes], bool]

STORED = "stored"
DUPLICATE = "duplicate"
REFUSED = "refused"

REFUSED_UNKNOWN_LOG = "unknown-log"
REFUSED_TOO_LARGE = REASON_TOO_LARGE
REFUSED_QUOTA = REASON_QUOTA

DEFAULT_MAX_ENTRY_BYTES = 256 * 1024
DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 512 * 1024 * 1024
DEFAULT_EXPIRY_SECONDS = 30 * 24 * 3600
# An unpinned log over its quota is evicted down to (1 - 1/EVICT_HEADROOM) of it when possible.
EVICT_HEADROOM = 16


def _positive_int(name: str, value: object) -> int:
    if value is True or value is False or type(value) is not int or value <= 0:
        raise LocalProtocolError("%s must be a positive int, got %r" % (name, value))
    return value


def seconds(now: "int | float") -> int:
    """Whole seconds of a clock reading (both stores keep integer times, so they agree)."""
    if now is True or now is False or not isinstance(now, (int, float)) or now < 0:
        raise LocalProtocolError("now must be a non-negative number of seconds, got %r" % (now,))
    return int(now)


class Limits:
    """Store limits; every value is configurable (bytes and seconds)."""

    __slots__ = ("expiry_seconds", "max_entry_bytes", "max_log_bytes", "max_total_bytes")

    def __init__(
        self,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        expiry_seconds: int = DEFAULT_EXPIRY_SECONDS,
    ) -> None:
        self.max_entry_bytes = _positive_int("max_entry_bytes", max_entry_bytes)
        self.max_log_bytes = _positive_int("max_log_bytes", max_log_bytes)
        self.max_total_bytes = _positive_int("max_total_bytes", max_total_bytes)
        self.expiry_seconds = _positive_int("expiry_seconds", expiry_seconds)

    def __repr__(self) -> str:
        return "Limits(max_entry_bytes=%d, max_log_bytes=%d, max_total_bytes=%d, expiry=%ds)" % (
            self.max_entry_bytes,
            self.max_log_bytes,
            self.max_total_bytes,
            self.expiry_seconds,
        )


class PutResult:
    """The outcome for one entry given to put_entries.

    Attributes:
        cid: the entry's CID.
        status: STORED, DUPLICATE or REFUSED.
        reason: for REFUSED, a short code ("unknown-log", "too-large", "integrity", "quota", ...).
        detail: for REFUSED, what was wrong, for logs.
    """

    __slots__ = ("cid", "detail", "reason", "status")

    def __init__(self, cid: "CID", status: str, reason: str = "", detail: str = "") -> None:
        self.cid = cid
        self.status = status
        self.reason = reason
        self.detail = detail

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PutResult)
            and self.cid == other.cid
            and self.status == other.status
            and self.reason == other.reason
        )

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((self.cid, self.status, self.reason))

    def __repr__(self) -> str:
        if self.status == REFUSED:
            return "PutResult(%s, refused %s: %s)" % (self.cid, self.reason, self.detail)
        return "PutResult(%s, %s)" % (self.cid, self.status)


class LogInfo:
    """A snapshot of one log's metadata (log_info). `address` is the log id."""

    __slots__ = ("byte_count", "entry_count", "heads", "log_id", "pinned", "quota", "sign_pub")

    def __init__(
        self,
        log_id: str,
        sign_pub: bytes,
        pinned: bool,
        quota: "int | None",
        entry_count: int,
        byte_count: int,
        heads: "list[CID]",
    ) -> None:
        self.log_id = log_id
        self.sign_pub = sign_pub
        self.pinned = pinned
        self.quota = quota
        self.entry_count = entry_count
        self.byte_count = byte_count
        self.heads = heads

    @property
    def address(self) -> str:
        """The orbit-db store address, which ipfs-log uses as the log id."""
        return self.log_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogInfo) and (
            self.log_id,
            self.sign_pub,
            self.pinned,
            self.quota,
            self.entry_count,
            self.byte_count,
            self.heads,
        ) == (
            other.log_id,
            other.sign_pub,
            other.pinned,
            other.quota,
            other.entry_count,
            other.byte_count,
            other.heads,
        )

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        return "LogInfo(%s, pinned=%r, entries=%d, bytes=%d, heads=%d)" % (
            self.log_id,
            self.pinned,
            self.entry_count,
            self.byte_count,
            len(self.heads),
        )


class LogRecord:
    """A store's own mutable record of one log (internal to store implementations)."""

    __slots__ = (
        "byte_count",
        "entry_count",
        "keyset",
        "log_id",
        "pinned",
        "quota",
        "row",
        "sign_pub",
    )

    def __init__(
        self,
        log_id: str,
        sign_pub: bytes,
        pinned: bool,
        quota: "int | None",
        keyset: KeySet,
        row: int = 0,
    ) -> None:
        self.log_id = log_id
        self.sign_pub = sign_pub
        self.pinned = pinned
        self.quota = quota
        self.keyset = keyset
        self.row = row  # the database's id for the log; unused in memory
        self.entry_count = 0
        self.byte_count = 0


class Candidate:
    """An entry the eviction policy may remove (internal to store implementations)."""

    __slots__ = ("cid", "size")

    def __init__(self, cid: "CID", size: int) -> None:
        self.cid = cid
        self.size = size


def eviction_order(
    pinned: bool, now: int, stored_at: int, size: int, log_id: str, time: int, digest: bytes
) -> "tuple[bool, int, str, int, bytes]":
    """Sort key of an eviction candidate: unpinned first, then highest age * size, then key."""
    age = now - stored_at
    if age < 0:
        age = 0
    return (pinned, -(age * size), log_id, time, digest)


class Store:
    """The store interface with its policy; subclasses implement the storage primitives.

    Args:
        verify: the Ed25519 verify function, (public key, message, signature) -> bool, e.g. a
            Suite's `ed25519_verify`. Every entry not already stored is checked with
            `verify_entry(entry, verify, log.sign_pub)` before it is stored.
        limits: the limits; defaults: 256 KiB entries, 64 MiB per log, 512 MiB in all, 30 days.
    """

    def __init__(self, verify: "Verify", limits: "Limits | None" = None) -> None:
        if not callable(verify):
            raise LocalProtocolError("Store needs a verify callable (e.g. suite.ed25519_verify)")
        self.verify = verify
        self._verified_identities: "dict[tuple[bytes, bytes], bool]" = {}
        self.limits = limits if limits is not None else Limits()
        self._acks: list[CID] = []
        self._ack_set: set[CID] = set()

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
            _positive_int("quota", quota)
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
        try:
            verify_entry(entry, self.verify, record.sign_pub, self._verified_identities)
        except RemoteProtocolError as exc:
            return self._refuse(cid, exc.reason, exc.message)
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

    def _refuse(self, cid: "CID", reason: str, detail: str) -> PutResult:
        self._count("refused." + reason, 1)
        return PutResult(cid, REFUSED, reason, detail)

    def _acknowledge_later(self, cid: "CID") -> None:
        if cid not in self._ack_set:
            self._ack_set.add(cid)
            self._acks.append(cid)

    def _plan_room(self, record: LogRecord, size: int, now: int) -> "list[Candidate] | None":
        """The entries to evict so `size` more bytes fit; None when impossible.

        When the quota of an unpinned log overflows, the log is brought down to a low-water mark
        (1/EVICT_HEADROOM of its quota below the limit) when it has that much to evict, so a full
        community log does not pay one eviction query per new entry. Pinned logs and the total
        limit evict only what is needed.
        """
        quota = record.quota if record.quota is not None else self.limits.max_log_bytes
        need_log = record.byte_count + size - quota
        need_total = self._total_bytes() + size - self.limits.max_total_bytes
        plan: list[Candidate] = []
        if need_log <= 0 and need_total <= 0:
            return plan
        chosen: set[CID] = set()
        freed = 0
        if need_log > 0:
            target = need_log if record.pinned else need_log + quota // EVICT_HEADROOM
            for candidate in self._candidates(now, record, record.pinned):
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


class _Held:
    """One entry in a MemoryStore."""

    __slots__ = ("entry", "key", "log_id", "parents", "size", "stored_at")

    def __init__(self, entry: "Entry", log_id: str, parents: "list[CID]", stored_at: int) -> None:
        self.entry = entry
        self.log_id = log_id
        self.parents = parents
        self.size = len(entry.block)
        self.stored_at = stored_at
        self.key = (entry.clock_time, entry.cid.digest)


class _MemoryLog(LogRecord):
    __slots__ = ("by_key", "heads", "referrers")

    def __init__(self, log_id: str, sign_pub: bytes, pinned: bool, quota: "int | None") -> None:
        super().__init__(log_id, sign_pub, pinned, quota, KeySet())
        self.by_key: dict[Key, CID] = {}
        self.heads: set[CID] = set()
        self.referrers: dict[CID, int] = {}  # parent CID -> stored entries of this log naming it


class MemoryStore(Store):
    """An in-memory Store (portable tests, MicroPython, and the model for the SQLite store)."""

    def __init__(self, verify: "Verify", limits: "Limits | None" = None) -> None:
        super().__init__(verify, limits)
        self._logs: dict[str, _MemoryLog] = {}
        self._held: dict[CID, _Held] = {}
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
        self._logs[log_id] = _MemoryLog(log_id, sign_pub, pinned, quota)

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
        held = _Held(entry, log.log_id, parents, now)
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
