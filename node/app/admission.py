"""Admission: who gets a link, who waits, and who makes room (sans-IO policy, no sockets).

Theory of operation
-------------------
Every link a listener accepts arrives with a *source*: a string key the transport chooses (the
peer's IP address on TCP, later the central's address on BLE). `Admission` decides, from counts
alone and a `now` (monotonic seconds) passed in, what happens to it; the daemon (or a BLE
peripheral) carries the decisions out. It never touches a link itself: each `Ticket` carries the
caller's `item` (the link, its driver) back in the answers.

A ticket goes through these states (one table, `_MOVES`):

    arrive ──► WAITING ──start──► HANDSHAKE ──opened──► SESSION ──► CLOSED
        │          │                  │                    │
        └─refused  └─deadline/evicted └─deadline/evicted   └─idle/evicted/closed

- WAITING: admitted, but its source already has `max_handshakes_per_source` handshakes in
  flight: it waits its turn unread (a burst of honest members behind one address all get in,
  one handful at a time). `arrive`/`closed`/`opened` return the tickets that may start now.
- HANDSHAKE: the link's handshake (and Hello) runs. Its deadline, `handshake_s` from its start,
  is absolute: whatever trickles in, an unauthenticated link is closed at it (reason
  `timeout`). A WAITING ticket has the same deadline from its arrival.
- SESSION: authenticated. A session that has declared no log and moved no entry
  (`activity` still 0) for `idle_session_s` is closed (`idle`). When a session opens with
  `max_sessions` already open, the longest-idle session makes room (`idle`, "relay full"):
  sessions that never did anything first, then the one whose last activity is oldest. The
  newcomer is never the one refused.

Limits on arrival, in this order (the refusal reason is the counter suffix):
- `source-links`: the source already holds `max_links_per_source` links in any state;
- `pending`: `max_pending` links are waiting or handshaking, and no other source holds more of
  them than the newcomer's (fair share: otherwise that source's oldest pending link is evicted,
  reason `pending`, and the newcomer takes its place).

`Rejections` gathers refusals and closings per reason and hands the daemon one summary line per
reason per `period` (a flood costs a few log lines a minute, not one per connection).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

WAITING = "WAITING"
HANDSHAKE = "HANDSHAKE"
SESSION = "SESSION"
CLOSED = "CLOSED"

# Refusal and closing reasons (counter suffixes: links.rejected.<r>, links.closed.<r>).
REFUSED_SOURCE_LINKS = "source-links"
REFUSED_PENDING = "pending"
CLOSE_TIMEOUT = "timeout"  # the handshake deadline passed
CLOSE_IDLE = "idle"  # nothing declared or moved, or the longest idle when the relay is full
CLOSE_PENDING = "pending"  # a pending link of the busiest source made room for another source

# The one state table: (state, event) -> next state. Any other pair is a bug of the caller.
_MOVES = {
    (WAITING, "start"): HANDSHAKE,
    (WAITING, "close"): CLOSED,
    (HANDSHAKE, "open"): SESSION,
    (HANDSHAKE, "close"): CLOSED,
    (SESSION, "close"): CLOSED,
}


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The limits (config keys in docs/operations.md).

    Attributes:
        max_sessions: authenticated sessions at once (relay.max_sessions).
        max_pending: links waiting or handshaking at once, all sources (relay.max_pending).
        max_links_per_source: links of one source in any state (relay.max_links_per_source).
        max_handshakes_per_source: handshakes in flight per source
            (relay.max_handshakes_per_source).
        handshake_s: seconds from a link's start (or arrival, while waiting) to its Hello.
        idle_session_s: seconds a session may stay without declaring or moving anything.
    """

    max_sessions: int
    max_pending: int
    max_links_per_source: int
    max_handshakes_per_source: int
    handshake_s: float
    idle_session_s: float


