# Weshnet envelopes and metadata events (L0, member side; the relay never opens them).
#
# Theory of operation
# -------------------
# Field numbers are weshnet's (berty/weshnet api/protocol/protocoltypes.proto, checked against
# the stored copy at commit 4aa7314e; see docs/protocol.md). Every function takes
# keys as raw bytes and a Suite; nothing here keeps state (the ratchet does, node.crypto.ratchet).
#
# Metadata log (berty-wesh.md §3.1): an entry payload is
#     GroupEnvelope{nonce = 24 random bytes, event = secretbox(proto(GroupMetadata), group.secret)}
#     GroupMetadata{event_type, payload = proto(event), sig, protocol_metadata = {} (present)}
# and the signature rules are: device-signed events verify(event.device_pk, payload, sig);
# GroupMemberDeviceAdded additionally verify(member_pk, device_pk, member_sig);
# MultiMemberGroupInitialMemberAnnounced verify(group_pk, payload, sig).
#
# Chain keys (§2.3): GroupDeviceChainKeyAdded.payload =
#     box(proto(DeviceChainKey), nonce = group_pk[:24], pub = mont(dest MEMBER pk),
#         priv = mont(sender DEVICE sk))
#
# Messages (§2.2): plaintext = proto(EncryptedMessage{plaintext, protocol_metadata = {}}),
# sig = sign(device_sk, plaintext), message = secretbox(plaintext, BE64(counter) || 0^16, mk),
# MessageEnvelope{message_headers = secretbox(proto(MessageHeaders), nonce, group.secret),
# message, nonce}. Opening is two steps because the message key depends on the headers:
# `open_message_headers` (group secret only) then `open_message_payload` (message key).

from node.crypto import protobuf as pb
from node.errors import REASON_UNEXPECTED, IntegrityError, LocalProtocolError, RemoteProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from node.crypto.api import Suite

KEY_SIZE = 32
NONCE_SIZE = 24
SIGNATURE_SIZE = 64
MAX_ENVELOPE_BYTES = 1024 * 1024  # an entry payload is far smaller (store default 256 KiB)

# EventType (protocoltypes.proto enum EventType)
EVENT_UNDEFINED = 0
EVENT_GROUP_MEMBER_DEVICE_ADDED = 1
EVENT_GROUP_DEVICE_CHAIN_KEY_ADDED = 2
EVENT_ACCOUNT_GROUP_JOINED = 101
EVENT_ACCOUNT_GROUP_LEFT = 102
EVENT_ACCOUNT_CONTACT_REQUEST_DISABLED = 103
EVENT_ACCOUNT_CONTACT_REQUEST_ENABLED = 104
EVENT_ACCOUNT_CONTACT_REQUEST_REFERENCE_RESET = 105
EVENT_ACCOUNT_CONTACT_REQUEST_OUTGOING_ENQUEUED = 106
EVENT_ACCOUNT_CONTACT_REQUEST_OUTGOING_SENT = 107
EVENT_ACCOUNT_CONTACT_REQUEST_INCOMING_RECEIVED = 108
EVENT_ACCOUNT_CONTACT_REQUEST_INCOMING_DISCARDED = 109
EVENT_ACCOUNT_CONTACT_REQUEST_INCOMING_ACCEPTED = 110
EVENT_ACCOUNT_CONTACT_BLOCKED = 111
EVENT_ACCOUNT_CONTACT_UNBLOCKED = 112
EVENT_CONTACT_ALIAS_KEY_ADDED = 201
EVENT_MULTI_MEMBER_GROUP_ALIAS_RESOLVER_ADDED = 301
EVENT_MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED = 302
EVENT_MULTI_MEMBER_GROUP_ADMIN_ROLE_GRANTED = 303
EVENT_GROUP_REPLICATING = 403
EVENT_ACCOUNT_VERIFIED_CREDENTIAL_REGISTERED = 500
EVENT_GROUP_METADATA_PAYLOAD_SENT = 1001

