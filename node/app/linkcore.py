"""One link's protocol logic without I/O (sans-IO, L2): a Session and the sync that runs over it.

Theory of operation
-------------------
`LinkCore` is the h11-style half of the per-link driver (node.app.peer is the asyncio half). It
owns a sans-IO Session (node.proto) and joins it to sync (node.sync), which is the one place the
two meet (DESIGN.md §5). The caller feeds it inputs, each with the clock (`handle`): a frame (or
the end of the stream), a framing error, the session timer, a wake-up (the Hub queued entries), a
request to close, a commit that became durable (or failed). After each input it takes the outputs:
`frames_to_send()`, `take_commits()` (batches to acknowledge once durable: the caller asks the
node's Committer and feeds back `Committed`), `get_timer()`, `finished`, and `outcome`. Pushes
from other links arrive through `offer` (the Hub's listener), followed by a `Wake`.

Each input runs the same steps: feed the session; act on its events (LogTable for Interest,
Passes for Reconcile, `_on_entries` for Entries, Outbound for Acks); send what the session's send
room allows (Outbound.pump); let the responder say PASS_SENT; let the initiator decide about the
next pass. The link's `frame_hint` goes to the Session, which sizes messages from it. The parts:

    node.app.interest   LogTable     logs by ref, who declared what, Interest messages
    node.app.passes     Passes       pass numbering, the Reconciler, settled / in sync / next pass
    node.app.summary    (functions)  the Summary: a paired member's offer, the answer, pass 1 in it
    node.app.outbound   Outbound     send queues, credit, ForwardCache items, acknowledgements
    node.app.forward    Hub          fan-out of stored entries to the other links (ForwardCache)

Entries received are decoded against the log header the peer declared, verified and stored by
the node's store, and its typed per-entry results (PutResult) become one `Ingested`: what was
stored (published to the Hub at once, so online members get it), what was refused, and the
store's own IntegrityError for a forgery, which ends the link. Genuine entries beside a forgery
are kept. What the peer may be acknowledged waits for durability (`take_commits`, which notes the
store's generation right after the put). A store failure (StoreError, disk full) ends the link
with Bye "store-error" and acknowledges nothing of that batch; a log over its quota ends it with
Bye "quota", once, with the numbers (docs/store.md).

Hostile peers: anything wrong a peer does (bad frame, bad message, an entry that does not verify,
entries for a log it never declared, a forged log offer) raises RemoteProtocolError inside a step;
`handle` catches it, says Bye with its reason, counts it, and the link ends; nothing else is
touched. `LinkCore` imports no asyncio and reads no clock: `now` is an argument, and the store's
wall clock is the context's (`NodeContext.wall_clock`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.app.forward import Fresh
from node.app.interest import LogTable
from node.app.outbound import Outbound
from node.app.passes import IN_SYNC, MAX_PASSES, PASS_SENT, START, UNSETTLED, Passes
from node.app.summary import on_summary, open_with_summary
from node.errors import (
    ENDING_LOST,
    REASON_INTEGRITY,
    REASON_OK,
    REASON_QUOTA,
    REASON_STORE_ERROR,
    REASON_UNEXPECTED,
    REASON_UNSETTLED,
    IntegrityError,
    RemoteProtocolError,
    StoreError,
)
from node.proto.messages import ROLE_RELAY
from node.proto.pairing import key_fingerprint
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
    SummaryReceived,
)
from node.sync.store import REFUSED, REFUSED_DISK_FULL, REFUSED_OVER_QUOTA, STORED
from node.sync.wire import decode_item

if TYPE_CHECKING:
    from node.app.context import NodeContext
    from node.app.interest import SessionLog
    from node.proto.messages import LogDeclaration
    from node.store.devices import Device
    from node.sync.keyset import Key, KeySet

log = logging.getLogger("waystation.link")

RECONCILE_FRAME = 16000  # most bytes per reconciler frame, inside a Reconcile message
# (the link's frame hint may make ours smaller: Session.reconcile_room; we accept this many)


# -- inputs (what happened) and outputs ----------------------------------------------------------


@dataclass(slots=True)
class FrameIn:
    """A whole frame from the link, or None once the peer closed it."""

    frame: bytes | None


@dataclass(slots=True)
class FramingError:
    """The link's framing broke (oversize or truncated frame)."""

    error: RemoteProtocolError


