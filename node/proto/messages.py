# Session messages (L0): the nouns two nodes exchange inside the Noise transport.
#
# Theory of operation
# -------------------
# After the Noise XX handshake every transport message carries exactly one session message:
#
#     type (1 byte) || body
#
# Integers are minimal unsigned LEB128 varints (node.varint); byte strings are `uvarint length ||
# bytes`. Every message type has a size limit (MAX_SIZE below, checked before anything is parsed)
# and every count inside a body is bounded, so a hostile peer can make us allocate at most one
# message's worth of memory. Parsing is strict: a body must be consumed exactly, unknown types are
# refused, text must be valid UTF-8 (ASCII for reasons). Every failure raises RemoteProtocolError
# naming the message and the byte offset.
#
# The nouns (docs/protocol.md §"Session messages" has the byte tables):
#   Hello      version, role, the receive window we grant (credits, bytes of Entries bodies),
#              the largest session message we accept
#   Interest   logs the sender wants to sync: (ref, address, header) each; `ref` is a short
#              per-session number for the log, `header` is opaque to this layer (the sync layer's
#              per-log shared fields: signing key and identity signature)
#   Reconcile  one reconciliation message (opaque to this layer) for one log ref
#   Entries    entries for one log ref: opaque items (the sync layer's wire form); the last item
#              may continue in the next Entries message (`continues`), for entries larger than a
#              message
#   Ack        entries durably stored, and more credit granted; also the keepalive
#   Pairing    one SPAKE2 pairing step (opaque)
#   Bye        the reason the sender ends the session (a short ASCII code) and a text
#   Summary    (version 2) the initiator's interest in ~18 bytes: how many logs, a fingerprint of
#              their declarations and one of their entries; the responder answers in sync,
#              known (reconcile them under refs 0, 2, 4, ...), or unknown (declare them)

from node.errors import REASON_TOO_LARGE, LocalProtocolError, RemoteProtocolError
from node.varint import decode_uvarint, encode_uvarint

PROTOCOL_VERSION = 2  # 2: Summary; version 1 peers are refused (Bye "version")

# Message types.
HELLO = 0x01
INTEREST = 0x02
RECONCILE = 0x03
ENTRIES = 0x04
ACK = 0x05
PAIRING = 0x06
BYE = 0x07
SUMMARY = 0x08

TYPE_NAMES = {
    HELLO: "hello",
    INTEREST: "interest",
    RECONCILE: "reconcile",
    ENTRIES: "entries",
    ACK: "ack",
    PAIRING: "pairing",
    BYE: "bye",
    SUMMARY: "summary",
}

# Roles a node announces in Hello.
ROLE_MEMBER = 0
ROLE_RELAY = 1

# The largest Noise transport payload (65535 minus the 16-byte tag).
MAX_MESSAGE = 65519

# Size limits per message type, in bytes, type byte included.
MAX_SIZE = {
    HELLO: 64,
    INTEREST: 32768,
    RECONCILE: 16384,
    ENTRIES: MAX_MESSAGE,
    ACK: 48,
    PAIRING: 1024,
    BYE: 320,
    SUMMARY: 192,
}

HELLO_DEFAULTS = (1 << 20, MAX_MESSAGE)  # window, max_message when a Hello leaves them out
MAX_INTEREST_LOGS = 128
MAX_ADDRESS = 255
MAX_HEADER = 255
MAX_ENTRY_ITEMS = 1024
MAX_REASON = 32
BYE_OK = "ok"  # (version 2) the common reason is written as an empty one
MAX_BYE_TEXT = 255
MAX_LOG_REF = (1 << 32) - 1

ENTRIES_CONTINUES = 0x01  # flag: the last item continues in the next Entries message

