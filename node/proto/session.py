# The link session (L0, sans-IO): Noise XX, Hello, then session messages with credit flow control.
#
# Theory of operation
# -------------------
# A Session turns frames into events and calls into frames, and never does I/O, reads a clock or
# draws randomness of its own: `now` (monotonic milliseconds) is an argument and the crypto suite
# is injected. The vocabulary is the house one (reference/style.md §9):
#
#   receive_frame(frame, now)   one transport frame = one Noise message, from the peer
#   next_event()                the next event for the caller, or None
#   send_*(...)                 queue one message (interest, reconcile, entries, ack, pairing)
#   close(reason, text, now)    say Bye
#   frames_to_send()            the frames the caller must write to the link, in order
#   get_timer() / handle_timer(now)   the next deadline, and what to do when it passes
#   connection_lost(now)        the link dropped
#
# Every transition goes through node.proto._states.TRANSITIONS (one table, drawn in the docs).
#
# Flow control: each side grants the other a window of bytes of Entries messages in its Hello,
# and grants more with Ack(credit) once it has durably stored what it received. A sender may only
# send Entries while it has credit (send_entries sends the prefix of the items that fits and says
# how many); a peer that exceeds the window it was granted breaks the protocol. So a slow link or
# a slow disk never makes either side buffer more than its window.
#
# Frame hints: the link tells how large a frame it carries well (`frame_hint`: 244 on a BLE link
# with 244-byte writes, 65,535 on TCP). The session sizes what it alone decides from it: Entries
# (and the caller's Interest) messages are cut at `message_target` bytes (the hint, counted as at
# least MIN_FRAME_TARGET, minus the 16-byte Noise tag); `reconcile_room` tells the caller how much
# reconcile data fits one message of that size (at least MIN_RECONCILE_MESSAGE: the reconciler's
# smallest frame); at most IN_FLIGHT_MESSAGES target-sized frames of Entries are unacknowledged
# at once (`send_room`), within the peer's credit. Receive limits do not depend on the hint: a
# peer with another hint may send us anything the message limits allow. docs/protocol.md,
# "Frame hints", has the rule and the numbers.
#
# Deadlines: the handshake and the peer's Hello must arrive within `handshake_timeout`; in OPEN,
# silence longer than `idle_timeout` ends the session with Bye "timeout", and we send an empty Ack
# as a keepalive whenever we have sent nothing for `keepalive_interval`; after our Bye the peer has
# `close_timeout` to answer.
#
# Errors: a peer that breaks a rule (bad frame, bad message, out of state, over its credit) raises
# RemoteProtocolError out of receive_frame; the session is then in ERROR and, when the Noise keys
# exist, has already queued a Bye carrying the reason: the caller writes frames_to_send() and
# drops the link. Misuse by the caller raises LocalProtocolError and changes nothing.

from node.crypto.noise import WAYSTATION_PROLOGUE as PROLOGUE
from node.crypto.noise import NoiseHandshake
from node.errors import (
    ENDING_LOST,
    REASON_FLOW,
    REASON_OK,
    REASON_TIMEOUT,
    REASON_UNEXPECTED,
    REASON_VERSION,
    LocalProtocolError,
    RemoteProtocolError,
)
from node.proto import _states as S  # noqa: N812 - the table reads best short
from node.proto.batch import pack_messages, unpack_messages

# the events are re-exported: callers read them from node.proto.session
from node.proto.events import AckReceived as AckReceived
from node.proto.events import EntriesReceived as EntriesReceived
from node.proto.events import HandshakeCompleted as HandshakeCompleted
from node.proto.events import InterestReceived as InterestReceived
from node.proto.events import PairingReceived as PairingReceived
from node.proto.events import ReconcileReceived as ReconcileReceived
from node.proto.events import SessionClosed as SessionClosed
from node.proto.events import SessionOpened as SessionOpened
from node.proto.events import SummaryReceived as SummaryReceived