class Ticket(Generic[T]):
    """One admitted link as the policy sees it; `item` is the caller's (the link, its driver)."""

    __slots__ = ("activity", "arrived", "item", "last_active", "since", "source", "state")

    def __init__(self, source: str, item: T, now: float) -> None:
        self.source = source
        self.item = item
        self.state = WAITING
        self.arrived = now
        self.since = now  # entered its current state
        self.last_active = now
        self.activity = 0  # logs declared + entries moved, as last reported

    def _move(self, event: str, now: float) -> None:
        nxt = _MOVES.get((self.state, event))
        if nxt is None:
            raise ValueError("admission: %s in state %s" % (event, self.state))
        self.state = nxt
        self.since = now

    def __repr__(self) -> str:
        return "Ticket(%s, %s)" % (self.source, self.state)


class Admission(Generic[T]):
    """The admission policy of one node (see the module docstring).

    Args:
        limits: the limits.
    """

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._by_source: dict[str, list[Ticket[T]]] = {}
        self._pending: list[Ticket[T]] = []  # WAITING and HANDSHAKE, oldest first
        self._sessions: list[Ticket[T]] = []

    # -- counts -------------------------------------------------------------------------------

    @property
    def sessions(self) -> int:
        """Authenticated sessions open."""
        return len(self._sessions)

    @property
    def pending(self) -> int:
        """Links waiting or handshaking."""
        return len(self._pending)

    def links_of(self, source: str) -> int:
        """Links of `source` in any state."""
        return len(self._by_source.get(source, ()))

    def _count(self, source: str, state: str) -> int:
        return sum(1 for t in self._by_source.get(source, ()) if t.state == state)

    # -- events -------------------------------------------------------------------------------

    def arrive(
        self, source: str, item: T, now: float
    ) -> tuple[Ticket[T] | str, list[tuple[Ticket[T], str]], list[Ticket[T]]]:
        """A link from `source` was accepted.

        Returns:
            (its ticket, or the refusal reason; links to close now with their reasons (a busier
            source's pending link that made room); tickets that may start their handshake now,
            the new one among them if its source has a handshake slot free).
        """
        limits = self.limits
        if self.links_of(source) >= limits.max_links_per_source:
            return REFUSED_SOURCE_LINKS, [], []
        evicted: list[tuple[Ticket[T], str]] = []
        startable: list[Ticket[T]] = []
        if len(self._pending) >= limits.max_pending:
            victim = self._busiest_pending(source)
            if victim is None:
                return REFUSED_PENDING, [], []
            self._close(victim, now)
            evicted.append((victim, CLOSE_PENDING))
            startable = self._startable(victim.source, now)  # its handshake slot may be free
        ticket = Ticket(source, item, now)
        self._by_source.setdefault(source, []).append(ticket)
        self._pending.append(ticket)
        return ticket, evicted, startable + self._startable(source, now)

    def opened(self, ticket: Ticket[T], now: float) -> tuple[list[Ticket[T]], list[Ticket[T]]]:
        """`ticket`'s handshake and Hello are done: it is a session now.

        Returns:
            (sessions to close to make room (reason `idle`), tickets that may start now).
        """
        if ticket.state == CLOSED:
            return [], []
        ticket._move("open", now)
        self._pending.remove(ticket)
        ticket.last_active = now
        room: list[Ticket[T]] = []
        while len(self._sessions) >= self.limits.max_sessions:
            victim = min(self._sessions, key=lambda t: (t.activity > 0, t.last_active))
            self._close(victim, now)
            room.append(victim)
        self._sessions.append(ticket)
        return room, self._startable(ticket.source, now)

    def active(self, ticket: Ticket[T], activity: int, now: float) -> None:
        """The link reports `activity` (logs declared + entries moved so far); a change is life."""
        if activity != ticket.activity:
            ticket.activity = activity
            ticket.last_active = now

    def closed(self, ticket: Ticket[T], now: float) -> list[Ticket[T]]:
        """`ticket`'s link ended (any state, any reason; idempotent).

        Returns:
            tickets that may start now (a handshake slot of its source freed).
        """
        if ticket.state == CLOSED:
            return []
        self._close(ticket, now)
        return self._startable(ticket.source, now)

    def due(self, now: float) -> tuple[list[tuple[Ticket[T], str]], list[Ticket[T]]]:
        """Links whose deadline passed by `now`.

        Returns:
            (links to close with their reasons: each is closed in the policy already, and a later
            `closed` for it is a no-op; tickets that may start now, in the slots they freed).
        """
        out: list[tuple[Ticket[T], str]] = []
        limits = self.limits
        for ticket in list(self._pending):
            if now >= ticket.since + limits.handshake_s:
                self._close(ticket, now)
                out.append((ticket, CLOSE_TIMEOUT))
        for ticket in list(self._sessions):
            if ticket.activity == 0 and now >= ticket.since + limits.idle_session_s:
                self._close(ticket, now)
                out.append((ticket, CLOSE_IDLE))
        started: list[Ticket[T]] = []
        for source in dict.fromkeys(t.source for t, _ in out):
            started.extend(self._startable(source, now))
        return out, started

    def next_deadline(self) -> float | None:
        """The earliest time `due` may return something, or None."""
        limits = self.limits
        times = [t.since + limits.handshake_s for t in self._pending]
        times.extend(t.since + limits.idle_session_s for t in self._sessions if t.activity == 0)
        return min(times) if times else None

    # -- internals ----------------------------------------------------------------------------

    def _busiest_pending(self, newcomer: str) -> Ticket[T] | None:
        """The oldest pending ticket of the source with the most pending links, if that source
        holds more than `newcomer` does (fair share), else None."""
        counts = Counter(t.source for t in self._pending)
        source, most = max(counts.items(), key=lambda kv: kv[1])
        if source == newcomer or most <= counts.get(newcomer, 0) + 1:
            return None
        return next(t for t in self._pending if t.source == source)

    def _startable(self, source: str, now: float) -> list[Ticket[T]]:
        free = self.limits.max_handshakes_per_source - self._count(source, HANDSHAKE)
        started: list[Ticket[T]] = []
        for ticket in self._by_source.get(source, ()):
            if free <= 0:
                break
            if ticket.state == WAITING:
                ticket._move("start", now)
                started.append(ticket)
                free -= 1
        return started

    def _close(self, ticket: Ticket[T], now: float) -> None:
        state = ticket.state
        ticket._move("close", now)
        if state == SESSION:
            self._sessions.remove(ticket)
        else:
            self._pending.remove(ticket)
        tickets = self._by_source[ticket.source]
        tickets.remove(ticket)
        if not tickets:
            del self._by_source[ticket.source]