# Events whose payload has device_pk = 1 and is signed by that device.
DEVICE_SIGNED_EVENTS = (
    EVENT_GROUP_MEMBER_DEVICE_ADDED,  # device_pk is field 2 there; handled apart
    EVENT_GROUP_DEVICE_CHAIN_KEY_ADDED,
    EVENT_ACCOUNT_GROUP_JOINED,
    EVENT_ACCOUNT_GROUP_LEFT,
    EVENT_ACCOUNT_CONTACT_REQUEST_DISABLED,
    EVENT_ACCOUNT_CONTACT_REQUEST_ENABLED,
    EVENT_ACCOUNT_CONTACT_REQUEST_REFERENCE_RESET,
    EVENT_ACCOUNT_CONTACT_REQUEST_OUTGOING_ENQUEUED,
    EVENT_ACCOUNT_CONTACT_REQUEST_OUTGOING_SENT,
    EVENT_ACCOUNT_CONTACT_REQUEST_INCOMING_RECEIVED,
    EVENT_ACCOUNT_CONTACT_REQUEST_INCOMING_DISCARDED,
    EVENT_ACCOUNT_CONTACT_REQUEST_INCOMING_ACCEPTED,
    EVENT_ACCOUNT_CONTACT_BLOCKED,
    EVENT_ACCOUNT_CONTACT_UNBLOCKED,
    EVENT_CONTACT_ALIAS_KEY_ADDED,
    EVENT_MULTI_MEMBER_GROUP_ALIAS_RESOLVER_ADDED,
    EVENT_MULTI_MEMBER_GROUP_ADMIN_ROLE_GRANTED,
    EVENT_GROUP_REPLICATING,
    EVENT_ACCOUNT_VERIFIED_CREDENTIAL_REGISTERED,
    EVENT_GROUP_METADATA_PAYLOAD_SENT,
)

# ---------------------------------------------------------------------------------------------
# Schemas (weshnet.protocol.v1)

PROTOCOL_METADATA = pb.Schema("ProtocolMetadata", [])  # field 1 reserved
ENCRYPTED_MESSAGE = pb.Schema(
    "EncryptedMessage",
    [
        pb.Field(1, "plaintext", pb.BYTES),
        pb.Field(2, "protocol_metadata", pb.MESSAGE, message=PROTOCOL_METADATA),
    ],
)
MESSAGE_HEADERS = pb.Schema(
    "MessageHeaders",
    [
        pb.Field(1, "counter", pb.UINT64),
        pb.Field(2, "device_pk", pb.BYTES),
        pb.Field(3, "sig", pb.BYTES),
        pb.map_field(4, "metadata", pb.STRING, pb.STRING),
    ],
)
MESSAGE_ENVELOPE = pb.Schema(
    "MessageEnvelope",
    [
        pb.Field(1, "message_headers", pb.BYTES),
        pb.Field(2, "message", pb.BYTES),
        pb.Field(3, "nonce", pb.BYTES),
    ],  # 4 reserved
)
DEVICE_CHAIN_KEY = pb.Schema(
    "DeviceChainKey", [pb.Field(1, "chain_key", pb.BYTES), pb.Field(2, "counter", pb.UINT64)]
)
GROUP_ENVELOPE = pb.Schema(
    "GroupEnvelope", [pb.Field(1, "nonce", pb.BYTES), pb.Field(2, "event", pb.BYTES)]
)  # 3 reserved
GROUP_METADATA = pb.Schema(
    "GroupMetadata",
    [
        pb.Field(1, "event_type", pb.ENUM),
        pb.Field(2, "payload", pb.BYTES),
        pb.Field(3, "sig", pb.BYTES),
        pb.Field(4, "protocol_metadata", pb.MESSAGE, message=PROTOCOL_METADATA),
    ],
)
GROUP_MEMBER_DEVICE_ADDED = pb.Schema(
    "GroupMemberDeviceAdded",
    [
        pb.Field(1, "member_pk", pb.BYTES),
        pb.Field(2, "device_pk", pb.BYTES),
        pb.Field(3, "member_sig", pb.BYTES),
    ],
)
GROUP_DEVICE_CHAIN_KEY_ADDED = pb.Schema(
    "GroupDeviceChainKeyAdded",
    [
        pb.Field(1, "device_pk", pb.BYTES),
        pb.Field(2, "dest_member_pk", pb.BYTES),
        pb.Field(3, "payload", pb.BYTES),
    ],
)
MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED = pb.Schema(
    "MultiMemberGroupInitialMemberAnnounced", [pb.Field(1, "member_pk", pb.BYTES)]
)
GROUP_METADATA_PAYLOAD_SENT = pb.Schema(
    "GroupMetadataPayloadSent",
    [pb.Field(1, "device_pk", pb.BYTES), pb.Field(2, "message", pb.BYTES)],
)
# Any other device-signed event: only device_pk = 1 matters here; other fields stay in `payload`.
DEVICE_SIGNED_EVENT = pb.Schema("DeviceSignedEvent", [pb.Field(1, "device_pk", pb.BYTES)])

