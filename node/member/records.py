"""What the member client hands back: messages as `read` lists them, process counts, sync logs."""

from typing import Any

from node.crypto.keys import ReplicationGroup
from node.sync.wire import log_header


class Message:
    """One message as `read` returns it.

    Attributes:
        cid: the log entry CID (base32); clock_time: its Lamport time.
        author: the author's announced name, else "member:<16 hex>" / "device:<16 hex>".
        member: hex of the author's member key ("" if its GroupMemberDeviceAdded is unknown).
        device: hex of the author's device key in this group.
        sent_date: milliseconds since the epoch, as the author's device claims.
        body: the text. mine: written by this device.
        unreadable: the entry could not be opened (a member wrote junk, or something hostile
            holding the group key did); `body` then says why.
    """

    __slots__ = (
        "author",
        "body",
        "cid",
        "clock_time",
        "device",
        "member",
        "mine",
        "sent_date",
        "unreadable",
    )

    def __init__(
        self,
        cid: str,
        clock_time: int,
        author: str,
        member: str,
        device: str,
        sent_date: int,
        body: str,
        mine: bool,
        unreadable: bool = False,
    ) -> None:
        self.cid = cid
        self.clock_time = clock_time
        self.author = author
        self.member = member
        self.device = device
        self.sent_date = sent_date
        self.body = body
        self.mine = mine
        self.unreadable = unreadable

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's --json form)."""
        return {
            "cid": self.cid,
            "lamport": self.clock_time,
            "author": self.author,
            "member": self.member,
            "device": self.device,
            "sent_ms": self.sent_date,
            "body": self.body,
            "mine": self.mine,
            "unreadable": self.unreadable,
        }

    def __repr__(self) -> str:
        return "Message(%s: %r)" % (self.author, self.body)


class ProcessReport:
    """What one process() call did (counts)."""

    __slots__ = (
        "chain_keys_received",
        "chain_keys_sent",
        "dropped",
        "opened",
        "queued",
        "rejected",
        "unreadable",
    )

    def __init__(self) -> None:
        self.opened = 0  # messages opened for the first time
        self.queued = 0  # messages waiting for a chain key
        self.dropped = 0  # messages pushed out of the bounded queue (offered again next time)
        self.rejected = 0  # entries or events that did not open or verify, or are unreadable
        self.unreadable = 0  # of those, messages-log entries kept to be shown as unreadable
        self.chain_keys_sent = 0
        self.chain_keys_received = 0

    def __repr__(self) -> str:
        return "ProcessReport(opened=%d, queued=%d, dropped=%d, rejected=%d, keys %d/%d)" % (
            self.opened,
            self.queued,
            self.dropped,
            self.rejected,
            self.chain_keys_sent,
            self.chain_keys_received,
        )


class SyncLog:
    """One log the member wants a relay to carry (the `peer sync` hook's unit).

    Attributes:
        address: the store address (the entries' log id).
        sign_pub: the group signing public key every entry is signed with.
        group_pk, store_type: what the address is made of.
        identity_signature: Sign(group signing key, utf8(hex(sign_pub))), the identity signature
            every entry of the group carries (Ed25519 is deterministic); with sign_pub it makes
            the session's per-log header (`header`, node.sync.wire.log_header).
        replication: the zero-knowledge group record (public_key, sign_pub, link_key,
            link_key_sig) -- what a relay may be given; never the secret.
    """

    __slots__ = (
        "address",
        "group_pk",
        "identity_signature",
        "replication",
        "sign_pub",
        "store_type",
    )

    def __init__(
        self,
        address: str,
        sign_pub: bytes,
        group_pk: bytes,
        store_type: str,
        identity_signature: bytes,
        replication: ReplicationGroup,
    ) -> None:
        self.address = address
        self.sign_pub = sign_pub
        self.group_pk = group_pk
        self.store_type = store_type
        self.identity_signature = identity_signature
        self.replication = replication

    @property
    def header(self) -> bytes:
        """The session's per-log header: 0x01 || sign_pub || identity signature."""
        return log_header(self.sign_pub, self.identity_signature)

    def __repr__(self) -> str:
        return "SyncLog(%s)" % self.address
