"""Seed corpus: valid inputs for every target, made by the project's own encoders.

Usage: python -m tests.fuzz.seeds [--out DIR]    (default: tests/fuzz/corpus, committed)

Each seed is written as DIR/<target>/<first 16 hex digits of its SHA-256>, so regenerating adds
only what changed. Everything is deterministic (fixed seeds, fixed ephemeral keys) except the
member group file, whose device key GroupState.new draws at random: regenerating adds one more.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.app.config import default_toml
from node.crypto import noise
from node.crypto import protobuf as pb
from node.member import appmessage, invitation, logio
from node.member.store_files import to_json_value
from node.proto import fragment, framing, messages
from node.sync import dagcbor, wire
from node.sync.entry import create_entry
from node.sync.keyset import KeySet
from node.sync.reconcile import Reconciler

from .targets import MAX_FRAME, PROLOGUE, PROTOBUF_SCHEMAS, Fixtures

CORPUS = Path(__file__).resolve().parent / "corpus"
ROOT = Path(__file__).resolve().parents[2]


def _pieces(chunks: list[bytes], width: int = 1) -> bytes:
    """What the targets' _frames_from cuts back into `chunks` (longer ones are split)."""
    out = bytearray()
    most = (1 << (8 * width)) - 1
    for chunk in chunks:
        for i in range(0, max(1, len(chunk)), most):
            part = chunk[i : i + most]
            out += len(part).to_bytes(width, "big") + part
    return bytes(out)


def framing_seeds(fx: Fixtures) -> list[bytes]:
    payloads = [b"", b"hi", bytes(range(256)), b"\x00" * 1000]
    return [
        framing.encode_frame(payloads[1]),
        b"".join(framing.encode_frame(p) for p in payloads),
        framing.encode_frame(b"x" * MAX_FRAME),
    ]


def fragment_seeds(fx: Fixtures) -> list[bytes]:
    out = []
    for size, frames in [(20, [b"", b"a" * 50, b"b"]), (182, [bytes(range(256)) * 3]), (60, [])]:
        fragmenter = fragment.Fragmenter()
        parts = [p for f in frames for p in fragmenter.fragment(f, size)]
        out.append(_pieces(parts))
    return out


def messages_seeds(fx: Fixtures) -> list[bytes]:
    header = wire.log_header(fx.sign_pub, fx.identity_signature)
    item = wire.encode_item(fx.entry, fx.sign_pub, fx.identity_signature)
    return [
        messages.encode_message(m)
        for m in [
            messages.Hello(messages.ROLE_RELAY, 1 << 20, 65519),
            messages.Interest([messages.LogDeclaration(0, fx.address, header)]),
            messages.Reconcile(0, b"\x00\x01\x02"),
            messages.Entries(0, [item, item], True),
            messages.Ack(0, 2, 4096),
            messages.Pairing(1, b"spake2 message"),
            messages.Bye("malformed", "entry item: empty"),
            messages.Summary(messages.SUMMARY_OFFER, 2, bytes(range(8)), bytes(8)),
            messages.Summary(messages.SUMMARY_KNOWN),
            messages.Summary(messages.SUMMARY_OFFER, 1, bytes(8), b"", b"\x57\x01"),
        ]
    ]


def _handshake(fx: Fixtures) -> tuple[noise.NoiseHandshake, noise.NoiseHandshake, list[bytes]]:
    initiator = noise.NoiseHandshake(
        fx.suite, True, fx.static_initiator, PROLOGUE, ephemeral_private=fx.ephemeral
    )
    responder = noise.NoiseHandshake(
        fx.suite, False, fx.static_responder, PROLOGUE, ephemeral_private=fx.ephemeral
    )
    one = initiator.write_message()
    responder.read_message(one)
    two = responder.write_message()
    initiator.read_message(two)
    three = initiator.write_message()
    responder.read_message(three)
    return initiator, responder, [one, two, three]


def noise_handshake_seeds(fx: Fixtures) -> list[bytes]:
    _, _, (one, two, _three) = _handshake(fx)
    return [b"\x00" + one, b"\x01" + two]


def noise_transport_seeds(fx: Fixtures) -> list[bytes]:
    initiator, _, _ = _handshake(fx)
    sender = initiator.transport()
    texts = [b"", b"hello", bytes(200), b"\xff" * 239]
    return [_pieces([sender.encrypt(t) for t in texts])]


def reconcile_seeds(fx: Fixtures) -> list[bytes]:
    initiator = Reconciler([KeySet(fx.keys[19:60])], True, max_frame=1024)
    responder = Reconciler([KeySet(fx.keys[:40])], False, max_frame=1024)
    opening = initiator.start()
    seeds = [b"\x00" + f for f in opening]
    replies = [r for f in opening for r in responder.receive(f)]
    later = [r for f in replies for r in initiator.receive(f)]
    seeds.extend(b"\x02" + f for f in later)
    seeds.append(b"\x01" + _pieces(later, 2))
    return seeds


def dagcbor_seeds(fx: Fixtures) -> list[bytes]:
    values: list[Any] = [
        0,
        -1,
        2**64 - 1,
        "text",
        b"bytes",
        [1, [2, [3]]],
        {"a": 1, "bb": [True, False, None]},
        1.5,
    ]
    return [dagcbor.encode(v) for v in values] + [fx.entry.block]