EVENT_SCHEMAS = {
    EVENT_GROUP_MEMBER_DEVICE_ADDED: GROUP_MEMBER_DEVICE_ADDED,
    EVENT_GROUP_DEVICE_CHAIN_KEY_ADDED: GROUP_DEVICE_CHAIN_KEY_ADDED,
    EVENT_MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED: MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED,
    EVENT_GROUP_METADATA_PAYLOAD_SENT: GROUP_METADATA_PAYLOAD_SENT,
}


def _need(name: str, value: bytes, size: int) -> None:
    """Refuse a wrongly sized key, nonce or signature from the peer."""
    if len(value) != size:
        raise IntegrityError("%s has %d bytes, expected %d" % (name, len(value), size))


def _need_local(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != size:
        raise LocalProtocolError("%s must be %d bytes" % (name, size))


def counter_nonce(counter: int) -> bytes:
    """weshnet's uint64AsNonce: BE64(counter) followed by 16 zero bytes."""
    if not 0 <= counter < 1 << 64:
        raise LocalProtocolError("counter out of range: %d" % counter)
    return counter.to_bytes(8, "big") + bytes(16)


# ---------------------------------------------------------------------------------------------
# Metadata events


class GroupEvent:
    """An opened metadata event.

    Attributes:
        event_type: the EventType number.
        payload: the exact event bytes the signature covers.
        sig: the 64-byte signature.
        fields: the decoded event (for the types in EVENT_SCHEMAS and device_pk of the other
            device-signed types).
        signer: the public key the signature was checked against (device, or group for 302).
    """

    __slots__ = ("event_type", "fields", "payload", "sig", "signer")

    def __init__(
        self, event_type: int, payload: bytes, sig: bytes, fields: "dict[str, Any]", signer: bytes
    ) -> None:
        self.event_type = event_type
        self.payload = payload
        self.sig = sig
        self.fields = fields
        self.signer = signer

    def __repr__(self) -> str:
        return "GroupEvent(%d, %r)" % (self.event_type, self.fields)


def member_device_added(
    suite: "Suite", member_sk: bytes, device_sk: bytes
) -> "tuple[bytes, bytes]":
    """(payload, sig) of GroupMemberDeviceAdded: member signs device pk, device signs payload."""
    member_pk = member_sk[32:]
    device_pk = device_sk[32:]
    member_sig = suite.ed25519_sign(member_sk, device_pk)
    payload = pb.encode(
        GROUP_MEMBER_DEVICE_ADDED,
        {"member_pk": member_pk, "device_pk": device_pk, "member_sig": member_sig},
    )
    return payload, suite.ed25519_sign(device_sk, payload)


def device_chain_key_added(
    suite: "Suite",
    group_pk: bytes,
    device_sk: bytes,
    dest_member_pk: bytes,
    chain_key: bytes,
    counter: int,
) -> "tuple[bytes, bytes]":
    """(payload, sig) of GroupDeviceChainKeyAdded carrying our chain key boxed for one member."""
    boxed = seal_chain_key(suite, group_pk, device_sk, dest_member_pk, chain_key, counter)
    payload = pb.encode(
        GROUP_DEVICE_CHAIN_KEY_ADDED,
        {"device_pk": device_sk[32:], "dest_member_pk": dest_member_pk, "payload": boxed},
    )
    return payload, suite.ed25519_sign(device_sk, payload)


def initial_member_announced(
    suite: "Suite", group_sk: bytes, member_pk: bytes
) -> "tuple[bytes, bytes]":
    """(payload, sig) of MultiMemberGroupInitialMemberAnnounced, signed by the group key."""
    payload = pb.encode(MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED, {"member_pk": member_pk})
    return payload, suite.ed25519_sign(group_sk, payload)


def metadata_payload_sent(
    suite: "Suite", device_sk: bytes, message: bytes
) -> "tuple[bytes, bytes]":
    """(payload, sig) of GroupMetadataPayloadSent (AppMetadataSend)."""
    payload = pb.encode(
        GROUP_METADATA_PAYLOAD_SENT, {"device_pk": device_sk[32:], "message": message}
    )
    return payload, suite.ed25519_sign(device_sk, payload)


def seal_group_event(
    suite: "Suite", group_secret: bytes, event_type: int, payload: bytes, sig: bytes
) -> bytes:
    """The GroupEnvelope bytes (a metadata log entry's payload) for one signed event."""
    _need_local("group secret", group_secret, KEY_SIZE)
    nonce = suite.random_bytes(NONCE_SIZE)
    clear = pb.encode(
        GROUP_METADATA,
        {"event_type": event_type, "payload": payload, "sig": sig, "protocol_metadata": {}},
    )
    return pb.encode(
        GROUP_ENVELOPE, {"nonce": nonce, "event": suite.secretbox_seal(group_secret, nonce, clear)}
    )


def _verify(suite: "Suite", public_key: bytes, message: bytes, sig: bytes, what: str) -> None:
    _need(what + " key", public_key, KEY_SIZE)
    _need(what + " signature", sig, SIGNATURE_SIZE)
    if not suite.ed25519_verify(public_key, message, sig):
        raise IntegrityError("%s signature does not verify" % what)


def open_group_event(
    suite: "Suite", group_pk: bytes, group_secret: bytes, envelope: bytes
) -> GroupEvent:
    """Open a GroupEnvelope and check its signatures (berty-wesh.md §3.1).

    Raises:
        IntegrityError: the box does not open, or a key, signature or size is wrong.
        RemoteProtocolError: malformed protobuf, or an event type we do not know (reason
            unexpected; callers may skip such events).
    """
    _need_local("group secret", group_secret, KEY_SIZE)
    outer = pb.decode(GROUP_ENVELOPE, envelope, MAX_ENVELOPE_BYTES)
    _need("group envelope nonce", outer["nonce"], NONCE_SIZE)
    clear = suite.secretbox_open(group_secret, outer["nonce"], outer["event"])
    meta = pb.decode(GROUP_METADATA, clear)
    event_type = meta["event_type"]
    payload = meta["payload"]
    sig = meta["sig"]
    if event_type == EVENT_MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED:
        fields = pb.decode(MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED, payload)
        _verify(suite, group_pk, payload, sig, "group")
        return GroupEvent(event_type, payload, sig, fields, group_pk)
    if event_type not in DEVICE_SIGNED_EVENTS:
        raise RemoteProtocolError(
            "unsupported metadata event type %d" % event_type, REASON_UNEXPECTED
        )
    fields = pb.decode(EVENT_SCHEMAS.get(event_type, DEVICE_SIGNED_EVENT), payload)
    device_pk = fields["device_pk"]
    _verify(suite, device_pk, payload, sig, "device")
    if event_type == EVENT_GROUP_MEMBER_DEVICE_ADDED:
        _verify(suite, fields["member_pk"], device_pk, fields["member_sig"], "member")
    return GroupEvent(event_type, payload, sig, fields, device_pk)


# ---------------------------------------------------------------------------------------------
# Chain keys


def seal_chain_key(
    suite: "Suite",
    group_pk: bytes,
    sender_device_sk: bytes,
    dest_member_pk: bytes,
    chain_key: bytes,
    counter: int,
) -> bytes:
    """encryptDeviceChainKey: box(proto(DeviceChainKey)) from our device to a member."""
    _need_local("group public key", group_pk, KEY_SIZE)
    _need_local("chain key", chain_key, KEY_SIZE)
    clear = pb.encode(DEVICE_CHAIN_KEY, {"chain_key": chain_key, "counter": counter})
    return suite.box_seal(
        suite.ed25519_pk_to_x25519(dest_member_pk),
        suite.ed25519_sk_to_x25519(sender_device_sk),
        group_pk[:NONCE_SIZE],
        clear,
    )


def open_chain_key(
    suite: "Suite", group_pk: bytes, own_member_sk: bytes, sender_device_pk: bytes, boxed: bytes
) -> "tuple[bytes, int]":
    """decryptDeviceChainKey: (chain_key, counter) sent to our member by `sender_device_pk`.

    Raises:
        IntegrityError: the box does not open, or the chain key is not 32 bytes.
    """
    _need_local("group public key", group_pk, KEY_SIZE)
    _need("sender device key", sender_device_pk, KEY_SIZE)
    clear = suite.box_open(
        suite.ed25519_pk_to_x25519(sender_device_pk),
        suite.ed25519_sk_to_x25519(own_member_sk),
        group_pk[:NONCE_SIZE],
        boxed,
    )
    fields = pb.decode(DEVICE_CHAIN_KEY, clear)
    _need("chain key", fields["chain_key"], KEY_SIZE)
    return fields["chain_key"], fields["counter"]


# ---------------------------------------------------------------------------------------------
# Messages


class SealedMessage:
    """A MessageEnvelope whose headers are open but whose message is not.

    Attributes:
        counter, device_pk, sig, metadata: the MessageHeaders fields.
        ciphertext: MessageEnvelope.message (secretbox under the message key).
    """

    __slots__ = ("ciphertext", "counter", "device_pk", "metadata", "sig")

    def __init__(
        self,
        counter: int,
        device_pk: bytes,
        sig: bytes,
        metadata: "dict[str, str]",
        ciphertext: bytes,
    ) -> None:
        self.counter = counter
        self.device_pk = device_pk
        self.sig = sig
        self.metadata = metadata
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return "SealedMessage(counter=%d, device=%s)" % (self.counter, self.device_pk.hex()[:16])


def seal_message(
    suite: "Suite",
    group_secret: bytes,
    device_sk: bytes,
    counter: int,
    message_key: bytes,
    plaintext: bytes,
    metadata: "dict[str, str] | None" = None,
) -> bytes:
    """sealEnvelope (berty-wesh.md §2.2 steps 1-5): the MessageEnvelope bytes.

    Args:
        counter: the message counter (n + 1 for a sending chain at n).
        message_key: mk(CK_n) from the ratchet.
        plaintext: the application bytes (EncryptedMessage.plaintext).
        metadata: MessageHeaders.metadata (weshnet leaves it empty).
    """
    _need_local("group secret", group_secret, KEY_SIZE)
    _need_local("message key", message_key, KEY_SIZE)
    clear = pb.encode(ENCRYPTED_MESSAGE, {"plaintext": plaintext, "protocol_metadata": {}})
    sig = suite.ed25519_sign(device_sk, clear)
    message = suite.secretbox_seal(message_key, counter_nonce(counter), clear)
    headers = pb.encode(
        MESSAGE_HEADERS,
        {"counter": counter, "device_pk": device_sk[32:], "sig": sig, "metadata": metadata or {}},
    )
    nonce = suite.random_bytes(NONCE_SIZE)
    return pb.encode(
        MESSAGE_ENVELOPE,
        {
            "message_headers": suite.secretbox_seal(group_secret, nonce, headers),
            "message": message,
            "nonce": nonce,
        },
    )


def open_message_headers(suite: "Suite", group_secret: bytes, envelope: bytes) -> SealedMessage:
    """Open the headers of a MessageEnvelope with the group secret.

    Raises:
        IntegrityError: the headers box does not open, or a size is wrong.
        RemoteProtocolError: malformed protobuf.
    """
    _need_local("group secret", group_secret, KEY_SIZE)
    outer = pb.decode(MESSAGE_ENVELOPE, envelope, MAX_ENVELOPE_BYTES)
    _need("message envelope nonce", outer["nonce"], NONCE_SIZE)
    headers = pb.decode(
        MESSAGE_HEADERS,
        suite.secretbox_open(group_secret, outer["nonce"], outer["message_headers"]),
    )
    _need("message device key", headers["device_pk"], KEY_SIZE)
    _need("message signature", headers["sig"], SIGNATURE_SIZE)
    if headers["counter"] == 0:
        raise IntegrityError("message counter 0 (counters start at 1)")
    return SealedMessage(
        headers["counter"],
        headers["device_pk"],
        headers["sig"],
        headers["metadata"],
        outer["message"],
    )


def open_message_payload(
    suite: "Suite", sealed: SealedMessage, message_key: bytes, verify: bool = True
) -> bytes:
    """Decrypt the message with its key, check the device signature, return the app bytes.

    Args:
        verify: check the signature (weshnet checks it only on first decryption; re-reads by CID
            may skip it since the key alone authenticates the box).

    Raises:
        IntegrityError: the box does not open or the signature does not verify.
        RemoteProtocolError: the EncryptedMessage inside is malformed.
    """
    clear = suite.secretbox_open(message_key, counter_nonce(sealed.counter), sealed.ciphertext)
    if verify and not suite.ed25519_verify(sealed.device_pk, clear, sealed.sig):
        raise IntegrityError("message signature does not verify (counter %d)" % sealed.counter)
    plaintext: bytes = pb.decode(ENCRYPTED_MESSAGE, clear)["plaintext"]
    return plaintext
