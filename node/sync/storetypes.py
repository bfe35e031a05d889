# The store's value types and limits (L0): outcomes, log records, eviction order.
#
# Split out of node/sync/store.py (which re-exports every name here) so that the policy module
# stays readable; see that module for the theory of operation.

from node._compat import TYPE_CHECKING
from node.errors import REASON_QUOTA, REASON_TOO_LARGE, LocalProtocolError
from node.sync.keyset import KeySet

if TYPE_CHECKING:
    from node.errors import RemoteProtocolError
    from node.sync.cid import CID
    from node.sync.entry import Entry
    from node.sync.keyset import Key

STORED = "stored"
DUPLICATE = "duplicate"
REFUSED = "refused"

REFUSED_UNKNOWN_LOG = "unknown-log"
REFUSED_TOO_LARGE = REASON_TOO_LARGE
REFUSED_QUOTA = REASON_QUOTA
REFUSED_DISK_FULL = "disk-full"
REFUSED_OVER_QUOTA = "over-quota"

DEFAULT_MAX_ENTRY_BYTES = 256 * 1024
DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 512 * 1024 * 1024
DEFAULT_EXPIRY_SECONDS = 30 * 24 * 3600
# An unpinned log over its quota is evicted down to (1 - 1/EVICT_HEADROOM) of it when possible.
EVICT_HEADROOM = 16


def positive_int(name: str, value: object) -> int:
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
        self.max_entry_bytes = positive_int("max_entry_bytes", max_entry_bytes)
        self.max_log_bytes = positive_int("max_log_bytes", max_log_bytes)
        self.max_total_bytes = positive_int("max_total_bytes", max_total_bytes)
        self.expiry_seconds = positive_int("expiry_seconds", expiry_seconds)

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
        error: for an entry refused by verification, the verifier's own error (an
            IntegrityError for a forgery), so a caller raises it as is instead of rebuilding it
            from `reason` and `detail`; None otherwise.
    """

    __slots__ = ("cid", "detail", "error", "reason", "status")

    def __init__(
        self,
        cid: "CID",
        status: str,
        reason: str = "",
        detail: str = "",
        error: "RemoteProtocolError | None" = None,
    ) -> None:
        self.cid = cid
        self.status = status
        self.reason = reason
        self.detail = detail
        self.error = error

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


class Held:
    """One entry in a MemoryStore."""

    __slots__ = ("entry", "key", "log_id", "parents", "size", "stored_at")

    def __init__(self, entry: "Entry", log_id: str, parents: "list[CID]", stored_at: int) -> None:
        self.entry = entry
        self.log_id = log_id
        self.parents = parents
        self.size = len(entry.block)
        self.stored_at = stored_at
        self.key = (entry.clock_time, entry.cid.digest)


class MemoryLog(LogRecord):
    """A log in a MemoryStore."""

    __slots__ = ("by_key", "heads", "referrers")

    def __init__(self, log_id: str, sign_pub: bytes, pinned: bool, quota: "int | None") -> None:
        super().__init__(log_id, sign_pub, pinned, quota, KeySet())
        self.by_key: dict[Key, CID] = {}
        self.heads: set[CID] = set()
        self.referrers: dict[CID, int] = {}  # parent CID -> stored entries of this log naming it