# as are the limits
from node.proto.limits import MIN_WINDOW as MIN_WINDOW
from node.proto.limits import SessionLimits as SessionLimits
from node.proto.messages import (
    ENTRIES,
    ENTRIES_CONTINUES,
    MAX_MESSAGE,
    MAX_SIZE,
    PROTOCOL_VERSION,
    RECONCILE,
    Ack,
    Bye,
    Entries,
    Hello,
    Interest,
    LogDeclaration,
    Pairing,
    Reconcile,
    Summary,
    decode_message,
    encode_message,
)
from node.varint import encode_uvarint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from node.crypto.api import Suite
    from node.crypto.noise import NoiseTransport
    from node.proto.messages import Message

NOISE_TAG = 16  # bytes a Noise transport message adds to the session message it carries
MAX_FRAME_HINT = MAX_MESSAGE + NOISE_TAG  # 65535: whole Noise messages, no sizing needed
# Frames are never sized below one full BLE write (ATT MTU 247, what BlueZ and phones negotiate):
# a link with smaller writes cuts frames into fragments anyway, and smaller frames would only
# add per-frame overhead (the 16-byte tag, ~5 bytes of message header).
MIN_FRAME_TARGET = 244
MIN_RECONCILE_MESSAGE = 264  # a reconciler frame (>= 256 bytes) and its Reconcile header fit
IN_FLIGHT_MESSAGES = 32  # unacknowledged Entries bytes: at most this many target-sized frames
_RECONCILE_HEAD = 1 + 5  # type byte, uvarint pass (< 2**32)

_RECV_INPUT = {
    Hello: S.RECV_HELLO,
    Interest: S.RECV_INTEREST,
    Reconcile: S.RECV_RECONCILE,
    Entries: S.RECV_ENTRIES,
    Ack: S.RECV_ACK,
    Pairing: S.RECV_PAIRING,
    Bye: S.RECV_BYE,
    Summary: S.RECV_SUMMARY,
}


# -- the session --------------------------------------------------------------------------------


