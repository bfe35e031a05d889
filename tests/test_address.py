"""node.crypto.address against an independent computation (json, hashlib, libipld)."""

import hashlib
import json

import libipld
import pytest

from node.crypto import address, keys
from node.crypto._nacl import NaclSuite
from node.crypto.address import (
    MESSAGES_STORE,
    METADATA_STORE,
    parse_address,
    store_address,
    verify_address,
)
from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError
from node.sync.cid import CID, DAG_CBOR

SUITE = NaclSuite()
GROUP, _ = keys.multi_member_group_from_seeds(SUITE, bytes([1]) * 32, bytes([2]) * 32)
GPK = GROUP.public_key
SIGN_PUB = GROUP.sign_pub


def ref_address(group_pk: bytes, sign_pub: bytes, store_type: str) -> str:
    access = {"write": [sign_pub.hex()], "group_id": [group_pk.hex()], "store_type": [store_type]}
    ac_json = json.dumps(access, sort_keys=True, separators=(",", ":")).encode()
    ac_cid = libipld.encode_cid(bytes.fromhex("01551220") + hashlib.sha256(ac_json).digest())
    name = group_pk.hex() + "_" + store_type
    manifest = libipld.encode_dag_cbor(
        {"name": name, "type": store_type, "access_controller": "/ipfs/" + ac_cid}
    )
    manifest_cid = libipld.encode_cid(bytes.fromhex("01711220") + hashlib.sha256(manifest).digest())
    return "/orbitdb/" + manifest_cid + "/" + name


@pytest.mark.parametrize("store_type", [METADATA_STORE, MESSAGES_STORE, "wesh_group_metadata"])
def test_store_address_matches_reference(store_type):
    expected = ref_address(GPK, SIGN_PUB, store_type)
    assert store_address(SUITE, GPK, SIGN_PUB, store_type) == expected


def test_access_controller_json_bytes():
    data = address.access_controller_json(GPK, SIGN_PUB, METADATA_STORE)
    assert data == (
        b'{"group_id":["' + GPK.hex().encode() + b'"],"store_type":["berty_group_metadata"],'
        b'"write":["' + SIGN_PUB.hex().encode() + b'"]}'
    )
    cid = address.access_controller_cid(GPK, SIGN_PUB, METADATA_STORE)
    assert str(cid).startswith("bafkrei")


def test_manifest_block_decodes_to_three_strings():
    ac = address.access_controller_cid(GPK, SIGN_PUB, MESSAGES_STORE)
    block = address.manifest_block(GPK.hex() + "_" + MESSAGES_STORE, MESSAGES_STORE, ac)
    assert libipld.decode_dag_cbor(block) == {
        "name": GPK.hex() + "_berty_group_messages",
        "type": "berty_group_messages",
        "access_controller": "/ipfs/" + str(ac),
    }
    # Canonical order: "name", "type" (4 bytes each), then "access_controller".
    assert block[:6] == b"\xa3\x64name"


def test_the_two_stores_differ():
    meta = store_address(SUITE, GPK, SIGN_PUB, METADATA_STORE)
    msgs = store_address(SUITE, GPK, SIGN_PUB, MESSAGES_STORE)
    assert meta != msgs
    assert meta.split("/")[2] != msgs.split("/")[2]


def test_parse_roundtrip():
    text = store_address(SUITE, GPK, SIGN_PUB, METADATA_STORE)
    cid, group_pk, store_type = parse_address(text)
    assert cid == address.manifest_cid(GPK, SIGN_PUB, METADATA_STORE)
    assert cid.codec == DAG_CBOR
    assert group_pk == GPK and store_type == METADATA_STORE


def test_verify_address_accepts_its_writer():
    text = store_address(SUITE, GPK, SIGN_PUB, MESSAGES_STORE)
    assert verify_address(SUITE, text, SIGN_PUB) == (GPK, MESSAGES_STORE)


def test_verify_address_rejects_other_writer():
    text = store_address(SUITE, GPK, SIGN_PUB, MESSAGES_STORE)
    other, _ = keys.multi_member_group_from_seeds(SUITE, bytes([1]) * 32, bytes([3]) * 32)
    with pytest.raises(IntegrityError, match="does not commit to sign_pub"):
        verify_address(SUITE, text, other.sign_pub)
    with pytest.raises(IntegrityError, match="32 bytes"):
        verify_address(SUITE, text, SIGN_PUB[:31])


def test_verify_address_rejects_swapped_group_or_type():
    text = store_address(SUITE, GPK, SIGN_PUB, MESSAGES_STORE)
    other_gpk = bytes(31) + b"\x01"
    with pytest.raises(IntegrityError):
        verify_address(SUITE, text.replace(GPK.hex(), other_gpk.hex()), SIGN_PUB)
    with pytest.raises(IntegrityError):
        verify_address(SUITE, text.replace(MESSAGES_STORE, METADATA_STORE), SIGN_PUB)


