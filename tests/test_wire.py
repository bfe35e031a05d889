"""The compact wire form of entries: exact rebuild, fallbacks, and hostile items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto._nacl import NaclSuite
from node.errors import IntegrityError, RemoteProtocolError
from node.sync.entry import create_entry, decode_entry, verify_entry
from node.sync.wire import (
    COMPACT,
    COMPACT_ADD,
    FULL,
    decode_item,
    encode_item,
    log_header,
    parse_log_header,
)

SUITE = NaclSuite()
VECTORS = json.loads((Path(__file__).parent / "vectors" / "entries.json").read_text())


def header_of(entry):  # type: ignore[no-untyped-def]
    return entry.sign_pub, entry.identity.signature_id


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"][:40] for v in VECTORS])
def test_every_vector_rebuilds_byte_for_byte(vector: dict[str, str]) -> None:
    entry = decode_entry(bytes.fromhex(vector["block"]))
    sign_pub, id_sig = header_of(entry)
    item = encode_item(entry, sign_pub, id_sig)
    assert item[0] in (COMPACT, COMPACT_ADD)
    rebuilt = decode_item(item, entry.log_id, sign_pub, id_sig)
    assert rebuilt.block == entry.block
    assert str(rebuilt.cid) == vector["cid"]
    verify_entry(rebuilt, SUITE.ed25519_verify, sign_pub)
    assert len(item) < len(entry.block)


def test_compact_add_saves_the_base64_quarter() -> None:
    sk_pub, sk = SUITE.ed25519_keypair(bytes(range(32)))
    value = bytes(range(256)) * 4
    import base64

    payload = '{"op":"ADD","value":"%s"}' % base64.b64encode(value).decode()
    entry = create_entry(
        "/orbitdb/x/y", payload, [], [], 1, sk_pub, lambda m: SUITE.ed25519_sign(sk, m)
    )
    item = encode_item(entry, sk_pub, entry.identity.signature_id)
    assert item[0] == COMPACT_ADD
    assert len(item) < len(payload) * 0.8
    assert (
        decode_item(item, "/orbitdb/x/y", sk_pub, entry.identity.signature_id).block == entry.block
    )


def test_entry_with_another_identity_signature_goes_full() -> None:
    entry = decode_entry(bytes.fromhex(VECTORS[0]["block"]))
    item = encode_item(entry, entry.sign_pub, bytes(64))
    assert item[0] == FULL
    assert decode_item(item, entry.log_id, entry.sign_pub, bytes(64)).block == entry.block


def test_full_block_for_another_log_is_refused() -> None:
    entry = decode_entry(bytes.fromhex(VECTORS[0]["block"]))
    with pytest.raises(RemoteProtocolError, match="sent as log"):
        decode_item(bytes((FULL,)) + entry.block, "/orbitdb/other/log", entry.sign_pub, bytes(64))


def test_tampered_compact_item_fails_verification() -> None:
    entry = decode_entry(bytes.fromhex(VECTORS[3]["block"]))
    sign_pub, id_sig = header_of(entry)
    item = bytearray(encode_item(entry, sign_pub, id_sig))
    item[-1] ^= 1  # the payload
    rebuilt = decode_item(bytes(item), entry.log_id, sign_pub, id_sig)
    with pytest.raises(IntegrityError):
        verify_entry(rebuilt, SUITE.ed25519_verify, sign_pub)


def test_log_header_round_trip_and_refusals() -> None:
    header = log_header(bytes(range(32)), bytes(64))
    assert parse_log_header(header) == (bytes(range(32)), bytes(64))
    with pytest.raises(RemoteProtocolError):
        parse_log_header(header[:-1])
    with pytest.raises(RemoteProtocolError):
        parse_log_header(b"\x02" + header[1:])


def test_truncated_items_raise_remote_errors_only() -> None:
    entry = decode_entry(bytes.fromhex(VECTORS[5]["block"]))
    sign_pub, id_sig = header_of(entry)
    item = encode_item(entry, sign_pub, id_sig)
    fixed_part = len(item) - len(entry.payload.encode())  # COMPACT: everything before the payload
    refused = 0
    for cut in range(len(item)):
        try:
            rebuilt = decode_item(item[:cut], entry.log_id, sign_pub, id_sig)
        except RemoteProtocolError:
            refused += 1
        else:
            assert cut >= fixed_part - 1 and rebuilt.block != entry.block
    assert refused >= fixed_part - 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_items_decode_or_raise_remote_error(data: bytes) -> None:
    try:
        entry = decode_item(data, "/orbitdb/x/y", bytes(32), bytes(64))
    except RemoteProtocolError:
        return
    assert entry.log_id == "/orbitdb/x/y"  # whatever decodes is an entry of the declared log
