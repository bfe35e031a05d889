"""tests/vectors checked with the web app's suite (JsSuite), inside Pyodide.

The Node test (web/tests/vectors.test.mjs) hands the vector files' text to these functions; each
returns how many vectors it checked and raises AssertionError naming the first one that failed.
The same checks run under CPython with PyNaCl in tests/test_vectors.py and
tests/test_noise_vectors.py.
"""

import json

from node.crypto.address import verify_address
from node.crypto.api import Suite
from node.crypto.noise import PROTOCOL_NAME, NoiseHandshake
from node.errors import RemoteProtocolError
from node.sync import dagcbor
from node.sync.cid import CID
from node.sync.entry import decode_entry, encode_entry, signed_bytes, verify_entry


def _refused(suite: Suite, block: bytes, claimed: CID, sign_pub: bytes) -> bool:
    try:
        verify_entry(decode_entry(block, claimed), suite.ed25519_verify, sign_pub)
    except RemoteProtocolError:
        return True
    return False


def check_entry_vectors(suite: Suite, text: str) -> int:
    """Check every entry vector: codec round trip, CID, signed bytes, signature, address.

    A copy with one signature bit flipped (every byte of it, in turn) must be refused.
    """
    vectors = json.loads(text)
    for index, vector in enumerate(vectors):
        where = "entry vector %d" % index
        block = bytes.fromhex(vector["block"])
        sign_pub = bytes.fromhex(vector["sign_pub"])
        entry = decode_entry(block)
        assert encode_entry(entry) == block, where + ": re-encoding differs"
        assert dagcbor.encode(dagcbor.decode(block)) == block, where + ": DAG-CBOR round trip"
        assert str(entry.cid) == vector["cid"], where + ": CID"
        assert signed_bytes(entry).hex() == vector["signed_bytes"], where + ": signed bytes"
        assert entry.sign_pub == sign_pub, where + ": sign_pub"
        verify_entry(entry, suite.ed25519_verify, sign_pub)
        group_pk, store_type = verify_address(suite, entry.log_id, sign_pub)
        assert group_pk.hex() == vector["group_pk"], where + ": group key"
        assert store_type == vector["store_type"], where + ": store type"
        obj = dagcbor.decode(block)
        for byte in range(64):
            sig = bytearray(entry.sig)
            sig[byte] ^= 1 << (byte % 8)
            obj["sig"] = sig.hex()
            forged = dagcbor.encode(obj)
            assert _refused(suite, forged, CID.from_block(forged), sign_pub), (
                where + ": signature byte %d flipped was accepted" % byte
            )
    return len(vectors)


def check_noise_vectors(suite: Suite, text: str) -> int:
    """Run every Noise_XX_25519_ChaChaPoly_BLAKE2b vector: handshake, hash, transport."""
    data = json.loads(text)
    assert data["protocol_name"] == PROTOCOL_NAME.decode(), "protocol name"
    for entry in data["vectors"]:
        vector = entry["vector"]
        where = "noise vector from " + entry["origin"]["repository"]
        initiator = NoiseHandshake(
            suite,
            True,
            bytes.fromhex(vector["init_static"]),
            prologue=bytes.fromhex(vector["init_prologue"]),
            ephemeral_private=bytes.fromhex(vector["init_ephemeral"]),
        )
        responder = NoiseHandshake(
            suite,
            False,
            bytes.fromhex(vector["resp_static"]),
            prologue=bytes.fromhex(vector["resp_prologue"]),
            ephemeral_private=bytes.fromhex(vector["resp_ephemeral"]),
        )
        messages = vector["messages"]
        sides = [(initiator, responder), (responder, initiator)]
        for index, message in enumerate(messages[:3]):
            writer, reader = sides[index % 2]
            payload = bytes.fromhex(message["payload"])
            wire = writer.write_message(payload)
            assert wire.hex() == message["ciphertext"], where + ": handshake message %d" % index
            assert reader.read_message(wire) == payload, where + ": handshake payload %d" % index
        assert initiator.get_handshake_hash() == responder.get_handshake_hash(), where
        if "handshake_hash" in vector:
            assert initiator.get_handshake_hash().hex() == vector["handshake_hash"], where
        transports = [initiator.transport(), responder.transport()]
        for index, message in enumerate(messages[3:], start=3):
            writer_t, reader_t = transports[index % 2], transports[1 - index % 2]
            payload = bytes.fromhex(message["payload"])
            wire = writer_t.encrypt(payload)
            assert wire.hex() == message["ciphertext"], where + ": transport message %d" % index
            assert reader_t.decrypt(wire) == payload, where + ": transport payload %d" % index
    return len(data["vectors"])