# Summary kinds: the initiator's offer, and the responder's three answers.
SUMMARY_OFFER = 0  # uv count || 8-byte interest fingerprint || 8-byte state fingerprint
SUMMARY_IN_SYNC = 1  # the interest is known and every log's entries are equal
SUMMARY_KNOWN = 2  # the interest is known: the logs are agreed (refs 0, 2, 4, ...), reconcile
SUMMARY_UNKNOWN = 3  # not known here: declare the logs in Interest messages
SUMMARY_FOLDED = 4  # an offer carrying pass 1: uv count || interest fingerprint || its first frame
SUMMARY_FP = 8  # bytes of each Summary fingerprint


class Hello:
    """The first message each side sends once Noise is up."""

    __slots__ = ("max_message", "role", "version", "window")

    def __init__(
        self,
        role: int,
        window: int,
        max_message: int = MAX_MESSAGE,
        version: int = PROTOCOL_VERSION,
    ):
        self.version = version
        self.role = role
        self.window = window
        self.max_message = max_message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hello) and (
            self.version,
            self.role,
            self.window,
            self.max_message,
        ) == (other.version, other.role, other.window, other.max_message)

    def __repr__(self) -> str:
        return "Hello(role=%d, window=%d, max_message=%d, version=%d)" % (
            self.role,
            self.window,
            self.max_message,
            self.version,
        )


class LogDeclaration:
    """One log in an Interest message."""

    __slots__ = ("address", "header", "ref")

    def __init__(self, ref: int, address: str, header: bytes = b"") -> None:
        self.ref = ref
        self.address = address
        self.header = header

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogDeclaration) and (self.ref, self.address, self.header) == (
            other.ref,
            other.address,
            other.header,
        )

    def __repr__(self) -> str:
        return "LogDeclaration(ref=%d, address=%r, header=%d bytes)" % (
            self.ref,
            self.address,
            len(self.header),
        )


class Interest:
    """Logs the sender wants to sync in this session."""

    __slots__ = ("logs",)

    def __init__(self, logs: "list[LogDeclaration]") -> None:
        self.logs = logs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Interest) and self.logs == other.logs

    def __repr__(self) -> str:
        return "Interest(%r)" % (self.logs,)


class Reconcile:
    """One reconciliation message for one log."""

    __slots__ = ("data", "ref")

    def __init__(self, ref: int, data: bytes) -> None:
        self.ref = ref
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reconcile) and (self.ref, self.data) == (other.ref, other.data)

    def __repr__(self) -> str:
        return "Reconcile(ref=%d, %d bytes)" % (self.ref, len(self.data))


class Entries:
    """Entries of one log, as opaque wire items; the last may continue in the next message."""

    __slots__ = ("continues", "items", "ref")

    def __init__(self, ref: int, items: "list[bytes]", continues: bool = False) -> None:
        self.ref = ref
        self.items = items
        self.continues = continues

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entries) and (self.ref, self.items, self.continues) == (
            other.ref,
            other.items,
            other.continues,
        )

    def __repr__(self) -> str:
        return "Entries(ref=%d, %d items, continues=%r)" % (
            self.ref,
            len(self.items),
            self.continues,
        )


class Ack:
    """`stored` entries of log `ref` are durable; `credit` more bytes may be sent."""

    __slots__ = ("credit", "ref", "stored")

    def __init__(self, ref: int, stored: int, credit: int) -> None:
        self.ref = ref
        self.stored = stored
        self.credit = credit

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ack) and (self.ref, self.stored, self.credit) == (
            other.ref,
            other.stored,
            other.credit,
        )

    def __repr__(self) -> str:
        return "Ack(ref=%d, stored=%d, credit=%d)" % (self.ref, self.stored, self.credit)


class Pairing:
    """One step of the pairing exchange (SPAKE2 messages and confirmations)."""

    __slots__ = ("data", "step")

    def __init__(self, step: int, data: bytes) -> None:
        self.step = step
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pairing) and (self.step, self.data) == (other.step, other.data)

    def __repr__(self) -> str:
        return "Pairing(step=%d, %d bytes)" % (self.step, len(self.data))


