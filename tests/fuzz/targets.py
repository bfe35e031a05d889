"""One fuzz target per decoder that takes hostile input (issue 16's list).

`build_targets()` returns them, each a `contract.Target` whose `run(data)` drives one decoder with
the fuzzer's bytes and checks what it can beyond "only our errors": a round trip where the decoder
has an encoder, the canonical form where the format has one. The fixtures (a group, its log, keys)
are made once per process by `Fixtures`, from fixed seeds, with the project's own code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile
import weakref
from pathlib import Path

from node.app.config import parse_config
from node.crypto import envelope as env
from node.crypto import noise
from node.crypto import protobuf as pb
from node.crypto._nacl import NaclSuite
from node.crypto.address import MESSAGES_STORE, parse_address, store_address
from node.crypto.keys import multi_member_group_from_seeds
from node.errors import ConfigError
from node.member import appmessage, invitation, logio
from node.member.account import Account
from node.member.errors import MemberError
from node.member.group_state import GroupState
from node.member.store_files import read_json
from node.proto import fragment, framing, messages
from node.sync import dagcbor, wire
from node.sync.cid import CID
from node.sync.entry import create_entry, decode_entry
from node.sync.keyset import KeySet
from node.sync.reconcile import Reconciler

from .contract import KIB, Target

MAX_FRAME = 4096
PROLOGUE = b"waystation fuzz"


class Fixtures:
    """Keys, a group and one signed entry, from fixed seeds (the same in every process)."""

    def __init__(self) -> None:
        self.suite = NaclSuite()
        suite = self.suite
        self.group, _ = multi_member_group_from_seeds(suite, b"g" * 32, b"s" * 32)
        self.sign_pub, self.sign_secret = self.group.signing_keypair(suite)
        self.address = store_address(suite, self.group.public_key, self.sign_pub, MESSAGES_STORE)
        self.identity_signature = suite.ed25519_sign(self.sign_secret, self.sign_pub.hex().encode())
        payload = logio.op_payload(b"fuzz envelope")
        self.entry = create_entry(
            self.address,
            payload,
            [],
            [],
            1,
            self.sign_pub,
            lambda m: suite.ed25519_sign(self.sign_secret, m),
        )
        self.static_responder = hashlib.sha256(b"responder").digest()
        self.static_initiator = hashlib.sha256(b"initiator").digest()
        self.ephemeral = hashlib.sha256(b"ephemeral").digest()
        self.keys = [(i, hashlib.sha256(b"k%d" % i).digest()) for i in range(60)]
        self.scratch = Path(tempfile.mkdtemp(prefix="waystation-fuzz-"))
        weakref.finalize(self, shutil.rmtree, self.scratch, ignore_errors=True)


def _frames_from(data: bytes, width: int = 1) -> list[bytes]:
    """Cut `data` into pieces: each is a `width`-byte big-endian length, then that many bytes."""
    pieces = []
    pos = 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + width], "big")
        pieces.append(data[pos + width : pos + width + n])
        pos += width + n
    return pieces


def _text(data: bytes) -> str:
    """The fuzzer's bytes as text the way our readers see it (UTF-8, invalid bytes replaced)."""
    return data.decode("utf-8", errors="replace")


def fuzz_framing(data: bytes) -> None:
    """FrameDecoder on a stream fed in the pieces the first bytes choose."""
    decoder = framing.FrameDecoder(MAX_FRAME)
    frames = []
    for chunk in [data[:1], data[1:7], data[7:]]:
        decoder.receive_data(chunk)
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
        assert decoder.buffered <= framing.HEADER_SIZE + MAX_FRAME + len(chunk)
    decoder.receive_eof()
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    assert b"".join(framing.encode_frame(f) for f in frames) == data


def fuzz_fragment(data: bytes) -> None:
    """Reassembler on fragments cut by length bytes; the Fragmenter round trip on the rest."""
    reassembler = fragment.Reassembler(MAX_FRAME, frame_timeout=10)
    for now, piece in enumerate(_frames_from(data)):
        frame = reassembler.receive_fragment(piece, now)
        assert frame is None or len(frame) <= MAX_FRAME
        assert reassembler.buffered <= MAX_FRAME
    size = fragment.MIN_FRAGMENT_SIZE + (data[0] if data else 0)
    fragmenter = fragment.Fragmenter()
    again = fragment.Reassembler(len(data))
    out = [again.receive_fragment(f, 0) for f in fragmenter.fragment(data, size)]
    assert out[-1] == data and not again.in_frame


