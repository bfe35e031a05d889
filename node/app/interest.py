"""Logs in a session (sans-IO, L2): which log goes by which ref, who declared it, what to say.

Theory of operation
-------------------
Each side declares the logs it wants in Interest messages. A log is named by a `ref` chosen by
whoever declared it first (initiator even, responder odd); the other side accepts by echoing the
same ref (version 2: the ref alone, with its header only if it differs from the declarer's). A
log is *agreed* once both sides declared it; only agreed logs are reconciled and carry entries.
Per log, two flags make the whole state:

    ours   theirs   meaning                              next
    no     yes      the peer declared it, we accepted    we echo it (-> agreed)
    yes    no       we declared it                       the peer echoes it (-> agreed) or not
    yes    yes      agreed                               reconciled in the next pass

A log the peer declares that our policy refuses is never entered: entries for it are refused as
undeclared. The responder answers every Interest with one (possibly empty), so the initiator knows
it was heard. The initiator's first declarations end with an empty Interest: only then does a
responding relay declare its own logs, so the two lists cannot cross under two refs.

Version 2 adds the Summary (docs/protocol.md, "Logs in a session"). A member with a stable key (a
paired device) opens with one Summary instead of its declarations: how many logs, a fingerprint
of the declarations it would send and one of its entries. A relay that remembers what this device
declared last (`InterestMemory`, in memory, paired devices only) and finds the same fingerprint
agrees on every log at once (refs 0, 2, 4, ... in address order, the refs the declarations would
have had) and answers IN_SYNC when the entries match too, KNOWN when a pass must reconcile them;
otherwise UNKNOWN, and the member declares as above, which the relay remembers. A member with a
fresh key sends no Summary (nothing could be remembered for it).

`LogTable` does no I/O and needs no event loop: it returns the Interest messages to send (lists
of declarations) and whether the initiator should reconcile; the caller sends them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.errors import REASON_TOO_LARGE, REASON_UNEXPECTED, RemoteProtocolError
from node.proto.messages import (
    INTEREST,
    MAX_INTEREST_LOGS,
    MAX_SIZE,
    SUMMARY_FP,
    SUMMARY_IN_SYNC,
    SUMMARY_KNOWN,
    SUMMARY_OFFER,
    SUMMARY_UNKNOWN,
    LogDeclaration,
    Summary,
)
from node.sync.keyset import id_int
from node.sync.wire import parse_log_header
from node.varint import encode_uvarint

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.app.context import NodeContext
    from node.store.devices import Device
    from node.sync.keyset import Key, KeySet

    KeySetOf = Callable[[str], KeySet]

Declared = list[tuple[str, bytes]]  # (address, header) of each declared log, in address order
SUMMARY_VERDICTS = {SUMMARY_IN_SYNC: "in-sync", SUMMARY_KNOWN: "known", SUMMARY_UNKNOWN: "unknown"}
MAX_REMEMBERED = 256  # devices whose last interest a relay keeps (least recently used go first)


def interest_fingerprint(declared: Declared) -> bytes:
    """The Summary's interest fingerprint: SHA-256 over each declaration as an Interest spells it
    (`uv len || address || uv len || header`, in address order), first 16 bytes."""
    digest = hashlib.sha256()
    for address, header in declared:
        raw = address.encode()
        digest.update(encode_uvarint(len(raw)) + raw + encode_uvarint(len(header)) + header)
    return digest.digest()[:SUMMARY_FP]


def state_fingerprint(addresses: list[str], keyset_of: KeySetOf) -> bytes:
    """The Summary's state fingerprint: SHA-256 over each log's reconciliation fingerprint of all
    its keys (16 bytes, node.sync.keyset), in address order, first 16 bytes."""
    digest = hashlib.sha256()
    for address in addresses:
        keyset = keyset_of(address)
        digest.update(keyset.fingerprint(0, len(keyset)))
    return digest.digest()[:SUMMARY_FP]


class InterestMemory:
    """What each paired device declared last, by its Noise static key (a relay's, in memory).

    At most `limit` devices, the least recently used forgotten first; lost at restart (the
    device's next session declares in full once).
    """

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self.limit = limit
        self._by_key: OrderedDict[bytes, tuple[bytes, Declared]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_key)

    def remember(self, static_key: bytes, declared: Declared) -> None:
        """`static_key` declared `declared` (every one of them agreed)."""
        self._by_key[static_key] = (interest_fingerprint(declared), declared)
        self._by_key.move_to_end(static_key)
        while len(self._by_key) > self.limit:
            self._by_key.popitem(last=False)

    def recall(self, static_key: bytes, count: int, fingerprint: bytes) -> Declared | None:
        """The declarations remembered for `static_key` if they match the Summary's."""
        known = self._by_key.get(static_key)
        if known is None or known[0] != fingerprint or len(known[1]) != count:
            return None
        self._by_key.move_to_end(static_key)
        return known[1]

    def forget(self, static_key: bytes) -> None:
        """Drop what `static_key` declared (revoked, or a log of it is gone)."""
        self._by_key.pop(static_key, None)


@dataclass
class SessionLog:
    """One log as this session knows it.

    The fields after `our_identity_signature` belong to the outbound queue (node.app.outbound)
    and to the pass tally (node.app.passes); they live here so that one lookup by ref finds all.
    """

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
        """Both sides declared this log."""
        return self.ours and self.theirs

    def peer_holds(self, key: Key) -> None:
        """`key` entered our KeySet since OPEN and the peer has it (it sent it, or acked it)."""
        self.moved_count += 1
        self.moved_sum += id_int(key[1])


@dataclass
class InterestAnswer:
    """What to do after an Interest message arrived.

    Attributes:
        messages: Interest messages to send, each a list of declarations (may hold `[]`).
        reconcile: the initiator should run a pass (new agreed logs, or the first answer).
    """

    messages: list[list[LogDeclaration]]
    reconcile: bool


def interest_batches(
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


class LogTable:
    """The logs of one session, by ref and by address, and the Interest exchange over them.

    Args:
        ctx: the node's context (policy, store, headers, log admission, counters).
        initiator: True on the side that opened the link.
        message_target: the size Interest messages are cut near (Session.message_target).
    """

    def __init__(
        self, ctx: NodeContext, initiator: bool, message_target: int = MAX_SIZE[INTEREST]
    ) -> None:
        self.ctx = ctx
        self.initiator = initiator
        self.message_target = message_target
        self.by_ref: dict[int, SessionLog] = {}
        self.by_address: dict[str, SessionLog] = {}
        self.heard_interest = False  # any Interest arrived
        self._heard_end = False  # responder: the initiator's empty Interest arrived
        self._next_ref = 0 if initiator else 1
        self.peer_declarations = 0  # logs the peer declared (its activity, for admission)
        self.device: Device | None = None  # a paired device: its logs are pinned for it
        self.memory: InterestMemory | None = None  # with `device`: where its interest is kept
        self._initial: Declared | None = []  # responder: the initiator's first declarations
        self._offered: tuple[Declared, bytes] | None = None  # initiator: our Summary's basis
        self.offered_logs: list[SessionLog] = []  # initiator: agreed if the answer is not UNKNOWN
        self._summarised = False  # a Summary offer was sent (initiator) or answered (responder)

    def agreed(self) -> list[SessionLog]:
        """The agreed logs, ordered by address (the order a pass names them in)."""
        return sorted((s for s in self.by_ref.values() if s.agreed), key=lambda s: s.address)

    def initial_addresses(self, peer_is_relay: bool) -> list[str]:
        """The logs this node declares first: its own, and every stored one if it declares all
        and the peer is a relay it trusts (`peer_is_relay`)."""
        policy = self.ctx.policy
        addresses = list(policy.own)
        if policy.declare_all and peer_is_relay:
            addresses.extend(a for a in self.ctx.store.logs() if a not in policy.own)
        return sorted(set(addresses))

    def declare(
        self, addresses: list[str], echo: list[SessionLog] | None = None, end: bool = False
    ) -> list[list[LogDeclaration]]:
        """The Interest messages declaring new `addresses` and echoing peer-declared logs.

        Interest messages are cut by encoded size. The initiator's first declarations end with
        an empty Interest (`end`); a responder always answers, with an empty Interest if it has
        nothing to say. Logs we carry no header for are left out.
        """
        declarations: list[LogDeclaration] = []
        for slog in echo or []:
            header = self.ctx.header_for(slog.address)
            if header is None:
                continue
            slog.ours = True
            slog.our_identity_signature = header[33:]
            # an echo names the ref alone, and our header only if it is not the peer's
            same = header[33:] == slog.peer_identity_signature
            declarations.append(LogDeclaration(slog.ref, "", b"" if same else header))
        for address in addresses:
            if address in self.by_address:
                continue
            header = self.ctx.header_for(address)
            if header is None:
                continue
            slog = SessionLog(self._next_ref, address, header[1:33], ours=True)
            slog.our_identity_signature = header[33:]
            self._next_ref += 2
            self._add(slog)
            declarations.append(LogDeclaration(slog.ref, address, header))
        batches = interest_batches(declarations, self.message_target)
        if (self.initiator and end) or not batches:
            # An empty Interest ends our initial declarations, or answers with nothing.
            batches.append([])
        return batches

    def receive(self, declarations: list[LogDeclaration], peer_is_relay: bool) -> InterestAnswer:
        """Take the peer's Interest message.

        Args:
            declarations: what it declared or echoed.
            peer_is_relay: the peer's Hello said it is a relay and we trust it as one (a
                responding relay then declares its own logs once the initiator's initial
                declarations ended).

        Raises:
            RemoteProtocolError: a ref reused for another log, our ref parity, a log under two
                refs, more logs than the policy allows in one session.
            IntegrityError: a forged log offer (the address does not commit to its key).
        """
        end_of_initial = not declarations and not self.initiator and not self._heard_end
        if end_of_initial:
            self._heard_end = True
            if self.device is not None and self.memory is not None and self._initial:
                self.memory.remember(self.device.static_key, self._initial)
        heard_before = self.heard_interest
        self.heard_interest = True
        agreed_now = 0
        echoes: list[SessionLog] = []
        for decl in declarations:
            slog = self.by_ref.get(decl.ref)
            if slog is not None:  # an echo (ref alone; with a header if it is not ours)
                sign_pub, id_sig = slog.sign_pub, slog.our_identity_signature
                if decl.header:
                    sign_pub, id_sig = parse_log_header(decl.header)
                if decl.address not in ("", slog.address) or slog.sign_pub != sign_pub:
                    raise RemoteProtocolError(
                        "log ref %d declared again for another log" % decl.ref, REASON_UNEXPECTED
                    )
                if not slog.theirs:
                    agreed_now += 1
                slog.theirs = True
                slog.peer_identity_signature = id_sig
                continue
            sign_pub, id_sig = parse_log_header(decl.header)
            if not decl.address:
                raise RemoteProtocolError(
                    "log ref %d is new and has no address" % decl.ref, REASON_UNEXPECTED
                )
            if decl.ref % 2 == self._next_ref % 2:
                raise RemoteProtocolError("log ref %d has our parity" % decl.ref, REASON_UNEXPECTED)
            if decl.address in self.by_address:
                raise RemoteProtocolError(
                    "log %s declared under two refs" % decl.address[:80], REASON_UNEXPECTED
                )
            self.peer_declarations += 1
            limit = self.ctx.policy.max_session_logs
            if self.peer_declarations > limit:
                raise RemoteProtocolError(
                    "more than %d logs declared in one session" % limit, REASON_TOO_LARGE
                )
            device = self.device
            refusal = self.ctx.accept_log(
                decl.address, sign_pub, None if device is None else device.quota
            )
            if device is not None and refusal is None and self.ctx.pairing is not None:
                self.ctx.pairing.register_log(device, decl.address)
            if not self._heard_end:
                self._remember_initial(decl, refusal is None)
            if refusal is not None:  # not kept: entries for it will be refused as undeclared
                self.ctx.count("logs.refused." + refusal)
                continue
            slog = SessionLog(decl.ref, decl.address, sign_pub, theirs=True)
            slog.peer_identity_signature = id_sig
            self._add(slog)
            echoes.append(slog)
            agreed_now += 1
        extras: list[str] = []
        if end_of_initial and self.ctx.policy.declare_all and peer_is_relay:
            extras = self.initial_addresses(True)
        messages: list[list[LogDeclaration]] = []
        if not self.initiator or echoes or extras:
            messages = self.declare(extras, echoes)
        reconcile = self.initiator and bool(agreed_now or not heard_before)
        return InterestAnswer(messages, reconcile)

    # -- the Summary (version 2) ---------------------------------------------------------------

    @property
    def summarised(self) -> bool:
        """A Summary offer was sent (initiator) or answered (responder) in this session."""
        return self._summarised

    def own_declared(self) -> Declared:
        """What a member declares: its logs it holds a header for, in address order."""
        declared = []
        for address in self.initial_addresses(False):
            header = self.ctx.header_for(address)
            if header is not None:
                declared.append((address, header))
        return declared

    def offer(self, keyset_of: KeySetOf) -> Summary:
        """Initiator: the Summary to open with (sent right behind our Hello)."""
        declared = self.own_declared()
        state = state_fingerprint([a for a, _ in declared], keyset_of)
        self.offered_logs = self._session_logs(declared)
        self._offered = (declared, state)
        self._summarised = True
        return Summary(SUMMARY_OFFER, len(declared), interest_fingerprint(declared), state)

    def answer(self, offer: Summary, keyset_of: KeySetOf) -> Summary:
        """Responder: the answer to the initiator's offer (IN_SYNC, KNOWN or UNKNOWN).

        Raises:
            RemoteProtocolError: not an offer, not the initiator's first word, or a second one.
        """
        if offer.kind != SUMMARY_OFFER or self.initiator or self._summarised or self.by_ref:
            raise RemoteProtocolError("summary out of turn", REASON_UNEXPECTED)
        self._summarised = True
        device, memory = self.device, self.memory
        if device is None or memory is None:
            return Summary(SUMMARY_UNKNOWN)
        declared = memory.recall(device.static_key, offer.count, offer.interest)
        if declared is None:
            return Summary(SUMMARY_UNKNOWN)
        store = self.ctx.store
        if any(store.sign_pub_of(address) != header[1:33] for address, header in declared):
            memory.forget(device.static_key)  # a log is no longer carried: declare again
            return Summary(SUMMARY_UNKNOWN)
        self._agree_all(self._session_logs(declared))
        self.peer_declarations = len(declared)
        if offer.frame:  # the frame of pass 1 stands for the state: the caller reconciles it
            return Summary(SUMMARY_KNOWN)
        state = state_fingerprint([a for a, _ in declared], keyset_of)
        return Summary(SUMMARY_IN_SYNC if state == offer.state else SUMMARY_KNOWN)

    def answered(self, answer: Summary, keyset_of: KeySetOf) -> tuple[str, InterestAnswer]:
        """Initiator: the responder's answer to our offer.

        Returns:
            ("in-sync" | "known" | "unknown", what to send and whether to reconcile). In sync
            means: agreed, and our entries did not change since the offer.

        Raises:
            RemoteProtocolError: not an answer, or no offer of ours to answer.
        """
        offered = self._offered
        if not self.initiator or offered is None or answer.kind == SUMMARY_OFFER:
            raise RemoteProtocolError("summary out of turn", REASON_UNEXPECTED)
        self._offered = None
        declared, state = offered
        if answer.kind == SUMMARY_UNKNOWN:
            addresses = [a for a, _ in declared]
            return "unknown", InterestAnswer(self.declare(addresses, end=True), False)
        self._agree_all(self.offered_logs)
        self.heard_interest = True
        if (
            answer.kind == SUMMARY_IN_SYNC
            and state_fingerprint([a for a, _ in declared], keyset_of) == state
        ):
            return "in-sync", InterestAnswer([], False)
        return "known", InterestAnswer([], True)

    @staticmethod
    def _session_logs(declared: Declared) -> list[SessionLog]:
        """The logs of `declared`, agreed under refs 0, 2, 4, ... (the initiator's header on both
        sides: the entries of a log share one identity)."""
        slogs = []
        for index, (address, header) in enumerate(declared):
            slog = SessionLog(2 * index, address, header[1:33], ours=True, theirs=True)
            slog.peer_identity_signature = slog.our_identity_signature = header[33:]
            slogs.append(slog)
        return slogs

    def _agree_all(self, slogs: list[SessionLog]) -> None:
        for slog in slogs:
            self._add(slog)
        self._next_ref = 2 * len(slogs) + (0 if self.initiator else 1)

    def _remember_initial(self, decl: LogDeclaration, kept: bool) -> None:
        """Responder: note one of the initiator's first declarations (all kept: remembered)."""
        if self._initial is None:
            return
        if kept:
            self._initial.append((decl.address, decl.header))
        else:
            self._initial = None  # a refused log: the Summary could never agree on all

    def _add(self, slog: SessionLog) -> None:
        self.by_ref[slog.ref] = slog
        self.by_address[slog.address] = slog