def cid_seeds(fx: Fixtures) -> list[bytes]:
    cid = fx.entry.cid
    return [cid.to_bytes(), cid.to_base32().encode(), cid.to_base58().encode()]


def _entries(fx: Fixtures) -> list[Any]:
    def sign(m: bytes) -> bytes:
        return fx.suite.ed25519_sign(fx.sign_secret, m)

    second = create_entry(
        fx.address, '{"op":"PUT","value":"x"}', [fx.entry.cid], [], 2, fx.sign_pub, sign
    )
    third = create_entry(
        fx.address,
        logio.op_payload(appmessage.user_message("fuzz", 1)),
        [second.cid],
        [fx.entry.cid],
        3,
        fx.sign_pub,
        sign,
    )
    return [fx.entry, second, third]


def entry_seeds(fx: Fixtures) -> list[bytes]:
    return [e.block for e in _entries(fx)]


def wire_seeds(fx: Fixtures) -> list[bytes]:
    items = [wire.encode_item(e, fx.sign_pub, fx.identity_signature) for e in _entries(fx)]
    items.append(b"\x00" + fx.entry.block)  # FULL: the block as it is
    items.append(b"\xff" + wire.log_header(fx.sign_pub, fx.identity_signature))
    return items


def _sample(schema: pb.Schema, depth: int = 0) -> dict[str, Any]:
    """A value for every field of `schema` (nested messages to depth 3)."""
    scalars: dict[str, Any] = {pb.BYTES: b"\x01\x02", pb.STRING: "s", pb.BOOL: True}
    values: dict[str, Any] = {}
    for f in schema.fields:
        if f.kind == pb.MESSAGE:
            if depth >= 3 or f.message is None:
                continue
            value: Any = _sample(f.message, depth + 1)
        else:
            value = scalars.get(f.kind, 7)
        if f.key_kind is not None:
            values[f.name] = {scalars.get(f.key_kind, 3): value}
        else:
            values[f.name] = [value, value] if f.repeated else value
    return values


def protobuf_seeds(fx: Fixtures) -> list[bytes]:
    out = []
    for index, schema in enumerate(PROTOBUF_SCHEMAS):
        out.append(bytes((index,)) + pb.encode(schema, _sample(schema)))
    index = PROTOBUF_SCHEMAS.index(appmessage.APP_MESSAGE)
    out.append(bytes((index,)) + appmessage.user_message("hello", 1700000000000))
    out.append(bytes((index,)) + appmessage.set_user_info("fuzz", 1))
    return out


def invitation_seeds(fx: Fixtures) -> list[bytes]:
    return [invitation.encode_invitation(fx.group, "fuzz group").encode()]


def config_seeds(fx: Fixtures) -> list[bytes]:
    return [
        default_toml().encode(),
        (ROOT / "config" / "waystation.toml").read_bytes(),
        b'[lan]\nlisten = "127.0.0.1:0"\npeers = ["[::1]:4242"]\n',
    ]


def member_files_seeds(fx: Fixtures) -> list[bytes]:
    from node.member.account import Account
    from node.member.group_state import GroupState

    def keypair(seed: bytes) -> bytes:
        return fx.suite.ed25519_keypair(hashlib.sha256(seed).digest())[1]

    account = Account("fuzz", keypair(b"a"), keypair(b"p"), keypair(b"d"))
    state = GroupState.new(fx.suite, fx.group, "fuzz", account.account_proof_sk, "m", "x")
    return [
        json.dumps(to_json_value(account.to_dict()), sort_keys=True).encode(),
        json.dumps(to_json_value(state.to_dict()), sort_keys=True).encode(),
    ]


def member_payload_seeds(fx: Fixtures) -> list[bytes]:
    return [
        logio.op_payload(appmessage.user_message("hello", 1)).encode(),
        logio.op_payload(b"").encode(),
    ]


def address_seeds(fx: Fixtures) -> list[bytes]:
    return [fx.address.encode()]


SEEDS: dict[str, Callable[[Fixtures], list[bytes]]] = {
    "framing": framing_seeds,
    "fragment": fragment_seeds,
    "messages": messages_seeds,
    "noise-handshake": noise_handshake_seeds,
    "noise-transport": noise_transport_seeds,
    "reconcile": reconcile_seeds,
    "dagcbor": dagcbor_seeds,
    "cid": cid_seeds,
    "entry": entry_seeds,
    "wire": wire_seeds,
    "protobuf": protobuf_seeds,
    "invitation": invitation_seeds,
    "config": config_seeds,
    "member-files": member_files_seeds,
    "member-payload": member_payload_seeds,
    "address": address_seeds,
}


def write_corpus(out: Path) -> dict[str, int]:
    """Write every target's seeds under `out`; return how many each got."""
    fx = Fixtures()
    counts = {}
    for name, make in SEEDS.items():
        directory = out / name
        directory.mkdir(parents=True, exist_ok=True)
        seeds = make(fx)
        for seed in seeds:
            (directory / hashlib.sha256(seed).hexdigest()[:16]).write_bytes(seed)
        counts[name] = len(seeds)
    return counts


def main() -> None:
    """Command line: write the seed corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS)
    args = parser.parse_args()
    for name, count in write_corpus(args.out).items():
        print("%-16s %d seeds" % (name, count))


if __name__ == "__main__":
    main()
