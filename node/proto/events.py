# The events a Session hands its caller (L0), all in the past tense: what happened on the link.
# node.proto.session re-exports them; see it for when each is produced.

from node.proto.messages import Hello, LogDeclaration, Summary


class HandshakeCompleted:
    """Noise is up: the peer's static X25519 key and the handshake hash (for channel binding)."""

    __slots__ = ("handshake_hash", "remote_static")

    def __init__(self, remote_static: bytes, handshake_hash: bytes) -> None:
        self.remote_static = remote_static
        self.handshake_hash = handshake_hash

    def __repr__(self) -> str:
        return "HandshakeCompleted(remote_static=%s…)" % self.remote_static[:4].hex()


class SessionOpened:
    """The peer's Hello arrived: the session is OPEN."""

    __slots__ = ("hello",)

    def __init__(self, hello: Hello) -> None:
        self.hello = hello

    def __repr__(self) -> str:
        return "SessionOpened(%r)" % (self.hello,)


class InterestReceived:
    """The peer declared logs it wants to sync."""

    __slots__ = ("logs",)

    def __init__(self, logs: "list[LogDeclaration]") -> None:
        self.logs = logs

    def __repr__(self) -> str:
        return "InterestReceived(%r)" % (self.logs,)


class ReconcileReceived:
    """A reconciliation message for log `ref`."""

    __slots__ = ("data", "ref")

    def __init__(self, ref: int, data: bytes) -> None:
        self.ref = ref
        self.data = data

    def __repr__(self) -> str:
        return "ReconcileReceived(ref=%d, %d bytes)" % (self.ref, len(self.data))


class EntriesReceived:
    """Complete entry items for log `ref`; `size` is the credit they consumed."""

    __slots__ = ("items", "ref", "size")

    def __init__(self, ref: int, items: "list[bytes]", size: int) -> None:
        self.ref = ref
        self.items = items
        self.size = size

    def __repr__(self) -> str:
        return "EntriesReceived(ref=%d, %d items, %d bytes)" % (
            self.ref,
            len(self.items),
            self.size,
        )


class AckReceived:
    """The peer stored `stored` entries of log `ref` and granted `credit` more bytes."""

    __slots__ = ("credit", "ref", "stored")

    def __init__(self, ref: int, stored: int, credit: int) -> None:
        self.ref = ref
        self.stored = stored
        self.credit = credit

    def __repr__(self) -> str:
        return "AckReceived(ref=%d, stored=%d, credit=%d)" % (self.ref, self.stored, self.credit)


class PairingReceived:
    """One pairing step from the peer."""

    __slots__ = ("data", "step")

    def __init__(self, step: int, data: bytes) -> None:
        self.step = step
        self.data = data

    def __repr__(self) -> str:
        return "PairingReceived(step=%d, %d bytes)" % (self.step, len(self.data))


class SummaryReceived:
    """The peer's Summary (node.proto.messages.Summary: an offer, or the answer to ours)."""

    __slots__ = ("summary",)

    def __init__(self, summary: "Summary") -> None:
        self.summary = summary

    def __repr__(self) -> str:
        return "SummaryReceived(%r)" % (self.summary,)


class SessionClosed:
    """The session ended. `by_peer`: the peer said Bye (or dropped the link) first."""

    __slots__ = ("by_peer", "reason", "text")

    def __init__(self, reason: str, text: str, by_peer: bool) -> None:
        self.reason = reason
        self.text = text
        self.by_peer = by_peer

    def __repr__(self) -> str:
        return "SessionClosed(%r, %r, by_peer=%r)" % (self.reason, self.text, self.by_peer)