class Rejections:
    """Refusals and admission closings per reason, summarised once per `period` per reason.

    Args:
        period: seconds between two summary lines of one reason.
    """

    def __init__(self, period: float = 60.0) -> None:
        self.period = period
        self._counts: Counter[str] = Counter()
        self._sources: dict[str, Counter[str]] = {}
        self._since: dict[str, float] = {}  # the window the next line covers starts here
        self._last: dict[str, float] = {}  # when the last line of a reason was given

    def add(self, what: str, source: str, now: float) -> str | None:
        """Count one (`what`: "refused <reason>" or "closed <reason>"); returns a summary line
        when `what` is due one (the first, then at most one a period)."""
        self._counts[what] += 1
        self._since.setdefault(what, now)
        sources = self._sources.setdefault(what, Counter())
        if source in sources or len(sources) < 64:  # bounded: a spread flood names a few
            sources[source] += 1
        last = self._last.get(what)
        if last is not None and now - last < self.period:
            return None
        return self._summary(what, now)

    def flush(self, now: float) -> list[str]:
        """Summary lines for every reason with counts left whose period is over."""
        due = [
            what
            for what in sorted(self._counts)
            if now - self._last.get(what, now - self.period) >= self.period
        ]
        return [self._summary(what, now) for what in due]

    def _summary(self, what: str, now: float) -> str:
        count = self._counts.pop(what)
        sources = self._sources.pop(what, Counter())
        since = self._since.get(what, now)
        self._since[what] = self._last[what] = now
        verb, _, reason = what.partition(" ")
        top = ", ".join("%s (%d)" % kv for kv in sources.most_common(3))
        return "%s %d link%s in the last %.0f s: %s; most from %s" % (
            verb, count, "" if count == 1 else "s", now - since, reason, top or "?"
        )  # fmt: skip