class Session:
    """One side of a link session.

    Args:
        suite: the crypto suite (X25519, ChaCha20-Poly1305, BLAKE2b).
        initiator: True on the side that opened the link (it writes the first handshake message).
        static_private: our X25519 static key; members pass a fresh one per session to stay
            unlinkable, relays their node key converted to X25519.
        hello: what we announce (role, window, largest message we accept).
        now: the current monotonic time in milliseconds.
        limits: deadlines and sizes.
        ephemeral_private: a fixed Noise ephemeral key (tests only).
        frame_hint: the largest frame the link carries well (see "Frame hints" above).
    """

    def __init__(
        self,
        suite: "Suite",
        initiator: bool,
        static_private: bytes,
        role: int,
        now: int,
        limits: "SessionLimits | None" = None,
        ephemeral_private: "bytes | None" = None,
        frame_hint: int = MAX_FRAME_HINT,
    ) -> None:
        self.limits = limits or SessionLimits()
        self.frame_hint = frame_hint
        target_frame = max(MIN_FRAME_TARGET, min(MAX_FRAME_HINT, frame_hint))
        self.message_target = target_frame - NOISE_TAG
        self.send_cap = IN_FLIGHT_MESSAGES * (self.message_target + NOISE_TAG)
        self._in_flight = 0  # Entries bytes sent and not yet given back by an Ack's credit
        self.initiator = initiator
        self.state = S.AWAIT_HANDSHAKE
        self.local_hello = Hello(role, self.limits.window, MAX_MESSAGE, PROTOCOL_VERSION)
        self.peer_hello: "Hello | None" = None
        self.remote_static: "bytes | None" = None
        self.handshake_hash: "bytes | None" = None
        self._handshake: "NoiseHandshake | None" = NoiseHandshake(
            suite, initiator, static_private, PROLOGUE, ephemeral_private
        )
        self._transport: "NoiseTransport | None" = None
        self._events: "list[object]" = []
        self._out: "list[bytes]" = []
        self._pending: "list[bytes]" = []  # encoded messages, packed into frames when taken
        self._deadline: "int | None" = now + self.limits.handshake_timeout
        self._last_received = now
        self._last_sent = now
        self.send_credit = 0  # bytes of Entries we may still send
        self.receive_window = self.limits.window  # bytes of Entries the peer may still send
        self._partial_ref = -1
        self._partial = b""
        self._partial_size = 0  # credit consumed by the pieces of the pending split entry
        self.stats = {
            "frames_in": 0,
            "frames_out": 0,
            "bytes_in": 0,
            "bytes_out": 0,
            "entries_in": 0,
            "entries_out": 0,
        }
        if initiator:
            self._queue_frame(self._handshake.write_message(b""))

    # -- caller API -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True in OPEN: messages may be sent."""
        return self.state == S.OPEN

    @property
    def is_finished(self) -> bool:
        """True in CLOSED or ERROR."""
        return self.state in S.TERMINAL_STATES

    @property
    def reconcile_room(self) -> int:
        """Bytes of reconcile data that fit one Reconcile message of the target size."""
        room = max(MIN_RECONCILE_MESSAGE, min(MAX_SIZE[RECONCILE], self.message_target))
        return room - _RECONCILE_HEAD

    @property
    def in_flight(self) -> int:
        """Bytes of Entries sent and not yet given back by the peer's Acks (lost if the link is)."""
        return self._in_flight

    @property
    def send_room(self) -> int:
        """Bytes of Entries we may send now: the peer's credit, within our in-flight cap.

        With nothing in flight the whole credit is usable, so an entry split into more than the
        cap's worth of messages still goes (alone).
        """
        if self._in_flight == 0:
            return self.send_credit
        return max(0, min(self.send_credit, self.send_cap - self._in_flight))

    def next_event(self) -> "object | None":
        """Pop the next event (HandshakeCompleted, SessionOpened, ... SessionClosed), or None."""
        if self._events:
            return self._events.pop(0)
        return None

    def frames_to_send(self) -> "list[bytes]":
        """Take the frames queued for the link, oldest first: the messages queued since the last
        call share frames (batches within the message target and the peer's max_message)."""
        if self._pending and self._transport is not None:
            peer = self.peer_hello.max_message if self.peer_hello else 1024
            for payload in pack_messages(self._pending, min(self.message_target, peer)):
                self._queue_frame(self._transport.encrypt(payload))
            self._pending = []
        out = self._out
        self._out = []
        return out

    def get_timer(self) -> "int | None":
        """The next deadline (ms), or None when the session is finished."""
        if self.is_finished:
            return None
        if self.state == S.OPEN:
            return min(
                self._last_received + self.limits.idle_timeout,
                self._last_sent + self.limits.keepalive_interval,
            )
        return self._deadline

    def handle_timer(self, now: int) -> None:
        """Act on deadlines that passed by `now` (timeouts, keepalives)."""
        if self.is_finished:
            self._apply(S.DEADLINE_PASSED, None, now)
            return
        if self.state == S.OPEN:
            if now >= self._last_received + self.limits.idle_timeout:
                self._apply(S.DEADLINE_PASSED, None, now)
            elif now >= self._last_sent + self.limits.keepalive_interval:
                self._apply(S.KEEPALIVE_DUE, None, now)
            return
        if self._deadline is not None and now >= self._deadline:
            self._apply(S.DEADLINE_PASSED, None, now)

    def connection_lost(self, now: int) -> None:
        """The link dropped (EOF or error)."""
        self._apply(S.CONNECTION_LOST, None, now)

    def receive_frame(self, frame: bytes, now: int) -> None:
        """Feed one frame (one Noise message) from the link.

        Raises:
            RemoteProtocolError: the peer broke the protocol. The session is now in ERROR and a
                Bye with the reason is queued when possible; write frames_to_send() and drop
                the link.
            LocalProtocolError: the session is already finished.
        """
        if self.is_finished:
            raise LocalProtocolError("frame received on a finished session (%s)" % self.state)
        self.stats["frames_in"] += 1
        self.stats["bytes_in"] += len(frame)
        self._last_received = now
        try:
            if self.state == S.AWAIT_HANDSHAKE:
                self._apply(S.RECV_HANDSHAKE, frame, now)
                return
            transport = self._transport
            if transport is None:  # pragma: no cover - guarded by the state
                raise LocalProtocolError("no transport outside AWAIT_HANDSHAKE")
            for data in unpack_messages(transport.decrypt(frame)):
                if self.is_finished:
                    break  # what follows a Bye in the same frame is not read
                message = decode_message(data)
                self._apply(_RECV_INPUT[type(message)], message, now)
        except RemoteProtocolError as exc:
            self._fail(exc, now)
            raise

    def send_interest(self, logs: "list[LogDeclaration]", now: int) -> None:
        """Declare logs to sync (at most 128 per message)."""
        message = Interest(logs)
        self._apply(S.SEND_INTEREST, message, now)

    def send_summary(self, summary: Summary, now: int) -> None:
        """Send a Summary (the initiator's may follow its Hello before the peer's arrives)."""
        self._apply(S.SEND_SUMMARY, summary, now)

    def send_reconcile(self, ref: int, data: bytes, now: int) -> None:
        """Send one reconciliation message for log `ref`."""
        self._apply(S.SEND_RECONCILE, Reconcile(ref, data), now)

    def send_ack(self, ref: int, stored: int, credit: int, now: int) -> None:
        """Acknowledge `stored` durable entries of `ref` and grant `credit` more bytes."""
        self._apply(S.SEND_ACK, Ack(ref, stored, credit), now)

    def send_pairing(self, step: int, data: bytes, now: int) -> None:
        """Send one pairing step."""
        self._apply(S.SEND_PAIRING, Pairing(step, data), now)

    def send_entries(self, ref: int, items: "list[bytes]", now: int) -> int:
        """Send as many of `items` (in order) as the peer's credit allows.

        Items larger than one message are split across messages (`continues`). An item is sent
        whole or not at all.

        Returns:
            How many items were sent; the caller keeps the rest for when credit arrives.

        Raises:
            LocalProtocolError: not OPEN, or an item is larger than `limits.max_item`.
        """
        if S.transition(self.state, S.SEND_ENTRIES) is None:
            raise LocalProtocolError("SEND_ENTRIES is not allowed in state %s" % self.state)
        peer_max = self.peer_hello.max_message if self.peer_hello else MAX_MESSAGE
        limit = min(peer_max, MAX_SIZE[ENTRIES], self.message_target)
        sent = 0
        batch: "list[bytes]" = []
        batch_items_size = 0
        for item in items:
            if len(item) > self.limits.max_item:
                raise LocalProtocolError("entry item of %d bytes over max_item" % len(item))
            item_size = len(encode_uvarint(len(item))) + len(item)
            if _entries_overhead(ref, 1) + item_size > limit:
                # Too large for one message: flush, then send it in pieces.
                if batch:
                    self._send_entries_message(Entries(ref, batch), now)
                    batch, batch_items_size = [], 0
                pieces = _split_item(item, ref, limit)
                messages = [Entries(ref, [p], i < len(pieces) - 1) for i, p in enumerate(pieces)]
                if sum(_message_size(m) for m in messages) > self.send_room:
                    break
                for message in messages:
                    self._send_entries_message(message, now)
                sent += 1
                continue
            size = _entries_overhead(ref, len(batch) + 1) + batch_items_size + item_size
            if size > limit:
                self._send_entries_message(Entries(ref, batch), now)
                batch, batch_items_size = [], 0
                size = _entries_overhead(ref, 1) + item_size
            if size > self.send_room:
                break
            batch.append(item)
            batch_items_size += item_size
            sent += 1
        if batch:
            self._send_entries_message(Entries(ref, batch), now)
        self.stats["entries_out"] += sent
        return sent

    def close(self, reason: str, text: str, now: int) -> None:
        """Say Bye (idempotent). Before the handshake completes the link is just dropped."""
        self._apply(S.SEND_BYE, Bye(reason, text), now)

    # -- machinery ------------------------------------------------------------------------------

    def _send_entries_message(self, message: Entries, now: int) -> None:
        size = _message_size(message)
        self.send_credit -= size
        self._in_flight += size
        self._queue_message(message, now)

    def _apply(self, event: str, payload: "object", now: int) -> None:
        step = S.transition(self.state, event)
        if step is None:
            if event in S.LOCAL_INPUTS or event in S.INTERNAL_INPUTS or self.is_finished:
                raise LocalProtocolError("%s is not allowed in state %s" % (event, self.state))
            raise RemoteProtocolError(
                "%s is not allowed in state %s" % (event.replace("RECV_", "").lower(), self.state),
                REASON_UNEXPECTED,
            )
        action, next_state = step
        before = self.state
        _ACTIONS[action](self, payload, now)
        if self.state != before:
            return  # the action itself moved on (a state-triggered transition ran)
        self.state = next_state
        if next_state == S.CLOSING:
            self._deadline = now + self.limits.close_timeout

    def _fail(self, exc: RemoteProtocolError, now: int) -> None:
        self._apply(S.PROTOCOL_FAILED, exc, now)

    def _queue_frame(self, frame: bytes) -> None:
        self.stats["frames_out"] += 1
        self.stats["bytes_out"] += len(frame)
        self._out.append(frame)

    def _queue_message(self, message: "Message", now: int) -> None:
        transport = self._transport
        if transport is None:
            raise LocalProtocolError("no Noise transport yet")
        self._pending.append(encode_message(message))
        self._last_sent = now

    # -- actions (named in _states.TRANSITIONS) -------------------------------------------------

    def _do_handshake(self, frame: object, now: int) -> None:
        handshake = self._handshake
        if handshake is None or not isinstance(frame, bytes):  # pragma: no cover
            raise LocalProtocolError("no handshake in progress")
        if handshake.is_my_turn():
            raise RemoteProtocolError("handshake message out of turn", REASON_UNEXPECTED)
        if handshake.read_message(frame):
            raise RemoteProtocolError("handshake payloads must be empty")
        if not handshake.is_complete():
            self._queue_frame(handshake.write_message(b""))
        if handshake.is_complete():
            self._transport = handshake.transport()
            self._handshake = None
            self.remote_static = self._transport.remote_static
            self.handshake_hash = self._transport.handshake_hash
            self._events.append(HandshakeCompleted(self.remote_static, self.handshake_hash))
            self._apply(S.HANDSHAKE_COMPLETED, None, now)

    def _do_send_hello(self, payload: object, now: int) -> None:
        self._queue_message(self.local_hello, now)
        self._deadline = now + self.limits.handshake_timeout

    def _do_hello(self, hello: object, now: int) -> None:
        if not isinstance(hello, Hello):  # pragma: no cover
            raise LocalProtocolError("hello action without a Hello")
        if hello.version != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                "unsupported protocol version %d" % hello.version, REASON_VERSION
            )
        if hello.window < MIN_WINDOW:
            raise RemoteProtocolError("hello window %d below %d" % (hello.window, MIN_WINDOW))
        if hello.max_message < 1024:
            raise RemoteProtocolError("hello max_message %d below 1024" % hello.max_message)
        self.peer_hello = hello
        self.send_credit = hello.window
        self._deadline = None
        self._events.append(SessionOpened(hello))

    def _do_deliver(self, message: object, now: int) -> None:
        if isinstance(message, Interest):
            self._events.append(InterestReceived(message.logs))
        elif isinstance(message, Reconcile):
            self._events.append(ReconcileReceived(message.ref, message.data))
        elif isinstance(message, Entries):
            self._receive_entries(message)
        elif isinstance(message, Ack):
            self.send_credit += message.credit
            self._in_flight = max(0, self._in_flight - message.credit)
            if message.stored or message.credit:
                self._events.append(AckReceived(message.ref, message.stored, message.credit))
        elif isinstance(message, Pairing):
            self._events.append(PairingReceived(message.step, message.data))
        elif isinstance(message, Summary):
            self._events.append(SummaryReceived(message))

    def _receive_entries(self, message: Entries) -> None:
        size = _message_size(message)
        self.receive_window -= size
        if self.receive_window < 0:
            raise RemoteProtocolError("entries exceed the granted window", REASON_FLOW)
        items = list(message.items)
        size += self._partial_size
        self._partial_size = 0
        if self._partial_ref >= 0:
            if message.ref != self._partial_ref or not items:
                raise RemoteProtocolError("expected the continuation of a split entry")
            joined = self._partial + items[0]
            if len(joined) > self.limits.max_item:
                raise RemoteProtocolError("split entry exceeds %d bytes" % self.limits.max_item)
            if len(items) == 1 and message.continues:
                self._partial = joined
                self._partial_size = size
                return
            items[0] = joined
            self._partial_ref = -1
            self._partial = b""
        if message.continues:
            self._partial_ref = message.ref
            self._partial = items.pop()
            if not items:
                self._partial_size = size
                return
        for item in items:
            if len(item) > self.limits.max_item:
                raise RemoteProtocolError("entry item exceeds %d bytes" % self.limits.max_item)
        self.stats["entries_in"] += len(items)
        if items:
            self._events.append(EntriesReceived(message.ref, items, size))

    def _do_send(self, message: object, now: int) -> None:
        if isinstance(message, Ack):
            self.receive_window += message.credit
        if not isinstance(
            message, (Interest, Reconcile, Entries, Ack, Pairing, Summary)
        ):  # pragma: no cover
            raise LocalProtocolError("send action without a message")
        self._queue_message(message, now)

    def _do_ignore(self, payload: object, now: int) -> None:
        return

    def _do_answer_bye(self, bye: object, now: int) -> None:
        if not isinstance(bye, Bye):  # pragma: no cover
            raise LocalProtocolError("answer_bye without a Bye")
        self._queue_message(Bye(REASON_OK, ""), now)
        self._events.append(SessionClosed(bye.reason, bye.text, True))

    def _do_say_bye(self, bye: object, now: int) -> None:
        if not isinstance(bye, Bye):  # pragma: no cover
            raise LocalProtocolError("say_bye without a Bye")
        self._queue_message(bye, now)
        self._events.append(SessionClosed(bye.reason, bye.text, False))

    def _do_timeout(self, payload: object, now: int) -> None:
        text = "no hello in time" if self.state == S.AWAIT_HELLO else "peer silent too long"
        self._queue_message(Bye(REASON_TIMEOUT, text), now)
        self._events.append(SessionClosed(REASON_TIMEOUT, text, False))

    def _do_abort(self, payload: object, now: int) -> None:
        reason = payload.reason if isinstance(payload, Bye) else REASON_TIMEOUT
        self._events.append(SessionClosed(reason, "closed before the handshake completed", False))

    def _do_lost(self, payload: object, now: int) -> None:
        self._events.append(SessionClosed(ENDING_LOST, "the link dropped", True))

    def _do_finish(self, payload: object, now: int) -> None:
        return

    def _do_keepalive(self, payload: object, now: int) -> None:
        self._queue_message(Ack(0, 0, 0), now)

    def _do_fail(self, exc: object, now: int) -> None:
        if not isinstance(exc, RemoteProtocolError):  # pragma: no cover
            raise LocalProtocolError("fail action without a RemoteProtocolError")
        if self._transport is not None:
            self._queue_message(Bye(exc.reason, exc.message[:200]), now)
        self._events.append(SessionClosed(exc.reason, exc.message, False))


