# ipfs-log rules over an in-memory view of one log (L0, portable): heads, order, Lamport clock,
# join, traversal and refs selection (berty-wesh.md §4.4-§4.5).
#
# Theory of operation
# -------------------
# A view is a dict CID -> Entry of one log. Nothing here does IO or checks signatures: entries are
# verified before they reach a view (node.sync.entry.verify_entry).
#
#   order      (clock time, clock id, base32 CID), oldest first: Entry.sort_key(). go-ipfs-log's
#              default LastWriteWins compares time, then clock id, then gives up ("First"), so equal
#              times under Berty's single shared clock id fall back to insertion order and peers
#              disagree. Breaking the tie by CID (ipfs-log's SortByEntryHash) makes it total and
#              identical everywhere.
#   heads      entries of the view that no entry of the view names in `next`.
#   clock      append: time = max(log clock, max head time) + 1; join: max of both clocks and the
#              head times (go-ipfs-log takes max(local clock, head times); adding the other log's
#              clock keeps join commutative and changes nothing for logs built by append and
#              join, whose clock is always the time of their newest entry).
#   join       union of the two views (go-ipfs-log walks `next` from the other log's heads and
#              stops at entries it already has; for complete views that is the same union), with
#              heads and clock recomputed. Commutative, associative, idempotent.
#   traverse   go-ipfs-log `traverse(roots, amount)`: a stack of the roots sorted newest first; pop
#              the front, emit it, push its not-yet-seen `next` entries (present in the view), keep
#              the stack sorted newest first. Roots are marked seen only when popped, as upstream.
#              Following `next` only, never `refs`. With our total order the stack is a priority
#              queue; it is kept sorted oldest first so the newest is popped from the end.
#   refs       go-orbit-db appends with pointer count 64: traverse max(64, len(heads)) entries from
#              the heads, take traversal positions i-1 for i = 1, 2, 4, ..., min(64, n), add the
#              last traversed entry when fewer than 64 were traversed, drop anything in `next` and
#              any repeat (go-ipfs-log de-duplicates before writing). At most 7 refs.
#   next       the heads, oldest first (Append prepends each head of the newest-first list).

from node.errors import LocalProtocolError
from node.sync.cid import CID
from node.sync.entry import Entry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

POINTER_COUNT = 64


def _key(entry: Entry) -> "tuple[int, bytes, str]":
    return entry.sort_key()


def sorted_entries(entries: "Iterable[Entry]", newest_first: bool = False) -> "list[Entry]":
    """The entries in log order (oldest first unless newest_first)."""
    return sorted(entries, key=_key, reverse=newest_first)


def heads(entries: "dict[CID, Entry]") -> "list[Entry]":
    """Entries no other entry of the view names in `next`, oldest first."""
    referenced = set()
    for entry in entries.values():
        for parent in entry.next:
            referenced.add(parent)
    return sorted((e for c, e in entries.items() if c not in referenced), key=_key)


def max_clock_time(entries: "Iterable[Entry]", default: int = 0) -> int:
    """The largest clock time among `entries`, or `default`."""
    best = default
    for entry in entries:
        if entry.clock_time > best:
            best = entry.clock_time
    return best


def next_clock_time(head_entries: "Iterable[Entry]", clock_time: int = 0) -> int:
    """Append rule: max(log clock, max head time) + 1."""
    return max_clock_time(head_entries, clock_time) + 1


def traverse(
    entries: "dict[CID, Entry]", roots: "Iterable[Entry]", amount: int = -1
) -> "list[Entry]":
    """go-ipfs-log's traversal from `roots`, newest first, following `next` only.

    Args:
        entries: the view (parents missing from it are skipped).
        roots: where to start (usually the heads).
        amount: stop after this many pops; -1 for all.

    Returns:
        The traversed entries in traversal order.
    """
    stack = sorted(roots, key=_key)  # oldest first: the newest is popped from the end
    stack_keys = [e.sort_key() for e in stack]
    seen: "set[CID]" = set()
    emitted: "set[CID]" = set()
    result: "list[Entry]" = []
    count = 0
    while stack and (amount < 0 or count < amount):
        entry = stack.pop()
        stack_keys.pop()
        count += 1
        cid = entry.cid
        if cid not in emitted:  # a root reachable from another root is popped twice upstream
            emitted.add(cid)
            result.append(entry)
        seen.add(cid)
        for parent_cid in entry.next:
            parent = entries.get(parent_cid)
            if parent is None or parent_cid in seen:
                continue
            seen.add(parent_cid)
            key = parent.sort_key()
            lo = 0
            hi = len(stack_keys)
            while lo < hi:
                mid = (lo + hi) // 2
                if stack_keys[mid] < key:
                    lo = mid + 1
                else:
                    hi = mid
            stack.insert(lo, parent)
            stack_keys.insert(lo, key)
    return result


