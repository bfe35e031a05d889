"""The daemon's admission shell (L2): the sans-IO policy (node/app/admission.py) applied to links.

Every accepted link passes `admit` (the LinkQueue's gate) with its source: the peer's IP on TCP,
the central's address on BLE. The policy's answers become actions here: a refusal closes the
newcomer at once; an admitted link waits unread until its source has a handshake slot, then
`launch` starts its driver; drivers report progress, which marks a session opened (the
longest-idle session then makes room when relay.max_sessions are open) or active; `run` closes
links at their deadlines (handshake, idle session). Refusals and closings are counted one by one
and logged as one summary line per reason per minute (`Rejections`).

The clock is a parameter (monotonic seconds), so tests drive the minute without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from node.app.admission import (
    CLOSE_IDLE,
    CLOSE_PENDING,
    HANDSHAKE,
    SESSION,
    Admission,
    AdmissionLimits,
    Rejections,
    Ticket,
)
from node.app.peer import LinkDriver, SyncOutcome
from node.errors import REASON_BUSY, REASON_IDLE
from node.link import Link

log = logging.getLogger("waystation.admission")

# Bye reasons for the policy's closing reasons (docs/protocol.md, "Bye reasons").
BYE_FOR = {CLOSE_IDLE: REASON_IDLE, CLOSE_PENDING: REASON_BUSY}
CLOSE_TEXT = {
    "timeout": "handshake not finished in time",
    CLOSE_IDLE: "nothing declared or moved",
    CLOSE_PENDING: "relay busy: room made for another source",
}
ROOM_TEXT = "relay full: the longest-idle session makes room"

# launch(link, progress, ended): start a driver for `link` reporting to `progress`, and call
# `ended` when its task is over.
Launch = Callable[[Link, Callable[[SyncOutcome], None], Callable[[], None]], LinkDriver]


class _Slot:
    """An admitted link and, once its handshake may start, its driver."""

    __slots__ = ("driver", "link")

    def __init__(self, link: Link) -> None:
        self.link = link
        self.driver: LinkDriver | None = None


class Gatekeeper:
    """Admission for the daemon's inbound links.

    Args:
        limits: the policy's limits (config.admission_limits).
        count: adds one to a named counter (NodeContext.count once the context exists).
        launch: starts a driver (see `Launch`).
        close_later: closes a link that never started, in a task the daemon tracks.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        limits: AdmissionLimits,
        count: Callable[[str], None],
        launch: Launch,
        close_later: Callable[[Link], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy: Admission[_Slot] = Admission(limits)
        self.rejections = Rejections()
        self.closing = False  # shutting down: refuse every newcomer
        self._count = count
        self._launch = launch
        self._close_later = close_later
        self._clock = clock
        self._tickets: dict[Link, Ticket[_Slot]] = {}  # admitted links not yet ended
        self._changed = asyncio.Event()

    def admit(self, link: Link, source: str) -> bool:
        """The LinkQueue's gate: the policy's answer for a newcomer from `source`."""
        now = self._clock()
        if self.closing:
            self._count("links.rejected.busy")
            return False
        ticket, evicted, startable = self.policy.arrive(source, _Slot(link), now)
        if isinstance(ticket, str):
            self._count("links.rejected." + ticket)
            self._summarise("refused " + ticket, source, now)
            return False
        self._tickets[link] = ticket
        self._close_all(evicted, now)
        self._start_all(startable)
        self._changed.set()
        return True

    def taken(self, link: Link) -> None:
        """The acceptor took `link` from the queue: start it if its source has a slot."""
        ticket = self._tickets.get(link)
        if ticket is not None:  # else closed by the policy while queued, or shutting down
            self._start(ticket)

    def shutdown(self) -> None:
        """Refuse newcomers; close links still waiting unread (started ones get Bye shutdown
        from the daemon)."""
        self.closing = True
        for ticket in list(self._tickets.values()):
            if ticket.item.driver is None:
                self._close_unstarted(ticket)
        self._tickets.clear()

    async def run(self) -> None:
        """Close links at their admission deadlines (handshake, idle session)."""
        while True:
            deadline = self.policy.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            self._changed.clear()
            now = self._clock()
            due, startable = self.policy.due(now)
            self._close_all(due, now)
            self._start_all(startable)

    def wake(self) -> None:
        """Look at the deadlines again now (after the clock moved)."""
        self._changed.set()

    def flush(self) -> None:
        """Log the summary lines whose minute is over (called by housekeeping)."""
        for line in self.rejections.flush(self._clock()):
            log.warning("%s", line)

    def status(self) -> dict[str, int]:
        return {"sessions": self.policy.sessions, "pending": self.policy.pending}

    # -- internals ------------------------------------------------------------------------------

    def _start(self, ticket: Ticket[_Slot]) -> None:
        """Start the driver of an admitted link that has a handshake slot (idempotent: the gate,
        the acceptor and a freed slot may each ask)."""
        slot = ticket.item
        if ticket.state != HANDSHAKE or slot.driver is not None or self.closing:
            return
        slot.driver = self._launch(
            slot.link, lambda _outcome: self._progress(ticket), lambda: self._ended(ticket)
        )

    def _start_all(self, tickets: list[Ticket[_Slot]]) -> None:
        for ticket in tickets:
            self._start(ticket)

    def _ended(self, ticket: Ticket[_Slot]) -> None:
        self._tickets.pop(ticket.item.link, None)
        self._start_all(self.policy.closed(ticket, self._clock()))
        self._changed.set()

    def _progress(self, ticket: Ticket[_Slot]) -> None:
        """A driver's progress report: its session opened, or it moved something."""
        driver = ticket.item.driver
        if driver is None:
            return
        now = self._clock()
        if ticket.state == HANDSHAKE and driver.session.is_open:
            room, startable = self.policy.opened(ticket, now)
            for victim in room:
                self._close_ticket(victim, REASON_IDLE, ROOM_TEXT)
                self._summarise("closed idle", victim.source, now)
            self._start_all(startable)
            self._changed.set()
        if ticket.state == SESSION:
            o = driver.outcome
            activity = o.logs_declared + o.entries_sent + o.entries_received + o.entries_refused
            if activity != ticket.activity:
                self.policy.active(ticket, activity, now)

    def _close_all(self, closing: list[tuple[Ticket[_Slot], str]], now: float) -> None:
        for ticket, reason in closing:
            self._close_ticket(ticket, BYE_FOR.get(reason, reason), CLOSE_TEXT[reason])
            self._summarise("closed " + reason, ticket.source, now)

    def _close_ticket(self, ticket: Ticket[_Slot], reason: str, text: str) -> None:
        """Close a link the policy let go: Bye `reason` through its driver, or unread."""
        driver = ticket.item.driver
        if driver is not None:
            driver.request_close(reason, text)
        else:
            self._close_unstarted(ticket)

    def _close_unstarted(self, ticket: Ticket[_Slot]) -> None:
        self._tickets.pop(ticket.item.link, None)
        self._count("links.closed.unstarted")
        self._close_later(ticket.item.link)

    def _summarise(self, what: str, source: str, now: float) -> None:
        line = self.rejections.add(what, source, now)
        if line is not None:
            log.warning("%s", line)
