"""Noise_XX_25519_ChaChaPoly_BLAKE2b against published vectors and the `noiseprotocol` package."""

import json
from pathlib import Path
from typing import Any

import pytest
from noise.connection import Keypair, NoiseConnection

from node.crypto._nacl import NaclSuite
from node.crypto.noise import PROTOCOL_NAME, NoiseHandshake, NoiseTransport
from node.errors import IntegrityError

VECTOR_FILE = Path(__file__).parent / "vectors" / "noise" / "xx_25519_chachapoly_blake2b.json"
SUITE = NaclSuite()


def load_vectors() -> list[dict[str, Any]]:
    data = json.loads(VECTOR_FILE.read_text())
    assert data["protocol_name"] == PROTOCOL_NAME.decode()
    return list(data["vectors"])


VECTORS = load_vectors()


def test_vector_file_has_all_three_sources() -> None:
    repos = sorted(entry["origin"]["repository"].rsplit("/", 2)[-2] for entry in VECTORS)
    assert repos == ["haskell-cryptography", "mcginty", "rweather"]
    for entry in VECTORS:
        name = entry["vector"].get("protocol_name") or entry["vector"].get("name")
        assert name == PROTOCOL_NAME.decode()


@pytest.mark.parametrize("entry", VECTORS, ids=lambda e: e["origin"]["repository"].split("/")[-1])
def test_vector(entry: dict[str, Any]) -> None:
    vector = entry["vector"]
    initiator = NoiseHandshake(
        SUITE,
        True,
        bytes.fromhex(vector["init_static"]),
        prologue=bytes.fromhex(vector["init_prologue"]),
        ephemeral_private=bytes.fromhex(vector["init_ephemeral"]),
    )
    responder = NoiseHandshake(
        SUITE,
        False,
        bytes.fromhex(vector["resp_static"]),
        prologue=bytes.fromhex(vector["resp_prologue"]),
        ephemeral_private=bytes.fromhex(vector["resp_ephemeral"]),
    )
    messages = vector["messages"]
    assert len(messages) > 3
    for index, message in enumerate(messages[:3]):
        writer, reader = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        payload = bytes.fromhex(message["payload"])
        wire = writer.write_message(payload)
        assert wire.hex() == message["ciphertext"], "handshake message %d" % index
        assert reader.read_message(wire) == payload
    assert initiator.is_complete() and responder.is_complete()
    assert initiator.get_handshake_hash() == responder.get_handshake_hash()
    if "handshake_hash" in vector:
        assert initiator.get_handshake_hash().hex() == vector["handshake_hash"]
    assert initiator.remote_static == SUITE.x25519_public(bytes.fromhex(vector["resp_static"]))
    assert responder.remote_static == SUITE.x25519_public(bytes.fromhex(vector["init_static"]))

    transports = (initiator.transport(), responder.transport())
    for index, message in enumerate(messages[3:], start=3):
        writer_t, reader_t = (
            (transports[0], transports[1]) if index % 2 == 0 else (transports[1], transports[0])
        )
        payload = bytes.fromhex(message["payload"])
        wire = writer_t.encrypt(payload)
        assert wire.hex() == message["ciphertext"], "transport message %d" % index
        assert reader_t.decrypt(wire) == payload


# -- interoperability with the `noiseprotocol` package (an independent implementation) ---------


def their_side(initiator: bool, static_private: bytes, prologue: bytes) -> NoiseConnection:
    connection = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.set_keypair_from_private_bytes(Keypair.STATIC, static_private)
    connection.set_prologue(prologue)
    connection.start_handshake()
    return connection


def exchange_transport(ours: NoiseTransport, theirs: NoiseConnection) -> None:
    for size in (0, 1, 100, 65535 - 16):
        plaintext = bytes((i * 7 + size) & 0xFF for i in range(size))
        assert bytes(theirs.decrypt(ours.encrypt(plaintext))) == plaintext
        assert ours.decrypt(bytes(theirs.encrypt(plaintext))) == plaintext


@pytest.mark.parametrize("we_initiate", [True, False], ids=["we-initiate", "they-initiate"])
def test_interop_with_noiseprotocol(we_initiate: bool) -> None:
    prologue = b"waystation/1 interop"
    our_static, their_static = SUITE.random_bytes(32), SUITE.random_bytes(32)
    ours = NoiseHandshake(SUITE, we_initiate, our_static, prologue=prologue)
    theirs = their_side(not we_initiate, their_static, prologue)
    payloads = [b"first", b"second payload", b"third, encrypted and authenticated"]
    for index, payload in enumerate(payloads):
        if (index % 2 == 0) == we_initiate:
            assert bytes(theirs.read_message(ours.write_message(payload))) == payload
        else:
            assert ours.read_message(bytes(theirs.write_message(payload))) == payload
    assert theirs.handshake_finished and ours.is_complete()
    assert ours.get_handshake_hash() == bytes(theirs.get_handshake_hash())
    assert ours.remote_static == SUITE.x25519_public(their_static)
    exchange_transport(ours.transport(), theirs)


def test_interop_prologue_mismatch_fails() -> None:
    ours = NoiseHandshake(SUITE, True, SUITE.random_bytes(32), prologue=b"waystation/1")
    theirs = their_side(False, SUITE.random_bytes(32), b"waystation/2")
    theirs.read_message(ours.write_message())
    with pytest.raises(IntegrityError):
        ours.read_message(bytes(theirs.write_message()))
