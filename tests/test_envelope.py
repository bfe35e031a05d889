"""node.crypto.envelope and node.crypto.protobuf against the `protobuf` package.

Message classes are built at run time from a FileDescriptorProto carrying weshnet's field
numbers (no protoc): our encoding must be byte-identical to protobuf's deterministic
serialization, and each side must read the other's bytes.
"""

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from node.crypto import envelope as env
from node.crypto import protobuf as pb
from node.crypto._nacl import NaclSuite
from node.errors import IntegrityError, RemoteProtocolError

T = descriptor_pb2.FieldDescriptorProto
SUITE = NaclSuite()

# (message name, [(number, name, type, label, type_name)])
MESSAGES = {
    "ProtocolMetadata": [],
    "EncryptedMessage": [
        (1, "plaintext", T.TYPE_BYTES, None),
        (2, "protocol_metadata", T.TYPE_MESSAGE, ".weshtest.ProtocolMetadata"),
    ],
    "MessageHeaders": [
        (1, "counter", T.TYPE_UINT64, None),
        (2, "device_pk", T.TYPE_BYTES, None),
        (3, "sig", T.TYPE_BYTES, None),
        (4, "metadata", "map", ".weshtest.MessageHeaders.MetadataEntry"),
    ],
    "MessageEnvelope": [
        (1, "message_headers", T.TYPE_BYTES, None),
        (2, "message", T.TYPE_BYTES, None),
        (3, "nonce", T.TYPE_BYTES, None),
    ],
    "DeviceChainKey": [(1, "chain_key", T.TYPE_BYTES, None), (2, "counter", T.TYPE_UINT64, None)],
    "GroupEnvelope": [(1, "nonce", T.TYPE_BYTES, None), (2, "event", T.TYPE_BYTES, None)],
    "GroupMetadata": [
        (1, "event_type", T.TYPE_ENUM, ".weshtest.EventType"),
        (2, "payload", T.TYPE_BYTES, None),
        (3, "sig", T.TYPE_BYTES, None),
        (4, "protocol_metadata", T.TYPE_MESSAGE, ".weshtest.ProtocolMetadata"),
    ],
    "GroupMemberDeviceAdded": [
        (1, "member_pk", T.TYPE_BYTES, None),
        (2, "device_pk", T.TYPE_BYTES, None),
        (3, "member_sig", T.TYPE_BYTES, None),
    ],
    "GroupDeviceChainKeyAdded": [
        (1, "device_pk", T.TYPE_BYTES, None),
        (2, "dest_member_pk", T.TYPE_BYTES, None),
        (3, "payload", T.TYPE_BYTES, None),
    ],
    "MultiMemberGroupInitialMemberAnnounced": [(1, "member_pk", T.TYPE_BYTES, None)],
    "GroupMetadataPayloadSent": [
        (1, "device_pk", T.TYPE_BYTES, None),
        (2, "message", T.TYPE_BYTES, None),
    ],
}
OURS = {
    "EncryptedMessage": env.ENCRYPTED_MESSAGE,
    "MessageHeaders": env.MESSAGE_HEADERS,
    "MessageEnvelope": env.MESSAGE_ENVELOPE,
    "DeviceChainKey": env.DEVICE_CHAIN_KEY,
    "GroupEnvelope": env.GROUP_ENVELOPE,
    "GroupMetadata": env.GROUP_METADATA,
    "GroupMemberDeviceAdded": env.GROUP_MEMBER_DEVICE_ADDED,
    "GroupDeviceChainKeyAdded": env.GROUP_DEVICE_CHAIN_KEY_ADDED,
    "MultiMemberGroupInitialMemberAnnounced": env.MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED,
    "GroupMetadataPayloadSent": env.GROUP_METADATA_PAYLOAD_SENT,
}
EVENT_TYPES = {
    "EventTypeUndefined": 0,
    "EventTypeGroupMemberDeviceAdded": 1,
    "EventTypeGroupDeviceChainKeyAdded": 2,
    "EventTypeMultiMemberGroupInitialMemberAnnounced": 302,
    "EventTypeGroupMetadataPayloadSent": 1001,
}