# The actions named in _states.TRANSITIONS, by name: a plain table a type checker follows (every
# action of the table has an entry; tests/property/test_session_states.py checks both ways).
_ACTIONS: "dict[str, Callable[[Session, object, int], None]]" = {
    "handshake": Session._do_handshake,
    "send_hello": Session._do_send_hello,
    "hello": Session._do_hello,
    "deliver": Session._do_deliver,
    "send": Session._do_send,
    "ignore": Session._do_ignore,
    "answer_bye": Session._do_answer_bye,
    "say_bye": Session._do_say_bye,
    "timeout": Session._do_timeout,
    "abort": Session._do_abort,
    "lost": Session._do_lost,
    "finish": Session._do_finish,
    "keepalive": Session._do_keepalive,
    "fail": Session._do_fail,
}


def _message_size(message: Entries) -> int:
    size = _entries_overhead(message.ref, len(message.items))
    for item in message.items:
        size += len(encode_uvarint(len(item))) + len(item)
    return size


def _entries_overhead(ref: int, count: int) -> int:
    return 1 + len(encode_uvarint(ref)) + 1 + len(encode_uvarint(count))


def _split_item(item: bytes, ref: int, limit: int) -> "list[bytes]":
    room = limit - _entries_overhead(ref, 1) - 3  # 3: the item's own length prefix
    return [item[i : i + room] for i in range(0, len(item), room)]


# The continuation flag value is part of the wire format (messages.py); referenced here so a
# change there is noticed in review.
assert ENTRIES_CONTINUES == 1
