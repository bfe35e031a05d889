"""tests/vectors/entries.json: regenerated in memory, checked against libipld and PyNaCl."""

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import libipld
import pytest

from node.crypto._nacl import NaclSuite
from node.crypto.address import MESSAGES_STORE, METADATA_STORE, verify_address
from node.errors import RemoteProtocolError
from node.sync import dagcbor, gojson
from node.sync.cid import CID
from node.sync.entry import (
    _fast_fields,
    _generic_fields,
    decode_entry,
    encode_entry,
    signed_bytes,
    verify_entry,
)
from node.sync.log import Log, heads

ROOT = Path(__file__).resolve().parent.parent
VECTORS_PATH = ROOT / "tests" / "vectors" / "entries.json"
VECTORS: list[dict[str, str]] = json.loads(VECTORS_PATH.read_text())
SUITE = NaclSuite()


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_vectors", ROOT / "tools" / "gen_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_file_is_what_the_generator_writes() -> None:
    generator = _load_generator()
    assert generator.render(generator.generate()) == VECTORS_PATH.read_text()


def test_coverage() -> None:
    assert len(VECTORS) >= 20
    assert {v["store_type"] for v in VECTORS} == {METADATA_STORE, MESSAGES_STORE}
    entries = [decode_entry(bytes.fromhex(v["block"])) for v in VECTORS]
    assert any(not e.next and not e.refs for e in entries)
    assert any(e.next for e in entries)
    assert any(len(e.refs) >= 3 for e in entries)
    assert any(len(e.next) >= 2 for e in entries)
    payloads = "".join(e.payload for e in entries)
    for special in "<>&\u2028\u2029é🚀":
        assert special in payloads
    kinds = {v["payload_kind"] for v in VECTORS}
    assert kinds == {"orbitdb-op", "raw"}
    # concurrent heads: two entries with the same next and the same time
    seen = {}
    pairs = 0
    for e in entries:
        key = (e.log_id, tuple(e.next), e.clock_time)
        pairs += key in seen
        seen[key] = e
    assert pairs >= 2
    # a chain of at least 10 in one log
    by_log: dict[str, dict[CID, Any]] = {}
    for e in entries:
        by_log.setdefault(e.log_id, {})[e.cid] = e
    assert max(len(v) for v in by_log.values()) >= 10
    for log_id, view in by_log.items():
        Log(log_id, view)  # one log id per view
        assert heads(view)


@pytest.mark.parametrize("vector", VECTORS, ids=[str(i) for i in range(len(VECTORS))])
def test_vector(vector: dict[str, str]) -> None:
    block = bytes.fromhex(vector["block"])
    sign_pub = bytes.fromhex(vector["sign_pub"])
    entry = decode_entry(block)

    # our codec: decode -> encode is byte-identical, both parser paths agree
    assert encode_entry(entry) == block
    assert dagcbor.encode(dagcbor.decode(block)) == block
    assert _fast_fields(block, 64) == _generic_fields(block)

    # an independent implementation: libipld round trip and CID
    assert libipld.encode_dag_cbor(libipld.decode_dag_cbor(block)) == block
    assert str(entry.cid) == vector["cid"]
    cid_bytes = b"\x01\x71\x12\x20" + hashlib.sha256(block).digest()
    assert libipld.encode_cid(cid_bytes) == vector["cid"]
    assert libipld.decode_cid(vector["cid"])["hash"]["digest"] == entry.cid.digest
    for link, ours in zip(libipld.decode_dag_cbor(block)["next"], entry.next, strict=True):
        assert CID.from_bytes(link) == ours

    # signed bytes: as recorded, and equal to a generic Go-JSON rendering
    assert signed_bytes(entry).hex() == vector["signed_bytes"]
    assert signed_bytes(entry) == gojson.dumps(
        {
            "clock": {"id": entry.clock_id.hex(), "time": entry.clock_time},
            "hash": None,
            "id": entry.log_id,
            "next": [c.to_base58() for c in entry.next],
            "payload": entry.payload,
            "refs": [c.to_base58() for c in entry.refs],
            "v": 2,
        }
    )

    # verification with PyNaCl, and the log address commits to sign_pub
    assert entry.sign_pub == sign_pub
    verify_entry(entry, SUITE.ed25519_verify, sign_pub)
    group_pk, store_type = verify_address(SUITE, entry.log_id, sign_pub)
    assert group_pk.hex() == vector["group_pk"]
    assert store_type == vector["store_type"]


def _fails(block: bytes, claimed: CID, sign_pub: bytes) -> bool:
    try:
        verify_entry(decode_entry(block, claimed), SUITE.ed25519_verify, sign_pub)
    except RemoteProtocolError:  # IntegrityError is a RemoteProtocolError
        return True
    return False


@pytest.mark.parametrize("vector", VECTORS, ids=[str(i) for i in range(len(VECTORS))])
def test_bit_flips_fail(vector: dict[str, str]) -> None:
    block = bytes.fromhex(vector["block"])
    sign_pub = bytes.fromhex(vector["sign_pub"])
    entry = decode_entry(block)
    obj = dagcbor.decode(block)

    # every bit of the signature, re-encoded so that only the signature check can catch it
    for bit in range(64 * 8):
        sig = bytearray(entry.sig)
        sig[bit // 8] ^= 1 << (bit % 8)
        obj["sig"] = sig.hex()
        forged = dagcbor.encode(obj)
        assert _fails(forged, CID.from_block(forged), sign_pub), bit
    obj["sig"] = entry.sig.hex()

    # every bit of the payload that still leaves valid UTF-8
    payload = entry.payload.encode()
    for bit in range(len(payload) * 8):
        changed = bytearray(payload)
        changed[bit // 8] ^= 1 << (bit % 8)
        try:
            obj["payload"] = changed.decode()
        except UnicodeDecodeError:
            continue
        forged = dagcbor.encode(obj)
        assert _fails(forged, CID.from_block(forged), sign_pub), bit

    # and any bit of the block when it is fetched by its CID
    for pos in range(0, len(block)):
        flipped = block[:pos] + bytes([block[pos] ^ (1 << (pos % 8))]) + block[pos + 1 :]
        assert _fails(flipped, entry.cid, sign_pub), pos