def values(entries: "dict[CID, Entry]") -> "list[Entry]":
    """go-ipfs-log Values(): the full traversal from the heads, reversed (oldest first)."""
    out = traverse(entries, heads(entries))
    out.reverse()
    return out


def select_refs(
    traversal: "list[Entry]", next: "list[CID]", pointer_count: int = POINTER_COUNT
) -> "list[CID]":
    """go-orbit-db's skip pointers for a new entry (at most log2(pointer_count) + 1 of them).

    Args:
        traversal: traverse(view, heads, max(pointer_count, len(heads))).
        next: the new entry's `next`; those CIDs are not repeated in refs.
        pointer_count: 64 in go-orbit-db.
    """
    n = len(traversal)
    picked: "list[Entry]" = []
    limit = min(pointer_count, n)
    i = 1
    while i <= limit:
        picked.append(traversal[min(n - 1, i - 1)])
        i *= 2
    if 0 < n < pointer_count:
        picked.append(traversal[n - 1])
    skip = set(next)
    refs: "list[CID]" = []
    for entry in picked:
        cid = entry.cid
        if cid not in skip:
            skip.add(cid)
            refs.append(cid)
    return refs


def append_plan(
    entries: "dict[CID, Entry]",
    clock_time: int = 0,
    pointer_count: int = POINTER_COUNT,
) -> "tuple[list[CID], list[CID], int]":
    """What go-orbit-db's Append would put in the next entry of this view.

    Returns:
        (next, refs, clock_time) for node.sync.entry.create_entry.
    """
    head_entries = heads(entries)
    newest_first = list(reversed(head_entries))
    time = next_clock_time(head_entries, clock_time)
    walked = traverse(entries, newest_first, max(pointer_count, len(head_entries)))
    next = [h.cid for h in head_entries]
    return next, select_refs(walked, next, pointer_count), time


class Log:
    """An immutable in-memory view of one log: entries, heads and Lamport clock.

    Attributes:
        log_id: the store address every entry carries.
        entries: dict CID -> Entry (do not mutate).
        heads: list of head entries, oldest first.
        clock_time: the log's Lamport clock.
    """

    __slots__ = ("clock_time", "entries", "heads", "log_id")

    def __init__(
        self,
        log_id: str,
        entries: "dict[CID, Entry] | None" = None,
        clock_time: int = 0,
    ) -> None:
        view: "dict[CID, Entry]" = dict(entries) if entries else {}
        for cid, entry in view.items():
            if entry.log_id != log_id:
                raise LocalProtocolError(
                    "entry %s belongs to log %r, not %r" % (cid, entry.log_id, log_id)
                )
            if entry.cid != cid:
                raise LocalProtocolError("entry %s filed under CID %s" % (entry.cid, cid))
        self.log_id = log_id
        self.entries = view
        self.heads = heads(view)
        self.clock_time = max_clock_time(self.heads, clock_time)

    def append(self, entry: Entry) -> "Log":
        """A new Log with `entry` added (its time becomes the clock if later)."""
        view = dict(self.entries)
        view[entry.cid] = entry
        return Log(self.log_id, view, max(self.clock_time, entry.clock_time))

    def values(self) -> "list[Entry]":
        """All entries in go-ipfs-log traversal order, oldest first."""
        return values(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Log):
            return NotImplemented
        return (
            self.log_id == other.log_id
            and self.clock_time == other.clock_time
            and len(self.entries) == len(other.entries)
            and all(c in other.entries for c in self.entries)
        )

    def __hash__(self) -> int:
        return hash((self.log_id, self.clock_time, len(self.entries)))

    def __repr__(self) -> str:
        return "Log(%r, entries=%d, heads=%d, clock=%d)" % (
            self.log_id,
            len(self.entries),
            len(self.heads),
            self.clock_time,
        )


def join(a: Log, b: Log) -> Log:
    """The union of two views of the same log, with heads and clock recomputed.

    Raises:
        LocalProtocolError: the logs have different ids (go-ipfs-log silently ignores the join).
    """
    if a.log_id != b.log_id:
        raise LocalProtocolError("cannot join log %r with log %r" % (a.log_id, b.log_id))
    if len(a.entries) >= len(b.entries):
        view = dict(a.entries)
        view.update(b.entries)
    else:
        view = dict(b.entries)
        view.update(a.entries)
    return Log(a.log_id, view, max(a.clock_time, b.clock_time))
