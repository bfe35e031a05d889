"""The per-link driver (L2): the asyncio shell around one link's sans-IO LinkCore.

Theory of operation
-------------------
One LinkDriver runs per link, inside the daemon's TaskGroup (or alone in `waystation peer
sync`). The protocol logic (session, interest, passes, outbound entries, storing what arrives) is
node.app.linkcore's LinkCore, which does no I/O; this shell only moves things between it and the
world. A reader task reads frames from the Link into the inbox (at most FRAME_SLOTS ahead). The
loop writes what the core queued (unless more inputs already wait, for at most COALESCE inputs:
their answers then share Noise messages, node.proto.session), then takes the next input from the
inbox (a frame, a framing error, a wake-up, a close request, a durable commit) or the core's
timer, and feeds it to the core.
After each input it hands the core's stored batches to the node's Committer (whose callback puts
`Committed` into the inbox once they are durable), wakes `wait_in_sync` waiters, and reports
progress. The Hub subscription queues entries other links stored (`LinkCore.offer`) and puts one
wake-up at a time into the inbox.

The drawing of the data path, from a received frame to a stored row, is in docs/layout.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from node.app.context import NodeContext
from node.app.linkcore import (
    CloseRequest,
    CommitRequest,
    Committed,
    FrameIn,
    FramingError,
    Input,
    LinkCore,
    SyncOutcome,
    Tick,
    Wake,
)
from node.app.passes import MAX_PASSES
from node.errors import BYE_REASONS, LOCAL_ENDINGS, REASON_TIMEOUT, LinkError, RemoteProtocolError
from node.link import Link
from node.proto.session import Session

if TYPE_CHECKING:
    from node.sync.keyset import Key

__all__ = [
    "FRAME_SLOTS",
    "KNOWN_REASONS",
    "MAX_PASSES",
    "LinkDriver",
    "SyncOutcome",
    "counter_reason",
]

log = logging.getLogger("waystation.link")

FRAME_SLOTS = 8  # frames read ahead of the driver
COALESCE = 4  # inputs handled before writing, when more already wait (their answers share frames)


# Bye reasons (docs/protocol.md) and local endings; anything else a peer writes in its Bye is
# counted as "other", so a peer cannot create counter names in the operator's status file.
KNOWN_REASONS = frozenset(BYE_REASONS + LOCAL_ENDINGS)


def counter_reason(reason: str) -> str:
    """The counter suffix for an ending reason: itself if known, else "other"."""
    return reason if reason in KNOWN_REASONS else "other"


class LinkDriver:
    """Drive one link.

    Args:
        ctx: the node's shared context.
        link: the framed transport; its `frame_hint` sizes reconcile frames and entry batches.
        initiator: True on the side that opened the link.
        until_synced: close with Bye "ok" once a pass finds every log in sync and nothing is in
            flight (members' `peer sync`, relays syncing a relay). Otherwise stay open for pushes.
        progress: called with the outcome so far whenever entries move (for a progress display).
    """

    def __init__(
        self,
        ctx: NodeContext,
        link: Link,
        initiator: bool,
        until_synced: bool = False,
        progress: Callable[[SyncOutcome], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.link = link
        self.initiator = initiator
        self.progress = progress
        self.opened_ms = ctx.clock()  # for `waystation status` (link age)
        self.core = LinkCore(
            ctx, initiator, until_synced, link.frame_hint, ctx.clock(), label=link.label
        )
        self.outcome = self.core.outcome
        self._inbox: asyncio.Queue[Input] = asyncio.Queue()
        self._frame_slots = asyncio.Semaphore(FRAME_SLOTS)
        self._wake_queued = False
        self._in_sync = asyncio.Event()  # a pass found every log in sync, or the link ended
        self._hub_token = ctx.hub.subscribe(self._on_published)

    @property
    def session(self) -> Session:
        """The link's sans-IO session (its stats and sizes, for tests and measurements)."""
        return self.core.session

    def request_close(self, reason: str, text: str = "") -> None:
        """Ask the driver to say Bye and end (shutdown, operator action); safe from any task."""
        self._inbox.put_nowait(CloseRequest(reason, text))

    async def wait_in_sync(self) -> None:
        """Wait until a pass has found every log in sync (`outcome.in_sync`; the initiator's).

        Raises:
            LinkError: the link ended first (`outcome.reason` says why).
        """
        await self._in_sync.wait()
        if not self.outcome.in_sync:
            raise LinkError("%s: ended before in sync: %s" % (self.link.label, self.outcome.reason))

    async def run(self) -> SyncOutcome:
        """Run the link to its end; never raises for anything the peer does."""
        try:
            async with asyncio.TaskGroup() as tasks:
                reader = tasks.create_task(self._read_frames())
                try:
                    await self._main_loop()
                finally:
                    reader.cancel()
        except* LinkError as group:
            self.core.lost(str(group.exceptions[0]), self.ctx.clock())
        finally:
            self._in_sync.set()  # wake wait_in_sync: it raises unless in sync
            self.ctx.hub.unsubscribe(self._hub_token)
            self.core.release()
            await self.link.close()
        self.ctx.count("links.closed." + counter_reason(self.outcome.reason))
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Cancelled from outside (Ctrl-C, shutdown) while a reader's LinkError won the task
            # group's exit: the cancellation must still reach our caller, not a "lost" outcome.
            raise asyncio.CancelledError
        return self.outcome

    async def _read_frames(self) -> None:
        while True:
            await self._frame_slots.acquire()
            try:
                frame = await self.link.recv()
            except RemoteProtocolError as exc:  # framing: oversize or truncated frame
                await self._inbox.put(FramingError(exc))
                return
            await self._inbox.put(FrameIn(frame))
            if frame is None:
                return

    async def _main_loop(self) -> None:
        core = self.core
        session = core.session
        held = 0  # inputs handled since the last write
        while True:
            if held >= COALESCE or self._inbox.empty() or session.is_finished or core.stopping:
                await self._flush()
                held = 0
            if session.is_finished or core.stopping:  # core.finished, inlined
                return
            timer = session.get_timer()  # the core's session, read directly on this hot path
            timeout = None if timer is None else max(0.0, (timer - self.ctx.clock()) / 1000)
            try:
                item = self._inbox.get_nowait()  # the common case under load: no waiting at all
            except asyncio.QueueEmpty:
                try:
                    async with asyncio.timeout(timeout):  # no extra task, unlike wait_for
                        item = await self._inbox.get()
                except TimeoutError:
                    item = Tick()
            kind = type(item)
            if kind is FrameIn:
                self._frame_slots.release()
            elif kind is Wake:
                self._wake_queued = False
            core.handle(item, self.ctx.clock())
            held += 1
            for commit in core.take_commits():
                self.ctx.committer.after_commit(self._when_durable(commit), commit.generation)
            if self.outcome.in_sync and not self._in_sync.is_set():
                self._in_sync.set()
            if self.progress is not None and kind is not Tick:
                self.progress(self.outcome)

    async def _flush(self) -> None:
        frames = self.core.session.frames_to_send()
        if not frames:
            return
        # A peer that stops reading stalls our writes, and no timer runs meanwhile: bound them
        # by the idle deadline, as we bound its silence. No Bye can reach it; the link ends.
        limit = self.ctx.limits.idle_timeout / 1000
        try:
            async with asyncio.timeout(limit):
                await self.link.send(frames)
        except TimeoutError:
            log.warning("%s: peer read nothing for %.0f s", self.link.label, limit)
            self.outcome.reason = self.outcome.reason or REASON_TIMEOUT
            raise LinkError("%s: writes stalled for %.0f s" % (self.link.label, limit)) from None

    def _when_durable(self, commit: CommitRequest) -> Callable[[bool], None]:
        """The Committer's callback for `commit`: feed the core its outcome through the inbox
        (nothing for a commit only asked for, `acknowledge` False)."""

        def done(durable: bool) -> None:
            if commit.acknowledge:
                self._inbox.put_nowait(Committed(commit.ref, commit.count, commit.credit, durable))

        return done

    def _on_published(self, address: str, keys: list[Key], source: object) -> None:
        if source is self.core or not self.core.offer(address, keys):
            return
        if not self._wake_queued:  # one wake-up at a time, however many publications
            self._wake_queued = True
            self._inbox.put_nowait(Wake())