@dataclass(slots=True)
class Tick:
    """The session's timer (`get_timer`) expired."""


@dataclass(slots=True)
class Wake:
    """Entries were offered (`offer`): send what the credit allows."""


@dataclass(slots=True)
class CloseRequest:
    """Say Bye with `reason` and end (shutdown, operator action)."""

    reason: str
    text: str = ""


@dataclass(slots=True)
class Committed:
    """A commit requested by `take_commits` ended: `durable` False means rolled back."""

    ref: int
    count: int
    credit: int
    durable: bool


Input = FrameIn | FramingError | Tick | Wake | CloseRequest | Committed


@dataclass(slots=True)
class CommitRequest:
    """Acknowledge `count` entries (and `credit` bytes) on log `ref` once they are durable.

    `generation` is the store's right after the put: a rollback since then (another link's put
    failed) makes the batch not durable, whenever the shell hands it to the Committer. With
    `acknowledge` False the commit is only asked for (what was stored becomes durable) and
    nothing is fed back: the link is ending without acknowledging that batch.
    """

    ref: int
    count: int
    credit: int
    generation: int  # the store's generation right after the put (Committer.after_commit)
    acknowledge: bool = True


@dataclass
class Ingested:
    """The store's answer to one Entries message, typed (node.sync.store.PutResult per entry).

    Attributes:
        stored: keys of the entries newly stored, in order.
        fresh: those entries with the wire items they arrived as (for the ForwardCache).
        refused: refusal reasons, one per refused entry (counted in the node's stats).
        forgery: the store's IntegrityError for the first entry that failed verification.
        disk_full: the store's words if it refused an entry for lack of disk ("" otherwise).
        over_quota: some entry was refused because its log is over its quota.
    """

    stored: list[Key] = field(default_factory=list)
    fresh: list[Fresh] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    forgery: IntegrityError | None = None
    disk_full: str = ""
    over_quota: bool = False


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
    logs_declared: int = 0  # logs the peer declared (its activity, beside entries moved)
    remote_static: bytes = b""