def _build_classes() -> dict[str, type]:
    fd = descriptor_pb2.FileDescriptorProto(name="weshtest.proto", package="weshtest")
    fd.syntax = "proto3"
    enum = fd.enum_type.add(name="EventType")
    for name, number in EVENT_TYPES.items():
        enum.value.add(name=name, number=number)
    for msg_name, fields in MESSAGES.items():
        msg = fd.message_type.add(name=msg_name)
        for number, name, kind, type_name in fields:
            f = msg.field.add(name=name, number=number, label=T.LABEL_OPTIONAL)
            if kind == "map":
                entry = msg.nested_type.add(name="MetadataEntry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
                entry.field.add(name="value", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
                f.label = T.LABEL_REPEATED
                f.type = T.TYPE_MESSAGE
                f.type_name = type_name
            else:
                f.type = kind
                if type_name:
                    f.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName("weshtest." + name))
        for name in MESSAGES
    }


CLASSES = _build_classes()

SAMPLES = {
    "EncryptedMessage": [
        {"plaintext": b"hello", "protocol_metadata": {}},
        {"plaintext": b""},
        {"plaintext": b"\x00" * 300, "protocol_metadata": {}},
    ],
    "MessageHeaders": [
        {"counter": 1, "device_pk": b"d" * 32, "sig": b"s" * 64},
        {
            "counter": (1 << 64) - 1,
            "device_pk": b"d" * 32,
            "metadata": {"b": "2", "a": "", "é": "x"},
        },
        {"metadata": {"": ""}},
    ],
    "MessageEnvelope": [{"message_headers": b"h" * 90, "message": b"m" * 200, "nonce": b"n" * 24}],
    "DeviceChainKey": [
        {"chain_key": b"k" * 32, "counter": 0},
        {"chain_key": b"k" * 32, "counter": 7},
    ],
    "GroupEnvelope": [{"nonce": b"n" * 24, "event": b"e" * 150}],
    "GroupMetadata": [
        {"event_type": 1, "payload": b"p", "sig": b"s" * 64, "protocol_metadata": {}},
        {"event_type": 1001, "payload": b"p" * 200},
        {"event_type": 302, "protocol_metadata": {}},
    ],
    "GroupMemberDeviceAdded": [
        {"member_pk": b"m" * 32, "device_pk": b"d" * 32, "member_sig": b"s" * 64}
    ],
    "GroupDeviceChainKeyAdded": [
        {"device_pk": b"d" * 32, "dest_member_pk": b"m" * 32, "payload": b"x" * 66}
    ],
    "MultiMemberGroupInitialMemberAnnounced": [{"member_pk": b"m" * 32}, {}],
    "GroupMetadataPayloadSent": [{"device_pk": b"d" * 32, "message": b"hi"}],
}


def _theirs(name: str, values: dict) -> bytes:
    msg = CLASSES[name]()
    for key, value in values.items():
        if key == "protocol_metadata":
            msg.protocol_metadata.SetInParent()
        elif key == "metadata":
            for k, v in value.items():
                msg.metadata[k] = v
        else:
            setattr(msg, key, value)
    return msg.SerializeToString(deterministic=True)


CASES = [(name, i) for name in SAMPLES for i in range(len(SAMPLES[name]))]


@pytest.mark.parametrize(("name", "index"), CASES)
def test_byte_identical_with_protobuf(name: str, index: int) -> None:
    values = SAMPLES[name][index]
    ours = pb.encode(OURS[name], values)
    assert ours == _theirs(name, values)
    decoded = pb.decode(OURS[name], ours)
    for key, value in values.items():
        assert decoded[key] == value
    parsed = CLASSES[name]()
    parsed.ParseFromString(ours)
    assert parsed.SerializeToString(deterministic=True) == ours


def test_every_weshnet_message_is_covered() -> None:
    assert set(OURS) == set(SAMPLES) == set(MESSAGES) - {"ProtocolMetadata"}


def test_we_skip_their_unknown_fields() -> None:
    data = _theirs("GroupMetadata", {"event_type": 2, "payload": b"x"}) + bytes.fromhex("2a0101")
    # field 5 (LEN) is unknown to both; protobuf keeps it, we skip it
    assert pb.decode(env.GROUP_METADATA, data)["payload"] == b"x"


