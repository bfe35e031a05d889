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
from typing import Protocol

from node.app.context import Key, NodeContext
from node.errors import (
    REASON_TIMEOUT,
    REASON_UNEXPECTED,
    IntegrityError,
    LinkError,
    RemoteProtocolError,
)
from node.proto.messages import ROLE_RELAY, LogDeclaration
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
from node.sync.reconcile import Reconciler
from node.sync.store import REFUSED, STORED
from node.sync.wire import decode_item, encode_item, parse_log_header
from node.varint import decode_uvarint, encode_uvarint

log = logging.getLogger("waystation.link")

PASS_START = 0x01  # Reconcile data flag: this message starts a pass and names its logs
PASS_SENT = 0x02  # Reconcile data flag (responder only): every entry this pass decided was sent
MAX_PASSES = 8  # passes in a row that found differences and moved nothing: "unsettled"
RECONCILE_FRAME = 16000  # bytes per reconciler frame, inside a Reconcile message
SEND_BATCH = 64  # entries fetched from the store at a time for one log
MAX_OUTBOUND = 100_000  # keys queued per link; beyond that the next pass finds the rest
FRAME_SLOTS = 8  # frames read ahead of the driver


class Link(Protocol):
    """A framed transport (TCP, BLE, pipe): whole frames in, whole frames out."""

    label: str

    async def recv(self) -> bytes | None: ...

    async def send(self, frames: list[bytes]) -> None: ...

    async def close(self) -> None: ...


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

    @property
    def agreed(self) -> bool:
        return self.ours and self.theirs


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
            ctx.suite, initiator, ctx.session_static(), ctx.role, now, ctx.limits
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
        self._peer_sent_all = False  # initiator: the responder said PASS_SENT for this pass
        self._sent_all_said = False  # responder: we said PASS_SENT for this pass
        self._unacked = 0
        self._pending_commits = 0
        self._heard_interest = False
        self._declared_extras = False
        self._need_pass = False
        self._stopping = False
        self._hub_token = ctx.hub.subscribe(self._on_published)

    def request_close(self, reason: str, text: str = "") -> None:
        """Ask the driver to say Bye and end (shutdown, operator action); safe from any task."""
        self._inbox.put_nowait(("close", reason, text))

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
            self.ctx.hub.unsubscribe(self._hub_token)
            await self.link.close()
        self.ctx.count("links.closed." + (self.outcome.reason or "unknown"))
        return self.outcome

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
                item = await asyncio.wait_for(self._inbox.get(), timeout)
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
                elif kind == "close":
                    reason, text = item[1], item[2]
                    assert isinstance(reason, str) and isinstance(text, str)
                    self.outcome.reason = self.outcome.reason or reason
                    session.close(reason, text, self.ctx.clock())
                elif kind == "acked":
                    ref, count, credit = item[1], item[2], item[3]
                    assert isinstance(ref, int) and isinstance(count, int)
                    assert isinstance(credit, int)
                    self._pending_commits -= 1
                    if session.is_open:
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
                    self._declare(self._initial_declarations())
            elif isinstance(event, InterestReceived):
                self._on_interest(event.logs)
            elif isinstance(event, ReconcileReceived):
                self._on_reconcile(event.ref, event.data)
            elif isinstance(event, EntriesReceived):
                self._on_entries(event.ref, event.items, event.size)
            elif isinstance(event, AckReceived):
                self._unacked = max(0, self._unacked - event.stored)
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

    def _declare(self, addresses: list[str], echo: list[SessionLog] | None = None) -> None:
        """Send Interest for new `addresses` and echoes of peer-declared logs (may be empty)."""
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
        if not declarations:
            self.session.send_interest([], now)
        for i in range(0, len(declarations), 128):
            self.session.send_interest(declarations[i : i + 128], now)

    def _add_log(self, slog: SessionLog) -> None:
        self._logs_by_ref[slog.ref] = slog
        self._logs_by_address[slog.address] = slog

    def _on_interest(self, declarations: list[LogDeclaration]) -> None:
        first = not self._heard_interest
        self._heard_interest = True
        echoes: list[SessionLog] = []
        for decl in declarations:
            sign_pub, id_sig = parse_log_header(decl.header)
            slog = self._logs_by_ref.get(decl.ref)
            if slog is not None:
                if slog.address != decl.address or slog.sign_pub != sign_pub:
                    raise RemoteProtocolError(
                        "log ref %d declared again for another log" % decl.ref, REASON_UNEXPECTED
                    )
                slog.theirs = True
                slog.peer_identity_signature = id_sig
                continue
            if decl.ref % 2 == self._next_ref % 2:
                raise RemoteProtocolError("log ref %d has our parity" % decl.ref, REASON_UNEXPECTED)
            if decl.address in self._logs_by_address:
                raise RemoteProtocolError(
                    "log %s declared under two refs" % decl.address[:80], REASON_UNEXPECTED
                )
            refusal = self.ctx.accept_log(decl.address, sign_pub)
            slog = SessionLog(decl.ref, decl.address, sign_pub, theirs=True)
            slog.peer_identity_signature = id_sig
            self._add_log(slog)
            if refusal is None:
                echoes.append(slog)
            else:
                self.ctx.count("logs.refused." + refusal)
        extras: list[str] = []
        if not self.initiator and first:
            peer = self.session.peer_hello
            if self.ctx.policy.declare_all and peer is not None and peer.role == ROLE_RELAY:
                extras = self._initial_declarations()
        if not self.initiator or echoes or extras:
            self._declare(extras, echoes)
        if self.initiator:
            self._need_pass = True

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
        if reconciler is not None and reconciler.all_in_sync and not self._need_pass:
            self.outcome.in_sync = True
            if self.until_synced:
                self.session.close("ok", "in sync", self.ctx.clock())
            return
        if reconciler is not None and not reconciler.all_in_sync:
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

    def _start_pass(self) -> None:
        self._need_pass = False
        self._pass += 1
        self._unsettled_passes += 1
        self._pass_mark = self._progress()
        self.outcome.passes = self._pass
        logs = self._agreed_logs()
        self._begin_pass(logs, initiator=True)
        assert self._reconciler is not None
        frames = self._reconciler.start(self.ctx.clock())
        header = bytes((PASS_START,)) + encode_uvarint(len(logs))
        header += b"".join(encode_uvarint(s.ref) for s in logs)
        if not frames:
            frames = [b""]
        now = self.ctx.clock()
        for i, frame in enumerate(frames):
            prefix = header if i == 0 else b"\x00"
            self.session.send_reconcile(self._pass, prefix + frame, now)
        self._collect_results()
        if not logs:  # a pass over no logs is settled at once; no reply will come to wake us
            self._maybe_next_pass()

    def _progress(self) -> tuple[int, int]:
        return (self.outcome.entries_sent, self._entries_stored)

    def _begin_pass(self, logs: list[SessionLog], initiator: bool) -> None:
        keysets = [self.ctx.store.keyset(s.address) for s in logs]
        self._reconciler = Reconciler(keysets, initiator, max_frame=RECONCILE_FRAME)
        self._pass_logs = logs
        self._reported_send = [0] * len(logs)
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
            self._pass = number
            if not logs:  # neither side carries a log yet: the pass has no reconciler frame
                if pos != len(data):
                    raise RemoteProtocolError("reconcile: a pass over no logs carries a frame")
                self._reconciler = None
                self._pass_logs = []
                return
            self._begin_pass(logs, initiator=False)
        elif number != self._pass or self._reconciler is None:
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
                self._queue_keys(self._pass_logs[index], new)

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

    def _queue_keys(self, slog: SessionLog, keys: list[Key]) -> None:
        for key in keys:
            if key in slog.queued:
                continue
            if len(slog.queued) >= MAX_OUTBOUND:
                self._need_pass = True  # too much to track: a later pass finds the rest
                return
            slog.queued.add(key)
            slog.outbound.append(key)

    def _pump_outbound(self) -> None:
        session = self.session
        if not session.is_open:
            return
        for slog in list(self._logs_by_ref.values()):
            while slog.outbound and session.send_credit > 0:
                keys = [slog.outbound[i] for i in range(min(SEND_BATCH, len(slog.outbound)))]
                entries = self.ctx.store.entries_by_keys(slog.address, keys)
                present = {(e.clock_time, e.cid.digest) for e in entries}
                items = [
                    encode_item(e, slog.sign_pub, slog.our_identity_signature) for e in entries
                ]
                sent = session.send_entries(slog.ref, items, self.ctx.clock()) if items else 0
                # Settle keys from the front: the first `sent` stored ones, and any key no
                # longer stored (evicted or expired meanwhile).
                remaining = sent
                for key in keys:
                    if key in present:
                        if remaining == 0:
                            break
                        remaining -= 1
                    slog.outbound.popleft()
                    slog.queued.discard(key)
                self._unacked += sent
                self.outcome.entries_sent += sent
                self.ctx.count("entries.sent", sent)
                if sent < len(items):
                    break
        if self.progress is not None:
            self.progress(self.outcome)

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
        results = self.ctx.store.put_entries(entries, self.ctx.wall_clock())
        stored_keys: list[Key] = []
        forgery: IntegrityError | None = None
        for entry, result in zip(entries, results, strict=True):
            if result.status == REFUSED:
                self.outcome.entries_refused += 1
                self.ctx.count("entries.refused." + result.reason)
                if result.reason == "integrity" and forgery is None:
                    forgery = IntegrityError("entry %s refused: %s" % (result.cid, result.detail))
            elif result.status == STORED:
                stored_keys.append((entry.clock_time, entry.cid.digest))
                if not self.ctx.identity_signatures.get(slog.address):
                    self.ctx.identity_signatures[slog.address] = entry.identity.signature_id
        self.ctx.count("entries.received", len(items))
        self.outcome.entries_received += len(items)
        if stored_keys:  # genuine entries beside a forgery are kept: count and announce them
            self._entries_stored += len(stored_keys)
            self.ctx.count("entries.stored", len(stored_keys))
            self.ctx.hub.published(slog.address, stored_keys, self)
        if forgery is not None:
            raise forgery
        self._pending_commits += 1
        count = len(items)
        self.ctx.committer.after_commit(lambda: self._inbox.put_nowait(("acked", ref, count, size)))
        if self.progress is not None:
            self.progress(self.outcome)

    def _on_published(self, address: str, keys: list[Key], source: object) -> None:
        if source is self:
            return
        slog = self._logs_by_address.get(address)
        if slog is None or not slog.agreed:
            return
        self._queue_keys(slog, keys)
        self._inbox.put_nowait(("wake",))