def _good() -> str:
    return store_address(SUITE, GPK, SIGN_PUB, METADATA_STORE)


def _cid_text() -> str:
    return _good().split("/")[2]


def _name() -> str:
    return _good().split("/")[3]


MALFORMED = [
    ("empty", lambda: ""),
    ("no prefix", lambda: _good()[len("/orbitdb") :]),
    ("other prefix", lambda: "/ipfs/" + _cid_text() + "/" + _name()),
    ("missing name", lambda: "/orbitdb/" + _cid_text()),
    ("empty name", lambda: "/orbitdb/" + _cid_text() + "/"),
    ("extra part", lambda: _good() + "/x"),
    ("double slash", lambda: "/orbitdb//" + _cid_text() + "/" + _name()),
    ("base58 cid", lambda: "/orbitdb/" + CID.parse(_cid_text()).to_base58() + "/" + _name()),
    ("upper-case cid", lambda: "/orbitdb/B" + _cid_text()[1:].upper() + "/" + _name()),
    ("cidv0", lambda: "/orbitdb/Qm" + "1" * 44 + "/" + _name()),
    ("raw cid", lambda: "/orbitdb/" + str(CID(0x55, bytes(32))) + "/" + _name()),
    ("truncated cid", lambda: "/orbitdb/" + _cid_text()[:-4] + "/" + _name()),
    ("bad base32", lambda: "/orbitdb/b" + "!" * 58 + "/" + _name()),
    ("upper-case hex", lambda: "/orbitdb/" + _cid_text() + "/" + _name().upper()),
    ("short hex", lambda: "/orbitdb/" + _cid_text() + "/" + _name()[2:]),
    ("non-hex", lambda: "/orbitdb/" + _cid_text() + "/" + "g" * 64 + "_berty_group_metadata"),
    ("no separator", lambda: "/orbitdb/" + _cid_text() + "/" + GPK.hex() + "-berty"),
    ("no store type", lambda: "/orbitdb/" + _cid_text() + "/" + GPK.hex() + "_"),
    ("bad store type", lambda: "/orbitdb/" + _cid_text() + "/" + GPK.hex() + "_Berty"),
    ("unicode type", lambda: "/orbitdb/" + _cid_text() + "/" + GPK.hex() + "_bérty"),
    ("long type", lambda: "/orbitdb/" + _cid_text() + "/" + GPK.hex() + "_" + "a" * 65),
    ("too long", lambda: _good() + "a" * 300),
    ("trailing space", lambda: _good() + " "),
]


@pytest.mark.parametrize(("label", "make"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_parse_rejects_malformed(label, make):
    with pytest.raises(RemoteProtocolError):
        parse_address(make())


def test_parse_rejects_non_str():
    with pytest.raises(LocalProtocolError):
        parse_address(_good().encode())  # type: ignore[arg-type]


def test_store_address_rejects_bad_arguments():
    with pytest.raises(LocalProtocolError):
        store_address(SUITE, GPK[:31], SIGN_PUB, METADATA_STORE)
    with pytest.raises(LocalProtocolError):
        store_address(SUITE, GPK, SIGN_PUB + b"\x00", METADATA_STORE)
    with pytest.raises(LocalProtocolError):
        store_address(SUITE, GPK, SIGN_PUB, "a/b")
    with pytest.raises(LocalProtocolError):
        store_address(SUITE, GPK, SIGN_PUB, "")


def test_worked_example_addresses():
    group, _ = keys.multi_member_group_from_seeds(SUITE, bytes([1]) * 32, bytes([2]) * 32)
    name = group.public_key.hex()
    assert store_address(SUITE, group.public_key, group.sign_pub, METADATA_STORE) == (
        "/orbitdb/bafyreibpawrwzobisbudbduyzfj3mqkrdnfpdpx7w2lp5jq67wv4ng7ysi/"
        + name
        + "_berty_group_metadata"
    )
    assert store_address(SUITE, group.public_key, group.sign_pub, MESSAGES_STORE) == (
        "/orbitdb/bafyreiaqt4mynaa7jg6dutaggtoewcxc3ugtr7w3pslrlch33tbuuen4d4/"
        + name
        + "_berty_group_messages"
    )
    ac = address.access_controller_cid(group.public_key, group.sign_pub, METADATA_STORE)
    assert str(ac) == "bafkreigpcvlcndmka2fgt45hfshfmxjackxcguqtdrlkuoponilx6m3eje"
