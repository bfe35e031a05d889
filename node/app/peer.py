"""The per-link driver (L2): moves frames between a Link and a Session, and runs sync over it.

Theory of operation
-------------------
One LinkDriver runs per link, inside the daemon's TaskGroup (or alone in `waystation peer
sync`). It owns a sans-IO Session (node.proto) and, per sync pass, a Reconciler (node.sync), and is
the only code that joins the two (DESIGN.md §5). Its loop: wait for a frame or an internal wake-up
(an ack became durable, another link stored entries this peer may want) with the session's timer
as deadline; feed the session; act on its events; write what the session queued.

Logs in a session. Each side declares the logs it wants in Interest messages; a log is named by a
`ref` chosen by whoever declared it first (initiator even, responder odd). The other side accepts
by echoing the same ref and address. A log is *agreed* once both sides declared it. The responder
answers every Interest with one (possibly empty), so the initiator knows it was heard.

Passes. Reconciliation runs in passes started by the initiator. The first Reconcile message of a
pass (ref = pass number) names the agreed logs it covers, in order; both sides build a Reconciler
over those logs' KeySets. Each side learns which entries the other lacks and pushes them (Entries,
within the session's credit). A pass is settled when its reconciler is done, everything sent was
acknowledged and everything announced has arrived; the initiator then starts another pass, until
one finds every log in sync (normally the second). Entries stored from one link are also pushed at
once to every other open link that agreed on that log (Hub), so an online member gets a message as
soon as the relay has it.

Pushing what was just stored. The Hub hands the other links the entries themselves with the wire
items they arrived as (ForwardCache, bounded node-wide, empty when no push is pending), so a push
reads nothing back from the store: the received item is forwarded as is when it was compacted
against the same log header we declared on the outgoing link (the receiver rebuilds it with ours),
and re-encoded from the entry otherwise. Entries not handed that way (reconciliation results, or
the cache was full) are read from the store, as many as the send credit will take.

Passes after pushes. After a pass found every log in sync, a change to our KeySets normally means
another pass. But an entry this link delivered to us (stored), or that we pushed on this link and
the peer acknowledged, is on both sides already: each log keeps the (count, ID sum) of its KeySet
at the pass's OPEN plus those entries, and another pass starts only when a KeySet differs from
that sum (anything stored locally, stored from another link and not pushed here, evicted or
expired). So an online member's long-lived session costs no pass per delivered message.

Hostile peers. Anything wrong a peer does (bad frame, bad message, an entry that does not verify,
an entry for a log it never declared, a forged log offer) ends this link with Bye and a reason,
is counted in the node's stats, and touches nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.app.context import Fresh, NodeContext
from node.errors import (
    BYE_REASONS,
    LOCAL_ENDINGS,
    REASON_QUOTA,
    REASON_TIMEOUT,
    REASON_UNEXPECTED,
    IntegrityError,
    LinkError,
    RemoteProtocolError,
    StoreError,
)
from node.link import Link
from node.proto.messages import INTEREST, MAX_INTEREST_LOGS, MAX_SIZE, ROLE_RELAY, LogDeclaration
from node.proto.session import (
    AckReceived,
    EntriesReceived,
    HandshakeCompleted,
    InterestReceived,
    PairingReceived,
    ReconcileReceived,
    Session,
    SessionClosed,
    SessionOpened,
)
from node.sync.keyset import MASK256, id_int
from node.sync.reconcile import Reconciler
from node.sync.store import REFUSED, REFUSED_DISK_FULL, REFUSED_OVER_QUOTA, STORED
from node.sync.wire import decode_item, encode_item, forward_item, parse_log_header
from node.varint import decode_uvarint, encode_uvarint

if TYPE_CHECKING:
    from node.sync.keyset import Key

log = logging.getLogger("waystation.link")

PASS_START = 0x01  # Reconcile data flag: this message starts a pass and names its logs
PASS_SENT = 0x02  # Reconcile data flag (responder only): every entry this pass decided was sent
MAX_PASSES = 8  # passes in a row that found differences and moved nothing: "unsettled"
RECONCILE_FRAME = 16000  # most bytes per reconciler frame, inside a Reconcile message
# (the link's frame hint may make ours smaller: Session.reconcile_room; we accept this many)
SEND_BATCH = 64  # entries fetched from the store at a time for one log
MAX_OUTBOUND = 100_000  # keys queued per link; beyond that the next pass finds the rest
FRAME_SLOTS = 8  # frames read ahead of the driver


# Bye reasons (docs/protocol.md) and local endings; anything else a peer writes in its Bye is
# counted as "other", so a peer cannot create counter names in the operator's status file.
KNOWN_REASONS = frozenset(BYE_REASONS + LOCAL_ENDINGS)


def _interest_batches(
    declarations: list[LogDeclaration], target: int = MAX_SIZE[INTEREST]
) -> list[list[LogDeclaration]]:
    """Cut declarations into Interest messages within the message's size and count limits, and
    near `target` bytes each (the link's message target; one declaration per message at least).
    """
    limit = min(MAX_SIZE[INTEREST], target) - 4  # type byte and a count of up to 3 bytes
    batches: list[list[LogDeclaration]] = []
    batch: list[LogDeclaration] = []
    size = 0
    for decl in declarations:
        address = decl.address.encode()
        cost = (
            len(encode_uvarint(decl.ref))
            + len(encode_uvarint(len(address)))
            + len(address)
            + len(encode_uvarint(len(decl.header)))
            + len(decl.header)
        )
        if batch and (size + cost > limit or len(batch) >= MAX_INTEREST_LOGS):
            batches.append(batch)
            batch, size = [], 0
        batch.append(decl)
        size += cost
    if batch:
        batches.append(batch)
    return batches


def counter_reason(reason: str) -> str:
    """The counter suffix for an ending reason: itself if known, else "other"."""
    return reason if reason in KNOWN_REASONS else "other"


@dataclass
class SessionLog:
    """One log as this session knows it."""

    ref: int
    address: str
    sign_pub: bytes
    ours: bool = False  # we declared (or echoed) it
    theirs: bool = False  # the peer declared (or echoed) it
    peer_identity_signature: bytes = b""
    our_identity_signature: bytes = b""
    outbound: deque[Key] = field(default_factory=deque)
    queued: set[Key] = field(default_factory=set)
    held: set[Key] = field(default_factory=set)  # queued keys we hold a ForwardCache record of
    handed: set[Key] = field(default_factory=set)  # queued keys the Hub handed us since OPEN
    in_flight: deque[tuple[Key, bool]] = field(default_factory=deque)  # (key, was handed), unacked
    item_bytes: int = 0  # size of the items last sent, to fetch only what the credit takes
    opened: tuple[int, int] | None = None  # (count, ID sum) of our KeySet at this pass's OPEN
    moved_count: int = 0  # entries added to our KeySet since OPEN that the peer holds
    moved_sum: int = 0  # their ID sum

    @property
    def agreed(self) -> bool:
        return self.ours and self.theirs

    def peer_holds(self, key: Key) -> None:
        """`key` entered our KeySet since OPEN and the peer has it (it sent it, or acked it)."""
        self.moved_count += 1
        self.moved_sum += id_int(key[1])


@dataclass
class SyncOutcome:
    """How a link ended, for the caller and the logs."""

    reason: str = ""
    text: str = ""
    by_peer: bool = False
    in_sync: bool = False
    passes: int = 0
    entries_sent: int = 0
    entries_received: int = 0
    entries_refused: int = 0
    remote_static: bytes = b""


class LinkDriver:
    """Drive one link.

    Args:
        ctx: the node's shared context.
        link: the framed transport.
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
        self.until_synced = until_synced
        self.progress = progress
        self.outcome = SyncOutcome()
        now = ctx.clock()
        self.session = Session(
            ctx.suite,
            initiator,
            ctx.session_static(),
            ctx.role,
            now,
            ctx.limits,
            frame_hint=link.frame_hint,
        )
        self._logs_by_ref: dict[int, SessionLog] = {}
        self._logs_by_address: dict[str, SessionLog] = {}
        self._next_ref = 0 if initiator else 1
        self._inbox: asyncio.Queue[tuple[object, ...]] = asyncio.Queue()
        self._frame_slots = asyncio.Semaphore(FRAME_SLOTS)
        self._pass = 0
        self._unsettled_passes = 0  # passes in a row that neither matched nor moved entries
        self._pass_mark = (0, 0)  # (entries sent, entries stored) when the current pass began
        self._entries_stored = 0
        self._reconciler: Reconciler | None = None
        self._pass_logs: list[SessionLog] = []
        self._reported_send: list[int] = []
        self._pass_stored: dict[int, int] = {}  # log ref -> entries stored from the peer this pass
        self._peer_sent_all = False  # initiator: the responder said PASS_SENT for this pass
        self._sent_all_said = False  # responder: we said PASS_SENT for this pass
        self._unacked = 0
        self._pending_commits = 0
        self._heard_interest = False
        self._declared_extras = False
        self._need_pass = False
        self._stopping = False
        self._wake_queued = False
        self._heard_end = False
        self._peer_declarations = 0
        self._in_sync = asyncio.Event()  # a pass found every log in sync, or the link ended
        self._hub_token = ctx.hub.subscribe(self._on_published)

    def request_close(self, reason: str, text: str = "") -> None:
        """Ask the driver to say Bye and end (shutdown, operator action); safe from any task."""
        self._inbox.put_nowait(("close", reason, text))

    async def wait_in_sync(self) -> None:
        """Wait until a pass has found every log in sync (`outcome.in_sync`; the initiator's).

        Raises:
            LinkError: the link ended first (`outcome.reason` says why).
        """
        await self._in_sync.wait()
        if not self.outcome.in_sync:
            raise LinkError("%s: ended before in sync: %s" % (self.link.label, self.outcome.reason))

    # -- the loop ---------------------------------------------------------------------------

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
            self._lost(str(group.exceptions[0]))
        finally:
            self._in_sync.set()  # wake wait_in_sync: it raises unless in sync
            self.ctx.hub.unsubscribe(self._hub_token)
            self._release_held()
            await self.link.close()
        self.ctx.count("links.closed." + counter_reason(self.outcome.reason))
        return self.outcome

    def _release_held(self) -> None:
        cache = self.ctx.hub.cache
        for slog in self._logs_by_ref.values():
            for key in slog.held:
                cache.release(key)
            slog.held.clear()

    async def _read_frames(self) -> None:
        while True:
            await self._frame_slots.acquire()
            try:
                frame = await self.link.recv()
            except RemoteProtocolError as exc:  # framing: oversize or truncated frame
                await self._inbox.put(("bad-frame", exc))
                return
            await self._inbox.put(("frame", frame))
            if frame is None:
                return

    async def _main_loop(self) -> None:
        session = self.session
        while True:
            await self._flush()
            if session.is_finished or self._stopping:
                return
            timer = session.get_timer()
            timeout = None if timer is None else max(0.0, (timer - self.ctx.clock()) / 1000)
            try:
                item = self._inbox.get_nowait()  # the common case under load: no waiting at all
            except asyncio.QueueEmpty:
                try:
                    async with asyncio.timeout(timeout):  # no extra task, unlike wait_for
                        item = await self._inbox.get()
                except TimeoutError:
                    session.handle_timer(self.ctx.clock())
                    self._handle_events()
                    continue
            kind = item[0]
            try:
                if kind == "frame":
                    self._frame_slots.release()
                    frame = item[1]
                    if frame is None:
                        session.connection_lost(self.ctx.clock())
                    else:
                        assert isinstance(frame, bytes)
                        session.receive_frame(frame, self.ctx.clock())
                elif kind == "bad-frame":
                    exc = item[1]
                    assert isinstance(exc, RemoteProtocolError)
                    raise exc
                elif kind == "wake":
                    self._wake_queued = False
                elif kind == "close":
                    reason, text = item[1], item[2]
                    assert isinstance(reason, str) and isinstance(text, str)
                    self.outcome.reason = self.outcome.reason or reason
                    session.close(reason, text, self.ctx.clock())
                elif kind == "acked":
                    ref, count, credit, durable = item[1], item[2], item[3], item[4]
                    assert isinstance(ref, int) and isinstance(count, int)
                    assert isinstance(credit, int)
                    self._pending_commits -= 1
                    if not durable:
                        # The store rolled these entries back: never acknowledge them. The peer
                        # keeps them and sends them again at its next sync.
                        self._store_failed("relay could not store entries")
                    elif session.is_open:
                        session.send_ack(ref, count, credit, self.ctx.clock())
                self._handle_events()
                self._pump_outbound()
                self._maybe_say_sent_all()
                self._maybe_next_pass()
            except RemoteProtocolError as exc:
                self._peer_failed(exc)

    async def _flush(self) -> None:
        frames = self.session.frames_to_send()
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

    def _peer_failed(self, exc: RemoteProtocolError) -> None:
        """The peer broke a rule: say why (if the session can still speak) and stop."""
        self.ctx.count("peer_errors." + exc.reason)
        log.warning("%s: %s (%s)", self.link.label, exc.message, exc.reason)
        if not self.session.is_finished:
            self.session.close(exc.reason, exc.message[:200], self.ctx.clock())
        self.outcome.reason = exc.reason
        self.outcome.text = exc.message
        self._stopping = True

    def _over_quota(self, slog: SessionLog) -> None:
        """This log is over our quota: tell the peer once, with the numbers, by Bye "quota".

        Sent newest first (_collect_results), the entries we keep are in; the rest of this
        log would only be refused, so the link ends here (the batch is still committed)."""
        info = self.ctx.store.log_info(slog.address)
        total = info.entry_count
        if self._reconciler is not None and slog in self._pass_logs:
            expect = self._reconciler.results[self._pass_logs.index(slog)].expect
            total += max(0, expect - self._pass_stored.get(slog.ref, 0))
        quota = self.ctx.store.quota_of_log(slog.address)
        text = "relay keeps the newest %d of %d entries of log %s: quota %s" % (
            info.entry_count,
            total,
            slog.address[-24:],
            "%.3g MiB" % (quota / 1048576) if quota >= 1048576 else "%d bytes" % quota,
        )
        self.outcome.reason = self.outcome.reason or REASON_QUOTA
        self.outcome.text = self.outcome.text or text
        if not self.session.is_finished:
            self.session.close(REASON_QUOTA, text[:200], self.ctx.clock())

    def _store_failed(self, text: str) -> None:
        """Our store could not take this peer's entries: Bye "store-error", nothing more acked."""
        self.ctx.count("store.refused_links")
        self.outcome.reason = self.outcome.reason or "store-error"
        self.outcome.text = self.outcome.text or text
        if not self.session.is_finished:
            self.session.close("store-error", text[:200], self.ctx.clock())

    def _lost(self, text: str) -> None:
        if not self.session.is_finished:
            self.session.connection_lost(self.ctx.clock())
        if not self.outcome.reason:
            self.outcome.reason = "lost"
            self.outcome.text = text

    # -- session events ---------------------------------------------------------------------

    def _handle_events(self) -> None:
        while (event := self.session.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self.outcome.remote_static = event.remote_static
            elif isinstance(event, SessionOpened):
                self.ctx.count("links.opened")
                if self.initiator:
                    self._declare(self._initial_declarations(), end=True)
            elif isinstance(event, InterestReceived):
                self._on_interest(event.logs)
            elif isinstance(event, ReconcileReceived):
                self._on_reconcile(event.ref, event.data)
            elif isinstance(event, EntriesReceived):
                self._on_entries(event.ref, event.items, event.size)
            elif isinstance(event, AckReceived):
                self._unacked = max(0, self._unacked - event.stored)
                self._on_ack(event.ref, event.stored)
            elif isinstance(event, PairingReceived):
                raise RemoteProtocolError("pairing is not offered on this link", REASON_UNEXPECTED)
            elif isinstance(event, SessionClosed) and (not self.outcome.reason or event.by_peer):
                self.outcome.reason = event.reason
                self.outcome.text = event.text
                self.outcome.by_peer = event.by_peer

    # -- interest ---------------------------------------------------------------------------

    def _initial_declarations(self) -> list[str]:
        policy = self.ctx.policy
        addresses = list(policy.own)
        if policy.declare_all:
            addresses.extend(a for a in self.ctx.store.logs() if a not in policy.own)
        return sorted(set(addresses))

    def _declare(
        self, addresses: list[str], echo: list[SessionLog] | None = None, end: bool = False
    ) -> None:
        """Send Interest for new `addresses` and echoes of peer-declared logs.

        Interest messages are cut by encoded size. The initiator's first declarations end with
        an empty Interest (`end`); a responder always answers, with an empty Interest if it has
        nothing to say.
        """
        declarations: list[LogDeclaration] = []
        for slog in echo or []:
            header = self.ctx.header_for(slog.address)
            if header is None:
                continue
            slog.ours = True
            slog.our_identity_signature = header[33:]
            declarations.append(LogDeclaration(slog.ref, slog.address, header))
        for address in addresses:
            if address in self._logs_by_address:
                continue
            header = self.ctx.header_for(address)
            if header is None:
                continue
            slog = SessionLog(self._next_ref, address, header[1:33], ours=True)
            slog.our_identity_signature = header[33:]
            self._next_ref += 2
            self._add_log(slog)
            declarations.append(LogDeclaration(slog.ref, address, header))
        now = self.ctx.clock()
        batches = _interest_batches(declarations, self.session.message_target)
        for batch in batches:
            self.session.send_interest(batch, now)
        if self.initiator and end:
            # An empty Interest ends our initial declarations: only then does a responder relay
            # declare its own logs, so the two lists cannot cross under two refs.
            self.session.send_interest([], now)
        elif not batches:
            self.session.send_interest([], now)

    def _add_log(self, slog: SessionLog) -> None:
        self._logs_by_ref[slog.ref] = slog
        self._logs_by_address[slog.address] = slog

    def _on_interest(self, declarations: list[LogDeclaration]) -> None:
        # The initiator's empty Interest ends its initial declarations (see _declare).
        end_of_initial = not declarations and not self.initiator and not self._heard_end
        if end_of_initial:
            self._heard_end = True
        heard_before = self._heard_interest
        self._heard_interest = True
        agreed_now = 0
        echoes: list[SessionLog] = []
        for decl in declarations:
            sign_pub, id_sig = parse_log_header(decl.header)
            slog = self._logs_by_ref.get(decl.ref)
            if slog is not None:
                if slog.address != decl.address or slog.sign_pub != sign_pub:
                    raise RemoteProtocolError(
                        "log ref %d declared again for another log" % decl.ref, REASON_UNEXPECTED
                    )
                if not slog.theirs:
                    agreed_now += 1
                slog.theirs = True
                slog.peer_identity_signature = id_sig
                continue
            if decl.ref % 2 == self._next_ref % 2:
                raise RemoteProtocolError("log ref %d has our parity" % decl.ref, REASON_UNEXPECTED)
            if decl.address in self._logs_by_address:
                raise RemoteProtocolError(
                    "log %s declared under two refs" % decl.address[:80], REASON_UNEXPECTED
                )
            self._peer_declarations += 1
            if self._peer_declarations > self.ctx.policy.max_session_logs:
                raise RemoteProtocolError(
                    "more than %d logs declared in one session" % self.ctx.policy.max_session_logs,
                    "too-large",
                )
            refusal = self.ctx.accept_log(decl.address, sign_pub)
            if refusal is not None:  # not kept: entries for it will be refused as undeclared
                self.ctx.count("logs.refused." + refusal)
                continue
            slog = SessionLog(decl.ref, decl.address, sign_pub, theirs=True)
            slog.peer_identity_signature = id_sig
            self._add_log(slog)
            echoes.append(slog)
            agreed_now += 1
        extras: list[str] = []
        if end_of_initial:
            peer = self.session.peer_hello
            if self.ctx.policy.declare_all and peer is not None and peer.role == ROLE_RELAY:
                extras = self._initial_declarations()
        if not self.initiator or echoes or extras:
            self._declare(extras, echoes)
        if self.initiator and (agreed_now or not heard_before):
            self._need_pass = True  # new agreed logs (or the first answer): reconcile them

    # -- reconciliation ---------------------------------------------------------------------

    def _agreed_logs(self) -> list[SessionLog]:
        return sorted((s for s in self._logs_by_ref.values() if s.agreed), key=lambda s: s.address)

    def _pass_settled(self) -> bool:
        if self._reconciler is not None and not self._reconciler.done:
            return False
        if self._unacked or self._pending_commits:
            return False
        if any(s.outbound for s in self._logs_by_ref.values()):
            return False
        # Entries the peer decided to send may still be on their way until it says so. (Its
        # announced count is not enough: an entry evicted meanwhile is never sent.)
        return self._peer_sent_all or not self._pass_logs

    def _maybe_next_pass(self) -> None:
        if not self.initiator or not self.session.is_open or not self._heard_interest:
            return
        if not self._pass_settled():
            return
        reconciler = self._reconciler
        in_sync = reconciler is not None and self._still_in_sync(reconciler)
        if in_sync and not self._need_pass:
            self.outcome.in_sync = True
            self._in_sync.set()
            if self.until_synced:
                self.session.close("ok", "in sync", self.ctx.clock())
            return
        if reconciler is not None and not in_sync:
            self._need_pass = True
        if not self._need_pass:
            return
        if reconciler is not None and (
            all(r.in_sync for r in reconciler.results) or self._progress() != self._pass_mark
        ):
            # That pass matched or moved entries: another one is for entries stored or pushed
            # since (an online member's long-lived session), not a failure to converge.
            self._unsettled_passes = 0
        if self._unsettled_passes >= MAX_PASSES:
            self.session.close(
                "unsettled", "no agreement after %d passes" % MAX_PASSES, self.ctx.clock()
            )
            return
        self._start_pass()

    def _still_in_sync(self, reconciler: Reconciler) -> bool:
        """The last pass found every log in sync, and since its OPEN our KeySets changed only by
        entries the peer holds (it sent them, or acknowledged them from us)."""
        if not reconciler.done:
            return False
        for slog, result in zip(self._pass_logs, reconciler.results, strict=True):
            if not result.in_sync or slog.opened is None:
                return False
            count, total = slog.opened
            keyset = self.ctx.store.keyset(slog.address)
            if len(keyset) != count + slog.moved_count:
                return False
            if keyset.sum_between(0, len(keyset)) != (total + slog.moved_sum) & MASK256:
                return False
        return True

    def _start_pass(self) -> None:
        self._need_pass = False
        self._pass += 1
        self._unsettled_passes += 1
        self._pass_mark = self._progress()
        self.outcome.passes = self._pass
        logs = self._agreed_logs()
        for slog in logs:
            keyset = self.ctx.store.keyset(slog.address)
            slog.opened = (len(keyset), keyset.sum_between(0, len(keyset)))
            slog.moved_count = slog.moved_sum = 0
            slog.handed.clear()
        self._begin_pass(logs, initiator=True)
        assert self._reconciler is not None
        frames = self._reconciler.start(self.ctx.clock())
        header = bytes((PASS_START,)) + encode_uvarint(len(logs))
        header += b"".join(encode_uvarint(s.ref) for s in logs)
        now = self.ctx.clock()
        # The log list travels alone (LogPolicy.max_session_logs refs of <= 3 bytes fit one
        # Reconcile message), then the reconciler's frames, each in its own message.
        self.session.send_reconcile(self._pass, header, now)
        for frame in frames:
            self.session.send_reconcile(self._pass, b"\x00" + frame, now)
        self._collect_results()
        if not logs:  # a pass over no logs is settled at once; no reply will come to wake us
            self._maybe_next_pass()

    def _progress(self) -> tuple[int, int]:
        return (self.outcome.entries_sent, self._entries_stored)

    def _begin_pass(self, logs: list[SessionLog], initiator: bool) -> None:
        keysets = [self.ctx.store.keyset(s.address) for s in logs]
        self._reconciler = Reconciler(
            keysets,
            initiator,
            max_frame=min(RECONCILE_FRAME, self.session.reconcile_room - 1),  # 1: the flags byte
            max_receive_frame=RECONCILE_FRAME,
        )
        self._pass_logs = logs
        self._reported_send = [0] * len(logs)
        self._pass_stored = {}
        self._peer_sent_all = False
        self._sent_all_said = False

    def _on_reconcile(self, number: int, data: bytes) -> None:
        if not data:
            raise RemoteProtocolError("empty reconcile message")
        flags = data[0]
        pos = 1
        if flags == PASS_SENT:
            if not self.initiator or number != self._pass or len(data) != 1:
                raise RemoteProtocolError(
                    "reconcile: unexpected end of pass %d" % number, REASON_UNEXPECTED
                )
            self._peer_sent_all = True
            return
        if flags & ~PASS_START:
            raise RemoteProtocolError("reconcile: unknown flags 0x%02x" % flags)
        if flags & PASS_START:
            if self.initiator or number != self._pass + 1:
                raise RemoteProtocolError(
                    "reconcile: unexpected pass %d" % number, REASON_UNEXPECTED
                )
            if self._reconciler is not None and not self._reconciler.done:
                raise RemoteProtocolError(
                    "reconcile: new pass before the last ended", REASON_UNEXPECTED
                )
            count, pos = decode_uvarint(data, pos)
            if count > len(self._logs_by_ref):
                raise RemoteProtocolError("reconcile: pass names %d logs" % count)
            logs = []
            for _ in range(count):
                ref, pos = decode_uvarint(data, pos)
                slog = self._logs_by_ref.get(ref)
                if slog is None or not slog.agreed:
                    raise RemoteProtocolError(
                        "reconcile: log ref %d is not agreed" % ref, REASON_UNEXPECTED
                    )
                logs.append(slog)
            if pos != len(data):
                raise RemoteProtocolError("reconcile: bytes after the log list of a pass")
            self._pass = number
            if not logs:  # neither side carries a log yet: nothing to reconcile
                self._reconciler = None
                self._pass_logs = []
                return
            self._begin_pass(logs, initiator=False)
            return
        if number != self._pass or self._reconciler is None:
            raise RemoteProtocolError("reconcile: message for pass %d" % number, REASON_UNEXPECTED)
        reconciler = self._reconciler
        assert reconciler is not None
        replies = reconciler.receive(data[pos:], self.ctx.clock())
        now = self.ctx.clock()
        for frame in replies:
            self.session.send_reconcile(self._pass, b"\x00" + frame, now)
        self._collect_results()

    def _collect_results(self) -> None:
        reconciler = self._reconciler
        if reconciler is None:
            return
        for index, result in enumerate(reconciler.results):
            new = result.send[self._reported_send[index] :]
            if new:
                self._reported_send[index] = len(result.send)
                # Newest first: a relay short of quota keeps the newest and refuses the rest
                # unwritten (docs/store.md, "A log larger than its quota").
                self._queue_keys(self._pass_logs[index], sorted(new, reverse=True))

    def _maybe_say_sent_all(self) -> None:
        """Responder: once this pass's reconciler is done and its entries are all sent, say so."""
        reconciler = self._reconciler
        if self.initiator or self._sent_all_said or reconciler is None or not reconciler.done:
            return
        if any(s.outbound for s in self._pass_logs) or not self.session.is_open:
            return
        self._sent_all_said = True
        self.session.send_reconcile(self._pass, bytes((PASS_SENT,)), self.ctx.clock())

    # -- entries ----------------------------------------------------------------------------

    def _queue_keys(self, slog: SessionLog, keys: list[Key]) -> list[Key]:
        """Queue `keys` for sending; returns those that were not queued already."""
        added: list[Key] = []
        for key in keys:
            if key in slog.queued:
                continue
            if len(slog.queued) >= MAX_OUTBOUND:
                self._need_pass = True  # too much to track: a later pass finds the rest
                break
            slog.queued.add(key)
            slog.outbound.append(key)
            added.append(key)
        return added

    def _pump_outbound(self) -> None:
        session = self.session
        if not session.is_open:
            return
        cache = self.ctx.hub.cache
        for slog in list(self._logs_by_ref.values()):
            while slog.outbound and session.send_room > 0:
                count = min(SEND_BATCH, len(slog.outbound))
                if slog.item_bytes:  # read no more than the credit can take
                    if session.send_room < slog.item_bytes and self._unacked:
                        break  # likely too little to send one; the acks in flight bring more
                    count = min(count, session.send_room // slog.item_bytes + 1)
                keys = [slog.outbound[i] for i in range(count)]
                present = self._items_for(slog, keys)
                items = [present[key] for key in keys if key in present]
                sent = session.send_entries(slog.ref, items, self.ctx.clock()) if items else 0
                if sent:
                    slog.item_bytes = max(1, sum(len(item) for item in items[:sent]) // sent)
                # Settle keys from the front: the first `sent` stored ones, and any key no
                # longer stored (evicted or expired meanwhile).
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
                        cache.release(key)
                self._unacked += sent
                self.outcome.entries_sent += sent
                self.ctx.count("entries.sent", sent)
                if sent < len(items):
                    break
        if self.progress is not None:
            self.progress(self.outcome)

    def _items_for(self, slog: SessionLog, keys: list[Key]) -> dict[Key, bytes]:
        """The wire items of those `keys` still stored: handed ones from the ForwardCache, the
        rest read from the store."""
        cache = self.ctx.hub.cache
        keyset = self.ctx.store.keyset(slog.address)
        found: dict[Key, bytes] = {}
        lookup: list[Key] = []
        for key in keys:
            fresh = cache.get(key) if key in slog.held else None
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
            for entry in self.ctx.store.entries_by_keys(slog.address, lookup):
                found[(entry.clock_time, entry.cid.digest)] = encode_item(
                    entry, slog.sign_pub, slog.our_identity_signature
                )
        return found

    def _on_ack(self, ref: int, stored: int) -> None:
        """The peer acknowledged the next `stored` entries we sent on log `ref`."""
        slog = self._logs_by_ref.get(ref)
        if slog is None:
            return
        for _ in range(min(stored, len(slog.in_flight))):
            key, handed = slog.in_flight.popleft()
            if handed:  # stored here after OPEN, and now the peer has it too
                slog.peer_holds(key)

    def _on_entries(self, ref: int, items: list[bytes], size: int) -> None:
        slog = self._logs_by_ref.get(ref)
        if slog is None or not slog.agreed:
            raise RemoteProtocolError(
                "entries for log ref %d it did not declare" % ref, REASON_UNEXPECTED
            )
        entries = [
            decode_item(
                item,
                slog.address,
                slog.sign_pub,
                slog.peer_identity_signature,
                self.ctx.store.limits.max_entry_bytes,
            )
            for item in items
        ]
        try:
            results = self.ctx.store.put_entries(entries, self.ctx.wall_clock())
        except StoreError as exc:  # rolled back, nothing of it acknowledged (Committer)
            log.error("%s: %s", self.link.label, exc)
            self._store_failed("relay could not store entries")
            return
        stored_keys: list[Key] = []
        fresh: list[Fresh] = []
        header = slog.sign_pub + slog.peer_identity_signature
        forgery: IntegrityError | None = None
        for item, entry, result in zip(items, entries, results, strict=True):
            if result.status == REFUSED:
                self.outcome.entries_refused += 1
                self.ctx.count("entries.refused." + result.reason)
                if result.reason == "integrity" and forgery is None:
                    forgery = IntegrityError("entry %s refused: %s" % (result.cid, result.detail))
            elif result.status == STORED:
                key = (entry.clock_time, entry.cid.digest)
                stored_keys.append(key)
                fresh.append(Fresh(entry, item, header))
                slog.peer_holds(key)
                if not self.ctx.identity_signatures.get(slog.address):
                    self.ctx.identity_signatures[slog.address] = entry.identity.signature_id
        self.ctx.count("entries.received", len(items))
        self.outcome.entries_received += len(items)
        if stored_keys:  # genuine entries beside a forgery are kept: count and announce them
            self._entries_stored += len(stored_keys)
            self.ctx.count("entries.stored", len(stored_keys))
            self.ctx.hub.published(slog.address, stored_keys, self, fresh)
        if forgery is not None:
            raise forgery
        disk_full = next((r.detail for r in results if r.reason == REFUSED_DISK_FULL), "")
        if disk_full:  # the stored ones are committed (nudged here) but not acknowledged
            self._store_failed(disk_full)
            self.ctx.committer.after_commit(lambda durable: None)
            return
        self._pass_stored[ref] = self._pass_stored.get(ref, 0) + len(stored_keys)
        if any(r.reason == REFUSED_OVER_QUOTA for r in results):
            self._over_quota(slog)
        self._pending_commits += 1
        count = len(items)
        self.ctx.committer.after_commit(
            lambda durable: self._inbox.put_nowait(("acked", ref, count, size, durable))
        )
        if self.progress is not None:
            self.progress(self.outcome)

    def _on_published(self, address: str, keys: list[Key], source: object) -> None:
        if source is self:
            return
        slog = self._logs_by_address.get(address)
        if slog is None or not slog.agreed:
            return
        cache = self.ctx.hub.cache
        for key in self._queue_keys(slog, keys):
            slog.handed.add(key)
            if cache.hold(key):
                slog.held.add(key)
        if not self._wake_queued:  # one wake-up at a time, however many publications
            self._wake_queued = True
            self._inbox.put_nowait(("wake",))