class Bye:
    """The sender ends the session: `reason` is a short ASCII code, `text` says more."""

    __slots__ = ("reason", "text")

    def __init__(self, reason: str, text: str = "") -> None:
        self.reason = reason
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bye) and (self.reason, self.text) == (other.reason, other.text)

    def __repr__(self) -> str:
        return "Bye(%r, %r)" % (self.reason, self.text)


class Summary:
    """The initiator's interest in a few bytes (`kind` OFFER), or the responder's answer."""

    __slots__ = ("count", "frame", "interest", "kind", "state")

    def __init__(
        self,
        kind: int,
        count: int = 0,
        interest: bytes = b"",
        state: bytes = b"",
        frame: bytes = b"",
    ) -> None:
        self.kind = kind
        self.count = count
        self.interest = interest
        self.state = state
        self.frame = frame  # an offer's first reconciler frame of pass 1 (few logs), or b""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Summary) and (
            self.kind,
            self.count,
            self.interest,
            self.state,
            self.frame,
        ) == (other.kind, other.count, other.interest, other.state, other.frame)

    def __repr__(self) -> str:
        return "Summary(kind=%d, count=%d)" % (self.kind, self.count)


TYPE_CHECKING = False
if TYPE_CHECKING:  # the union of message classes, for annotations only
    Message = Hello | Interest | Reconcile | Entries | Ack | Pairing | Bye | Summary


def _bytes_field(data: bytes) -> bytes:
    return encode_uvarint(len(data)) + data


def _check_ref(ref: int) -> None:
    if type(ref) is not int or ref < 0 or ref > MAX_LOG_REF:
        raise LocalProtocolError("log ref out of range: %r" % (ref,))


def encode_message(message: "Message") -> bytes:
    """Encode one session message (type byte included).

    Raises:
        LocalProtocolError: a field is out of range or the message exceeds its size limit.
    """
    if isinstance(message, Hello):
        mtype = HELLO
        # version 2: trailing fields at their defaults are left out (a 3-byte Hello)
        tail = [message.window, message.max_message]
        while tail and tail[-1] == HELLO_DEFAULTS[len(tail) - 1]:
            tail.pop()
        body = b"".join(encode_uvarint(v) for v in [message.version, message.role, *tail])
    elif isinstance(message, Interest):
        mtype = INTEREST
        if len(message.logs) > MAX_INTEREST_LOGS:
            raise LocalProtocolError("interest lists at most %d logs" % MAX_INTEREST_LOGS)
        parts = [encode_uvarint(len(message.logs))]
        for log in message.logs:
            _check_ref(log.ref)
            address = log.address.encode()
            if len(address) > MAX_ADDRESS or len(log.header) > MAX_HEADER:
                raise LocalProtocolError("log address or header too long")
            parts.append(encode_uvarint(log.ref) + _bytes_field(address) + _bytes_field(log.header))
        body = b"".join(parts)
    elif isinstance(message, Reconcile):
        mtype = RECONCILE
        _check_ref(message.ref)
        body = encode_uvarint(message.ref) + message.data
    elif isinstance(message, Entries):
        mtype = ENTRIES
        _check_ref(message.ref)
        if len(message.items) > MAX_ENTRY_ITEMS:
            raise LocalProtocolError("entries carries at most %d items" % MAX_ENTRY_ITEMS)
        flags = ENTRIES_CONTINUES if message.continues else 0
        parts = [encode_uvarint(message.ref), bytes((flags,)), encode_uvarint(len(message.items))]
        for item in message.items:
            parts.append(_bytes_field(item))
        body = b"".join(parts)
    elif isinstance(message, Ack):
        mtype = ACK
        _check_ref(message.ref)
        body = (
            encode_uvarint(message.ref)
            + encode_uvarint(message.stored)
            + encode_uvarint(message.credit)
        )
    elif isinstance(message, Pairing):
        mtype = PAIRING
        body = encode_uvarint(message.step) + message.data
    elif isinstance(message, Summary):
        mtype = SUMMARY
        folded = message.kind == SUMMARY_OFFER and bool(message.frame)
        body = bytes((SUMMARY_FOLDED if folded else message.kind,))
        if message.kind == SUMMARY_OFFER:
            state = message.frame if folded else message.state  # a frame stands for the state
            if len(message.interest) != SUMMARY_FP or (not folded and len(state) != SUMMARY_FP):
                raise LocalProtocolError("summary fingerprints are %d bytes" % SUMMARY_FP)
            body += encode_uvarint(message.count) + message.interest + state
        elif message.kind not in (SUMMARY_IN_SYNC, SUMMARY_KNOWN, SUMMARY_UNKNOWN):
            raise LocalProtocolError("unknown summary kind %r" % (message.kind,))
    elif isinstance(message, Bye):
        mtype = BYE
        reason = b"" if message.reason == BYE_OK else message.reason.encode()
        text = message.text.encode()
        if len(reason) > MAX_REASON or not message.reason:
            raise LocalProtocolError("bye reason empty or longer than %d bytes" % MAX_REASON)
        if len(text) > MAX_BYE_TEXT:
            text = _truncate_utf8(text, MAX_BYE_TEXT)
        body = _bytes_field(reason) + _bytes_field(text)
    else:
        raise LocalProtocolError("not a session message: %r" % (message,))
    encoded = bytes((mtype,)) + body
    if len(encoded) > MAX_SIZE[mtype]:
        raise LocalProtocolError(
            "%s message of %d bytes exceeds its limit of %d"
            % (TYPE_NAMES[mtype], len(encoded), MAX_SIZE[mtype])
        )
    return encoded