def fuzz_messages(data: bytes) -> None:
    """Session messages: decode, and the encoding is canonical (re-encodes to the same bytes)."""
    message = messages.decode_message(data)
    assert messages.encode_message(message) == data, "not the canonical encoding"


def make_noise(fx: Fixtures) -> tuple[Target, ...]:
    def handshake(data: bytes) -> None:
        """A responder reads message 1; an initiator reads message 2 after writing message 1."""
        responder = noise.NoiseHandshake(fx.suite, False, fx.static_responder, PROLOGUE)
        if data[:1] == b"\x00":
            responder.read_message(data[1:])
            return
        initiator = noise.NoiseHandshake(
            fx.suite, True, fx.static_initiator, PROLOGUE, ephemeral_private=fx.ephemeral
        )
        initiator.write_message(b"")
        initiator.read_message(data[1:])
        initiator.write_message(b"")

    def transport(data: bytes) -> None:
        """A completed handshake, then transport messages cut by length bytes."""
        initiator = noise.NoiseHandshake(
            fx.suite, True, fx.static_initiator, PROLOGUE, ephemeral_private=fx.ephemeral
        )
        responder = noise.NoiseHandshake(
            fx.suite, False, fx.static_responder, PROLOGUE, ephemeral_private=fx.ephemeral
        )
        responder.read_message(initiator.write_message())
        initiator.read_message(responder.write_message())
        responder.read_message(initiator.write_message())
        receiver = responder.transport()
        for piece in [data[:2], data[2:]] if len(data) < 64 else _frames_from(data):
            receiver.decrypt(piece)

    return (
        Target("noise-handshake", handshake, "NoiseHandshake.read_message (messages 1 and 2)"),
        Target("noise-transport", transport, "NoiseTransport.decrypt"),
    )


def make_reconcile(fx: Fixtures) -> Target:
    def run(data: bytes) -> None:
        """A responder: hostile frames first (mode 0), or after a real opening and reply."""
        ours = KeySet(fx.keys[:40])
        responder = Reconciler([ours], False, max_frame=1024)
        frames = _frames_from(data[1:], 2) if data[:1] == b"\x01" else [data[1:]]
        if data[:1] != b"\x00":
            initiator = Reconciler([KeySet(fx.keys[19:60])], True, max_frame=1024)
            for frame in initiator.start():
                responder.receive(frame)
        for frame in frames:
            responder.receive(frame)

    return Target(
        "reconcile",
        run,
        "Reconciler.receive (the responder, all frame kinds)",
    )


def fuzz_dagcbor(data: bytes) -> None:
    """DAG-CBOR: decode, and what decodes is canonical (re-encodes to the same bytes)."""
    value = dagcbor.decode(data)
    assert dagcbor.encode(value) == data, "not canonical DAG-CBOR"


def fuzz_cid(data: bytes) -> None:
    """CIDs from bytes and from text; both round-trip."""
    cid = CID.from_bytes(data) if data[:1] != b"b" and data[:1] != b"z" else None
    if cid is not None:
        assert cid.to_bytes() == data
        assert CID.parse(cid.to_base32()) == cid and CID.parse(cid.to_base58()) == cid
        return
    text = _text(data)
    cid = CID.parse(text)
    assert text in (cid.to_base32(), cid.to_base58()), "CID text is not canonical"


def make_entry(fx: Fixtures) -> Target:
    def run(data: bytes) -> None:
        """decode_entry on a block; an accepted block is kept byte for byte."""
        entry = decode_entry(data)
        assert entry.block == data
        assert entry.cid == CID.from_block(data)

    return Target("entry", run, "decode_entry (DAG-CBOR block to Entry)", per_byte=16)


def make_wire(fx: Fixtures) -> Target:
    def run(data: bytes) -> None:
        """A wire item of our log (or a log header): decode, re-encode, decode again."""
        if data[:1] == b"\xff":
            sign_pub, signature = wire.parse_log_header(data[1:])
            assert wire.log_header(sign_pub, signature) == data[1:]
            return
        entry = wire.decode_item(data, fx.address, fx.sign_pub, fx.identity_signature)
        again = wire.encode_item(entry, fx.sign_pub, fx.identity_signature)
        rebuilt = wire.decode_item(again, fx.address, fx.sign_pub, fx.identity_signature)
        assert rebuilt.block == entry.block

    return Target("wire", run, "wire.decode_item, wire.parse_log_header", per_byte=16)