class LinkCore:
    """The protocol logic of one link.

    Args:
        ctx: the node's shared context.
        initiator: True on the side that opened the link.
        until_synced: close with Bye "ok" once a pass finds every log in sync and nothing is in
            flight. Otherwise stay open for pushes.
        frame_hint: the largest frame the link carries well (the session sizes its messages, and
            so our reconcile frames and Interest batches, and its bytes in flight from it).
        now: the clock (monotonic ms).
        label: the link's label, for log lines.
    """

    def __init__(
        self,
        ctx: NodeContext,
        initiator: bool,
        until_synced: bool,
        frame_hint: int,
        now: int,
        label: str = "",
    ) -> None:
        self.ctx = ctx
        self.label = label
        self.initiator = initiator
        self.until_synced = until_synced
        self.outcome = SyncOutcome()
        session = Session(
            ctx.suite,
            initiator,
            ctx.session_static(),
            ctx.role,
            now,
            ctx.limits,
            frame_hint=frame_hint,
        )
        self.session = session
        self.logs = LogTable(ctx, initiator, session.message_target)
        # Our reconciler frames fit one Reconcile message of the link's size (1: the flags
        # byte); we accept the largest any peer may send.
        reconcile_frame = min(RECONCILE_FRAME, session.reconcile_room - 1)
        self.passes = Passes(initiator, reconcile_frame, RECONCILE_FRAME)
        self.outbound = Outbound(ctx.store, ctx.hub.cache)
        self.stopping = False  # a peer's error ended the link: say nothing more
        self._commits: list[CommitRequest] = []
        self._acks: list[Committed] = []
        self._pending_commits = 0
        self._entries_stored = 0
        self.device: Device | None = None  # the paired device or relay at the other end

    @property
    def finished(self) -> bool:
        """Nothing more to do but flush the last frames and close the link."""
        return self.session.is_finished or self.stopping

    def frames_to_send(self) -> list[bytes]:
        """Frames to write on the link, in order (takes them)."""
        return self.session.frames_to_send()

    def get_timer(self) -> int | None:
        """When (monotonic ms) to feed `Tick` if nothing else arrives first."""
        return self.session.get_timer()

    def take_commits(self) -> list[CommitRequest]:
        """Batches stored since the last call, to acknowledge once durable (feed `Committed`)."""
        commits = self._commits
        if commits:
            self._commits = []
        return commits

    # -- inputs -----------------------------------------------------------------------------

    def handle(self, event: Input, now: int) -> None:
        """Take one input; never raises for anything the peer does."""
        session = self.session
        try:
            if isinstance(event, FrameIn):  # the common cases first
                if event.frame is None:
                    session.connection_lost(now)
                else:
                    session.receive_frame(event.frame, now)
            elif isinstance(event, Committed):
                self._committed(event, now)
            elif isinstance(event, Wake):
                pass  # offered entries wait in Outbound: the steps below send them
            elif isinstance(event, Tick):
                session.handle_timer(now)
                self._handle_events(now)
                return
            elif isinstance(event, FramingError):
                raise event.error
            else:
                self.outcome.reason = self.outcome.reason or event.reason
                session.close(event.reason, event.text, now)
            self._handle_events(now)
            if session.is_open:
                sent = self.outbound.pump(session, list(self.logs.by_ref.values()), now)
                if sent:
                    self.outcome.entries_sent += sent
                    self.ctx.count("entries.sent", sent)
            if not self.initiator:
                self._maybe_say_sent_all(now)
            else:
                self._maybe_next_pass(now)
            # acks last: none after our Bye "ok" in this step (the session is over; in sync)
            for ack in self._acks if session.is_open else ():
                session.send_ack(ack.ref, ack.count, ack.credit, now)
            self._acks.clear()
        except RemoteProtocolError as exc:
            self._peer_failed(exc, now)

    def lost(self, text: str, now: int) -> None:
        """The transport failed (LinkError): the session ends without a Bye."""
        if not self.session.is_finished:
            self.session.connection_lost(now)
        if not self.outcome.reason:
            self.outcome.reason = ENDING_LOST
            self.outcome.text = text

    def offer(self, address: str, keys: list[Key]) -> bool:
        """Another link stored `keys` of `address`: queue them if this link agreed on the log.

        Returns:
            True if the log is agreed here (feed `Wake` so they are sent).
        """
        slog = self.logs.by_address.get(address)
        if slog is None or not slog.agreed:
            return False
        if not self.outbound.offer(slog, keys):
            self.passes.need_pass = True  # too much to track: a later pass finds the rest
        return True

    def release(self) -> None:
        """Give back the ForwardCache holds this link still has, end a pairing exchange it left
        unfinished (call once it ended)."""
        if self.ctx.pairing is not None:
            self.ctx.pairing.link_ended(self)
        self.outbound.release(self.logs.by_ref.values())

    def _committed(self, event: Committed, now: int) -> None:
        self._pending_commits -= 1
        if not event.durable:
            # The store rolled these entries back: never acknowledge them. The peer keeps them
            # and sends them again at its next sync.
            self._store_failed("relay could not store entries", now)
        elif self.session.is_open:
            self._acks.append(event)  # sent at the end of this step

    def _store_failed(self, text: str, now: int) -> None:
        """Our store could not take this peer's entries: Bye "store-error", nothing more acked."""
        self.ctx.count("store.refused_links")
        self.outcome.reason = self.outcome.reason or REASON_STORE_ERROR
        self.outcome.text = self.outcome.text or text
        if not self.session.is_finished:
            self.session.close(REASON_STORE_ERROR, text[:200], now)

    def _over_quota(self, slog: SessionLog, now: int) -> None:
        """This log is over our quota: tell the peer once, with the numbers, by Bye "quota".

        Sent newest first (Passes.results), the entries we keep are in; the rest of this log
        would only be refused, so the link ends here (the batch is still committed)."""
        info = self.ctx.store.log_info(slog.address)
        total = info.entry_count + self.passes.still_to_come(slog)
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
            self.session.close(REASON_QUOTA, text[:200], now)

    def _peer_failed(self, exc: RemoteProtocolError, now: int) -> None:
        """The peer broke a rule: say why (if the session can still speak) and stop."""
        self.ctx.count("peer_errors." + exc.reason)
        log.warning("%s: %s (%s)", self.label, exc.message, exc.reason)
        if not self.session.is_finished:
            self.session.close(exc.reason, exc.message[:200], now)
        self.outcome.reason = exc.reason
        self.outcome.text = exc.message
        self.stopping = True

    # -- session events ---------------------------------------------------------------------

    def _handle_events(self, now: int) -> None:
        session = self.session
        while (event := session.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self._on_handshake(event.remote_static, now)
            elif isinstance(event, SessionOpened):
                self.ctx.count("links.opened")
                if self.initiator and not self.logs.summarised:
                    initial = self.logs.initial_addresses(self._peer_is_relay())
                    self._send_interest(self.logs.declare(initial, end=True), now)
            elif isinstance(event, InterestReceived):
                answer = self.logs.receive(event.logs, self._peer_is_relay())
                self.outcome.logs_declared = self.logs.peer_declarations
                self._send_interest(answer.messages, now)
                if answer.reconcile:
                    self.passes.need_pass = True  # new agreed logs (or the first answer)
            elif isinstance(event, ReconcileReceived):
                replies = self.passes.receive(event.ref, event.data, self.logs.by_ref, self.keyset)
                self.send_reconcile(replies, now)
            elif isinstance(event, EntriesReceived):
                self._on_entries(event.ref, event.items, event.size, now)
            elif isinstance(event, AckReceived):
                self.outbound.acked(self.logs.by_ref.get(event.ref), event.stored)
            elif isinstance(event, SummaryReceived):
                on_summary(self, event.summary, now)
            elif isinstance(event, PairingReceived):
                if self.ctx.pairing is None:
                    raise RemoteProtocolError("pairing is not offered here", REASON_UNEXPECTED)
                self.ctx.pairing.on_pairing(self, event.step, event.data, now)
            elif isinstance(event, SessionClosed) and (not self.outcome.reason or event.by_peer):
                self.outcome.reason = event.reason
                self.outcome.text = event.text
                self.outcome.by_peer = event.by_peer

    def _on_handshake(self, remote_static: bytes, now: int) -> None:
        """Noise is up: check a member's relay pin; recognise a paired device (relays); a member
        with a stable key opens with a Summary, right behind its Hello."""
        self.outcome.remote_static = remote_static
        pin = self.ctx.pinned_fingerprint
        if pin is not None:
            seen = key_fingerprint(self.ctx.suite, remote_static)
            if seen != pin:
                raise RemoteProtocolError(
                    "the relay's key %s is not the pinned %s: refused (another relay at this"
                    " address, or someone in the middle)" % (seen, pin),
                    REASON_INTEGRITY,
                )
        if self.ctx.pairing is not None:
            self.device = self.ctx.pairing.device_of(remote_static)
            if self.device is not None and self.device.kind == "device":
                self.logs.device = self.device
                self.logs.memory = self.ctx.pairing.interests
        open_with_summary(self, now)

    def _peer_is_relay(self) -> bool:
        """Does the peer get a relay's treatment (our list of logs)? Only a trusted relay."""
        peer = self.session.peer_hello
        if peer is None or peer.role != ROLE_RELAY:
            return False
        pairing = self.ctx.pairing
        return pairing is None or pairing.trusted_relay(self.outcome.remote_static)

    def _send_interest(self, messages: list[list[LogDeclaration]], now: int) -> None:
        for declarations in messages:
            self.session.send_interest(declarations, now)

    def keyset(self, address: str) -> KeySet:
        """A log's KeySet in our store."""
        return self.ctx.store.keyset(address)

    # -- passes -----------------------------------------------------------------------------

    def send_reconcile(self, payloads: list[bytes], now: int) -> None:
        """Send a pass's Reconcile payloads, then queue the keys its reconciler found."""
        for payload in payloads:
            self.session.send_reconcile(self.passes.number, payload, now)
        for slog, keys in self.passes.results():
            if not self.outbound.queue(slog, keys)[1]:
                self.passes.need_pass = True  # too much to track: a later pass finds the rest

    def progress(self) -> tuple[int, int]:
        """(entries sent, entries stored) on this link so far."""
        return (self.outcome.entries_sent, self._entries_stored)

    def _maybe_next_pass(self, now: int) -> None:
        if not self.initiator or not self.session.is_open or not self.logs.heard_interest:
            return
        if not self.passes.settled():
            return
        outbound = self.outbound
        if outbound.unacked or self._pending_commits or outbound.pending(self.logs.by_ref.values()):
            return  # what this pass moved is still on its way
        decision = self.passes.decide(self.keyset, self.progress())
        if decision == IN_SYNC:
            self.outcome.in_sync = True
            if self.until_synced:
                self.session.close(REASON_OK, "", now)  # in sync
        elif decision == UNSETTLED:
            self.session.close(REASON_UNSETTLED, "no agreement after %d passes" % MAX_PASSES, now)
        elif decision == START:
            logs = self.logs.agreed()
            payloads = self.passes.start(logs, self.keyset, self.progress())
            self.outcome.passes = self.passes.number
            self.send_reconcile(payloads, now)
            if not logs:  # a pass over no logs is settled at once; no reply will come to wake us
                self._maybe_next_pass(now)

    def _maybe_say_sent_all(self, now: int) -> None:
        """Responder: once this pass's reconciler is done and its entries are all sent, say so."""
        passes = self.passes
        if not passes.sent_all_due() or not self.session.is_open:
            return
        if self.outbound.pending(passes.logs):
            return
        passes.said_sent_all()
        self.session.send_reconcile(passes.number, bytes((PASS_SENT,)), now)

    # -- entries ----------------------------------------------------------------------------

    def _on_entries(self, ref: int, items: list[bytes], size: int, now: int) -> None:
        slog = self.logs.by_ref.get(ref)
        if slog is None or not slog.agreed:
            raise RemoteProtocolError(
                "entries for log ref %d it did not declare" % ref, REASON_UNEXPECTED
            )
        try:
            ingested = self._ingest(slog, items)
            generation = self.ctx.store.generation  # what these entries were put under
        except StoreError as exc:  # rolled back, nothing of it acknowledged (Committer)
            log.error("%s: %s", self.label, exc)
            self._store_failed("relay could not store entries", now)
            return
        for reason in ingested.refused:
            self.ctx.count("entries.refused." + reason)
        self.outcome.entries_refused += len(ingested.refused)
        self.ctx.count("entries.received", len(items))
        self.outcome.entries_received += len(items)
        if ingested.stored:  # genuine entries beside a forgery are kept: count and announce them
            self._entries_stored += len(ingested.stored)
            self.ctx.count("entries.stored", len(ingested.stored))
            self.ctx.hub.published(slog.address, ingested.stored, self, ingested.fresh)
        if ingested.forgery is not None:
            raise ingested.forgery
        if ingested.disk_full:  # the stored ones are committed (asked for here), not acknowledged
            self._store_failed(ingested.disk_full, now)
            self._commits.append(
                CommitRequest(ref, len(items), size, generation, acknowledge=False)
            )
            return
        self.passes.note_stored(slog, len(ingested.stored))
        if ingested.over_quota:
            self._over_quota(slog, now)
        self._pending_commits += 1
        self._commits.append(CommitRequest(ref, len(items), size, generation))

    def _ingest(self, slog: SessionLog, items: list[bytes]) -> Ingested:
        """Decode, verify and store one Entries message of `slog`.

        Raises:
            RemoteProtocolError: an item does not decode (nothing of the message is stored).
            StoreError: the store failed (its open transaction is rolled back).
        """
        ctx = self.ctx
        entries = [
            decode_item(
                item,
                slog.address,
                slog.sign_pub,
                slog.peer_identity_signature,
                ctx.store.limits.max_entry_bytes,
            )
            for item in items
        ]
        results = ctx.store.put_entries(entries, ctx.wall_clock())
        header = slog.sign_pub + slog.peer_identity_signature
        ingested = Ingested()
        for item, entry, result in zip(items, entries, results, strict=True):
            if result.status == REFUSED:
                ingested.refused.append(result.reason)
                if result.reason == REFUSED_DISK_FULL and not ingested.disk_full:
                    ingested.disk_full = result.detail
                ingested.over_quota = ingested.over_quota or result.reason == REFUSED_OVER_QUOTA
                if isinstance(result.error, IntegrityError) and ingested.forgery is None:
                    ingested.forgery = result.error  # the verifier's own error, not a copy
            elif result.status == STORED:
                key = (entry.clock_time, entry.cid.digest)
                ingested.stored.append(key)
                ingested.fresh.append(Fresh(entry, item, header))
                slog.peer_holds(key)
                if not ctx.identity_signatures.get(slog.address):
                    ctx.identity_signatures[slog.address] = entry.identity.signature_id
        return ingested