# --- sealing and opening ------------------------------------------------------------------------


def keypair(seed: int) -> tuple[bytes, bytes]:
    return SUITE.ed25519_keypair(bytes([seed]) * 32)


GROUP_PK, GROUP_SK = keypair(1)
SECRET = bytes(range(32))
MEMBER_PK, MEMBER_SK = keypair(2)
DEVICE_PK, DEVICE_SK = keypair(3)
OTHER_MEMBER_PK, OTHER_MEMBER_SK = keypair(4)


def test_member_device_added_round_trip() -> None:
    payload, sig = env.member_device_added(SUITE, MEMBER_SK, DEVICE_SK)
    sealed = env.seal_group_event(SUITE, SECRET, env.EVENT_GROUP_MEMBER_DEVICE_ADDED, payload, sig)
    event = env.open_group_event(SUITE, GROUP_PK, SECRET, sealed)
    assert event.event_type == env.EVENT_GROUP_MEMBER_DEVICE_ADDED
    assert event.fields["member_pk"] == MEMBER_PK
    assert event.fields["device_pk"] == DEVICE_PK
    assert event.signer == DEVICE_PK
    outer = CLASSES["GroupEnvelope"]()
    outer.ParseFromString(sealed)
    clear = SUITE.secretbox_open(SECRET, outer.nonce, outer.event)
    meta = CLASSES["GroupMetadata"]()
    meta.ParseFromString(clear)
    assert meta.HasField("protocol_metadata")
    assert clear.endswith(b"\x22\x00")


def test_member_sig_checked() -> None:
    payload = pb.encode(
        env.GROUP_MEMBER_DEVICE_ADDED,
        {
            "member_pk": MEMBER_PK,
            "device_pk": DEVICE_PK,
            "member_sig": SUITE.ed25519_sign(MEMBER_SK, b"x"),
        },
    )
    sig = SUITE.ed25519_sign(DEVICE_SK, payload)
    sealed = env.seal_group_event(SUITE, SECRET, env.EVENT_GROUP_MEMBER_DEVICE_ADDED, payload, sig)
    with pytest.raises(IntegrityError, match="member signature"):
        env.open_group_event(SUITE, GROUP_PK, SECRET, sealed)


def test_device_sig_checked() -> None:
    payload, _ = env.member_device_added(SUITE, MEMBER_SK, DEVICE_SK)
    bad = SUITE.ed25519_sign(MEMBER_SK, payload)
    sealed = env.seal_group_event(SUITE, SECRET, env.EVENT_GROUP_MEMBER_DEVICE_ADDED, payload, bad)
    with pytest.raises(IntegrityError, match="device signature"):
        env.open_group_event(SUITE, GROUP_PK, SECRET, sealed)


def test_initial_member_announced_signed_by_group() -> None:
    payload, sig = env.initial_member_announced(SUITE, GROUP_SK, MEMBER_PK)
    kind = env.EVENT_MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED
    event = env.open_group_event(
        SUITE, GROUP_PK, SECRET, env.seal_group_event(SUITE, SECRET, kind, payload, sig)
    )
    assert event.fields["member_pk"] == MEMBER_PK and event.signer == GROUP_PK
    forged = SUITE.ed25519_sign(MEMBER_SK, payload)
    with pytest.raises(IntegrityError, match="group signature"):
        env.open_group_event(
            SUITE, GROUP_PK, SECRET, env.seal_group_event(SUITE, SECRET, kind, payload, forged)
        )