PROTOBUF_SCHEMAS = [
    env.GROUP_ENVELOPE,
    env.MESSAGE_ENVELOPE,
    env.MESSAGE_HEADERS,
    env.ENCRYPTED_MESSAGE,
    env.GROUP_METADATA,
    env.DEVICE_CHAIN_KEY,
    *env.EVENT_SCHEMAS.values(),
    appmessage.APP_MESSAGE,
    invitation.BERTY_LINK,
]


def fuzz_protobuf(data: bytes) -> None:
    """A protobuf envelope (the first byte picks the schema); decode(encode(x)) == x."""
    schema = PROTOBUF_SCHEMAS[data[0] % len(PROTOBUF_SCHEMAS)] if data else env.GROUP_ENVELOPE
    values = pb.decode(schema, data[1:])
    assert pb.decode(schema, pb.encode(schema, values)) == values
    if schema is appmessage.APP_MESSAGE:
        appmessage.decode(data[1:])


def make_invitation(fx: Fixtures) -> Target:
    def run(data: bytes) -> None:
        """decode_invitation; an accepted one re-encodes to an invitation of the same group."""
        group, name = invitation.decode_invitation(fx.suite, _text(data))
        again, name2 = invitation.decode_invitation(
            fx.suite, invitation.encode_invitation(group, name)
        )
        assert (again.public_key, again.secret, name2) == (group.public_key, group.secret, name)

    return Target("invitation", run, "decode_invitation (text to group)", rejects=(MemberError,))


def fuzz_config(data: bytes) -> None:
    """parse_config on the text of a configuration file."""
    parse_config(_text(data), "fuzz.toml")


def make_member_files(fx: Fixtures) -> Target:
    path = fx.scratch / "member.json"

    def run(data: bytes) -> None:
        """A member file on disk: read_json, then as an account and as a group file."""
        path.write_bytes(data)
        value = read_json(path)
        if isinstance(value, dict) and "account_sk" in value:
            Account.from_dict(fx.suite, value)
        else:
            GroupState.from_dict(fx.suite, value)

    return Target(
        "member-files",
        run,
        "store_files.read_json, Account/GroupState.from_dict",
        rejects=(MemberError,),
    )


def fuzz_member_payload(data: bytes) -> None:
    """A member's entry payload (orbit-db ADD operation JSON) and its AppMessage."""
    envelope = logio.parse_op(_text(data))
    assert json.loads(logio.op_payload(envelope))["value"] == base64.b64encode(envelope).decode()


def fuzz_address(data: bytes) -> None:
    """Log addresses /orbitdb/<manifest CID>/<group pk hex>_<store type>."""
    text = _text(data)
    manifest, group_pk, store_type = parse_address(text)
    assert "/orbitdb/%s/%s_%s" % (manifest, group_pk.hex(), store_type) == text, "not canonical"


def build_targets() -> list[Target]:
    """Every target, in the order docs/security.md lists them."""
    fx = Fixtures()
    return [
        Target("framing", fuzz_framing, "FrameDecoder (TCP and serial framing)"),
        Target("fragment", fuzz_fragment, "Reassembler (BLE fragments), Fragmenter round trip"),
        Target("messages", fuzz_messages, "decode_message (session messages)"),
        *make_noise(fx),
        make_reconcile(fx),
        # A generic decoder builds one Python object per item: an empty map (1 byte) is a dict.
        Target("dagcbor", fuzz_dagcbor, "dagcbor.decode", per_byte=100),
        Target("cid", fuzz_cid, "CID.from_bytes, CID.parse (multibase)"),
        make_entry(fx),
        make_wire(fx),
        Target("protobuf", fuzz_protobuf, "protobuf.decode of every envelope schema"),
        make_invitation(fx),
        Target(
            "config",
            fuzz_config,
            "parse_config (TOML configuration)",
            rejects=(ConfigError,),
            base=1024 * KIB,
        ),
        make_member_files(fx),
        Target("member-payload", fuzz_member_payload, "logio.parse_op (a member's payload)"),
        Target("address", fuzz_address, "parse_address (log addresses)"),
    ]