def _truncate_utf8(text: bytes, limit: int) -> bytes:
    cut = text[:limit]
    while cut:  # drop at most 3 bytes of a cut code point
        try:
            cut.decode()
            return cut
        except UnicodeError:
            cut = cut[:-1]
    return cut


class _Reader:
    """Cursor over one message body; every read is bounds-checked."""

    __slots__ = ("data", "name", "pos")

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.pos = 1

    def fail(self, what: str) -> RemoteProtocolError:
        return RemoteProtocolError("%s message: %s at offset %d" % (self.name, what, self.pos))

    def uvarint(self, what: str, limit: int) -> int:
        start = self.pos
        try:
            value, self.pos = decode_uvarint(self.data, self.pos)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(
                "%s message: bad %s: %s" % (self.name, what, exc.message)
            ) from None
        if value > limit:
            self.pos = start
            raise self.fail("%s %d exceeds %d" % (what, value, limit))
        return value

    def byte(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise self.fail("truncated before " + what)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def raw(self, what: str, limit: int) -> bytes:
        length = self.uvarint(what + " length", limit)
        if self.pos + length > len(self.data):
            raise self.fail("%s of %d bytes runs past the end" % (what, length))
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return value

    def text(self, what: str, limit: int, ascii_only: bool = False) -> str:
        start = self.pos
        raw = self.raw(what, limit)
        if ascii_only:
            for b in raw:
                if b < 0x21 or b > 0x7E:
                    self.pos = start
                    raise self.fail("%s is not printable ASCII" % what)
        try:
            return raw.decode()
        except UnicodeError:
            self.pos = start
            raise self.fail("%s is not valid UTF-8" % what) from None

    def fixed(self, what: str, length: int) -> bytes:
        if self.pos + length > len(self.data):
            raise self.fail("truncated before " + what)
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return value

    def rest(self) -> bytes:
        value = self.data[self.pos :]
        self.pos = len(self.data)
        return value

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail("%d trailing bytes" % (len(self.data) - self.pos))


def decode_message(data: bytes) -> "Message":
    """Decode one session message.

    Raises:
        RemoteProtocolError: unknown type, over its size limit, truncated, trailing bytes, a
            count or length over its bound, or bad text; the message names the offset.
    """
    if not data:
        raise RemoteProtocolError("empty session message")
    mtype = data[0]
    name = TYPE_NAMES.get(mtype)
    if name is None:
        raise RemoteProtocolError("unknown session message type 0x%02x at offset 0" % mtype)
    if len(data) > MAX_SIZE[mtype]:
        raise RemoteProtocolError(
            "%s message of %d bytes exceeds its limit of %d" % (name, len(data), MAX_SIZE[mtype]),
            REASON_TOO_LARGE,
        )
    r = _Reader(data, name)
    message: "Message"
    if mtype == HELLO:
        version = r.uvarint("version", 255)
        role = r.uvarint("role", ROLE_RELAY)
        window, max_message = HELLO_DEFAULTS
        if r.pos < len(data):
            window = r.uvarint("window", 1 << 40)
        if r.pos < len(data):
            max_message = r.uvarint("max_message", MAX_MESSAGE)
            if max_message == HELLO_DEFAULTS[1]:
                raise r.fail("max_message at its default is left out")
        elif r.pos == len(data) > 3 and window == HELLO_DEFAULTS[0]:
            raise r.fail("window at its default is left out")
        message = Hello(role, window, max_message, version)
    elif mtype == INTEREST:
        count = r.uvarint("log count", MAX_INTEREST_LOGS)
        logs = []
        for _ in range(count):
            ref = r.uvarint("log ref", MAX_LOG_REF)
            address = r.text("address", MAX_ADDRESS)
            header = r.raw("header", MAX_HEADER)
            logs.append(LogDeclaration(ref, address, header))
        message = Interest(logs)
    elif mtype == RECONCILE:
        ref = r.uvarint("log ref", MAX_LOG_REF)
        message = Reconcile(ref, r.rest())
    elif mtype == ENTRIES:
        ref = r.uvarint("log ref", MAX_LOG_REF)
        flags = r.byte("flags")
        if flags & ~ENTRIES_CONTINUES:
            r.pos -= 1
            raise r.fail("unknown flags 0x%02x" % flags)
        count = r.uvarint("item count", MAX_ENTRY_ITEMS)
        if count == 0 and flags:
            raise r.fail("continuation flag without an item")
        items = [r.raw("item", MAX_MESSAGE) for _ in range(count)]
        message = Entries(ref, items, bool(flags & ENTRIES_CONTINUES))
    elif mtype == ACK:
        ref = r.uvarint("log ref", MAX_LOG_REF)
        stored = r.uvarint("stored count", 1 << 32)
        credit = r.uvarint("credit", 1 << 40)
        message = Ack(ref, stored, credit)
    elif mtype == PAIRING:
        step = r.uvarint("step", 255)
        message = Pairing(step, r.rest())
    elif mtype == SUMMARY:
        kind = r.byte("kind")
        if kind in (SUMMARY_OFFER, SUMMARY_FOLDED):
            count = r.uvarint("log count", MAX_LOG_REF)
            interest = r.fixed("interest fingerprint", SUMMARY_FP)
            if kind == SUMMARY_OFFER:
                message = Summary(kind, count, interest, r.fixed("state fingerprint", SUMMARY_FP))
            elif r.pos == len(data):
                raise r.fail("a folded offer without its frame")
            else:
                message = Summary(SUMMARY_OFFER, count, interest, b"", r.rest())
        elif kind in (SUMMARY_IN_SYNC, SUMMARY_KNOWN, SUMMARY_UNKNOWN):
            message = Summary(kind)
        else:
            r.pos -= 1
            raise r.fail("unknown summary kind %d" % kind)
    else:  # BYE
        reason = r.text("reason", MAX_REASON, ascii_only=True)
        if reason == BYE_OK:
            raise r.fail("reason ok is written empty")
        message = Bye(reason or BYE_OK, r.text("text", MAX_BYE_TEXT))
    r.end()
    return message