def test_wrong_secret_and_tampered_envelope() -> None:
    payload, sig = env.metadata_payload_sent(SUITE, DEVICE_SK, b"app")
    sealed = env.seal_group_event(
        SUITE, SECRET, env.EVENT_GROUP_METADATA_PAYLOAD_SENT, payload, sig
    )
    assert env.open_group_event(SUITE, GROUP_PK, SECRET, sealed).fields["message"] == b"app"
    with pytest.raises(IntegrityError):
        env.open_group_event(SUITE, GROUP_PK, bytes(32), sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(IntegrityError):
        env.open_group_event(SUITE, GROUP_PK, SECRET, tampered)
    with pytest.raises(RemoteProtocolError):
        env.open_group_event(SUITE, GROUP_PK, SECRET, sealed[:10])


def test_unknown_event_type_refused() -> None:
    sealed = env.seal_group_event(SUITE, SECRET, 7, b"", b"")
    with pytest.raises(RemoteProtocolError, match="unsupported"):
        env.open_group_event(SUITE, GROUP_PK, SECRET, sealed)


def test_chain_key_box() -> None:
    payload, sig = env.device_chain_key_added(SUITE, GROUP_PK, DEVICE_SK, MEMBER_PK, b"c" * 32, 5)
    sealed = env.seal_group_event(
        SUITE, SECRET, env.EVENT_GROUP_DEVICE_CHAIN_KEY_ADDED, payload, sig
    )
    event = env.open_group_event(SUITE, GROUP_PK, SECRET, sealed)
    assert event.fields["dest_member_pk"] == MEMBER_PK
    boxed = event.fields["payload"]
    assert env.open_chain_key(SUITE, GROUP_PK, MEMBER_SK, DEVICE_PK, boxed) == (b"c" * 32, 5)
    # crypto_box with nonce = group_pk[:24], pub = mont(member), priv = mont(device)
    clear = SUITE.box_open(
        SUITE.ed25519_pk_to_x25519(DEVICE_PK),
        SUITE.ed25519_sk_to_x25519(MEMBER_SK),
        GROUP_PK[:24],
        boxed,
    )
    assert clear == _theirs("DeviceChainKey", {"chain_key": b"c" * 32, "counter": 5})
    with pytest.raises(IntegrityError):
        env.open_chain_key(SUITE, GROUP_PK, OTHER_MEMBER_SK, DEVICE_PK, boxed)


def test_message_round_trip_and_layout() -> None:
    mk = bytes([9]) * 32
    sealed = env.seal_message(SUITE, SECRET, DEVICE_SK, 3, mk, b"hi", {"k": "v"})
    outer = CLASSES["MessageEnvelope"]()
    outer.ParseFromString(sealed)
    headers = CLASSES["MessageHeaders"]()
    headers.ParseFromString(SUITE.secretbox_open(SECRET, outer.nonce, outer.message_headers))
    assert (
        headers.counter == 3
        and headers.device_pk == DEVICE_PK
        and dict(headers.metadata) == {"k": "v"}
    )
    clear = SUITE.secretbox_open(mk, (3).to_bytes(8, "big") + bytes(16), outer.message)
    assert clear == _theirs("EncryptedMessage", {"plaintext": b"hi", "protocol_metadata": {}})
    assert SUITE.ed25519_verify(DEVICE_PK, clear, headers.sig)
    opened = env.open_message_headers(SUITE, SECRET, sealed)
    assert (opened.counter, opened.device_pk, opened.metadata) == (3, DEVICE_PK, {"k": "v"})
    assert env.open_message_payload(SUITE, opened, mk) == b"hi"


def test_message_tampering() -> None:
    mk = bytes([9]) * 32
    sealed = env.seal_message(SUITE, SECRET, DEVICE_SK, 1, mk, b"hi")
    opened = env.open_message_headers(SUITE, SECRET, sealed)
    with pytest.raises(IntegrityError):
        env.open_message_payload(SUITE, opened, bytes(32))
    opened.sig = bytes(64)
    with pytest.raises(IntegrityError, match="signature"):
        env.open_message_payload(SUITE, opened, mk)
    outer = pb.decode(env.MESSAGE_ENVELOPE, sealed)
    headers = outer["message_headers"]
    outer["message_headers"] = headers[:-1] + bytes((headers[-1] ^ 1,))  # always a change
    with pytest.raises(IntegrityError):
        env.open_message_headers(SUITE, SECRET, pb.encode(env.MESSAGE_ENVELOPE, outer))


def test_counter_nonce() -> None:
    assert env.counter_nonce(1) == bytes(7) + b"\x01" + bytes(16)
    assert env.counter_nonce(0x0102030405060708)[:8] == bytes(range(1, 9))
