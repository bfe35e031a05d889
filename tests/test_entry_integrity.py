"""Every IntegrityError path of node.sync.entry, with real Ed25519 (PyNaCl suite)."""

import pytest

from node.crypto._nacl import NaclSuite
from node.errors import IntegrityError, LocalProtocolError
from node.sync import dagcbor
from node.sync.entry import (
    Entry,
    Identity,
    create_entry,
    decode_entry,
    verify_entry,
)

SUITE = NaclSuite()
PUB, SK = SUITE.ed25519_keypair(bytes(range(32)))
OTHER_PUB, OTHER_SK = SUITE.ed25519_keypair(bytes(range(1, 33)))
LOG = "/orbitdb/bafyreiintegrity/ab_berty_group_messages"


def sign(message: bytes) -> bytes:
    return SUITE.ed25519_sign(SK, message)


def other_sign(message: bytes) -> bytes:
    return SUITE.ed25519_sign(OTHER_SK, message)


@pytest.fixture
def entry() -> Entry:
    parent = create_entry(LOG, "p", [], [], 1, PUB, sign)
    return create_entry(LOG, '{"op":"ADD","value":"AQID"}', [parent.cid], [], 2, PUB, sign)


def reblock(entry: Entry, change: dict) -> bytes:
    obj = dagcbor.decode(entry.block)
    for path, value in change.items():
        target = obj
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = value
    return dagcbor.encode(obj)


def rebuild(entry: Entry, **fields: object) -> Entry:
    """An Entry object with some attributes replaced (for paths decode_entry already closes)."""
    values = {
        name: getattr(entry, name)
        for name in (
            "log_id",
            "payload",
            "next",
            "refs",
            "v",
            "key",
            "sig",
            "clock_id",
            "clock_time",
            "identity",
            "block",
            "cid",
            "enc_links",
            "enc_links_nonce",
        )
    }
    values.update(fields)
    return Entry(**values)  # type: ignore[arg-type]


def test_valid_entry_verifies(entry: Entry) -> None:
    verify_entry(decode_entry(entry.block), SUITE.ed25519_verify, PUB)
    verify_entry(entry, SUITE.ed25519_verify, PUB)


def test_block_does_not_hash_to_claimed_cid(entry: Entry) -> None:
    other = create_entry(LOG, "other", [], [], 1, PUB, sign)
    with pytest.raises(IntegrityError, match=r"block hashes to .* not to " + str(other.cid)):
        verify_entry(decode_entry(entry.block, other.cid), SUITE.ed25519_verify, PUB)
    with pytest.raises(IntegrityError, match=r"block hashes to"):
        verify_entry(rebuild(entry, cid=other.cid), SUITE.ed25519_verify, PUB)


def test_key_is_not_the_logs_key(entry: Entry) -> None:
    with pytest.raises(IntegrityError, match=r"is not the log's key 08011220" + OTHER_PUB.hex()):
        verify_entry(decode_entry(entry.block), SUITE.ed25519_verify, OTHER_PUB)


def test_entry_signed_by_another_key_for_this_log() -> None:
    forged = create_entry(LOG, "x", [], [], 1, OTHER_PUB, other_sign)
    with pytest.raises(IntegrityError, match=r"not the log's key"):
        verify_entry(decode_entry(forged.block), SUITE.ed25519_verify, PUB)


def test_key_not_marshalled_in_block(entry: Entry) -> None:
    bad = "08021220" + PUB.hex()
    with pytest.raises(IntegrityError, match=r"not a marshalled Ed25519 public key"):
        decode_entry(reblock(entry, {"key": bad, "clock.id": bad}))
    with pytest.raises(IntegrityError, match=r"not a marshalled Ed25519 public key"):
        decode_entry(reblock(entry, {"key": bad[:-2], "clock.id": bad[:-2]}))


def test_key_not_marshalled_in_object(entry: Entry) -> None:
    bad = b"\x08\x02\x12\x20" + PUB
    with pytest.raises(IntegrityError, match=r"key is not a marshalled Ed25519 key"):
        verify_entry(rebuild(entry, key=bad), SUITE.ed25519_verify)


def test_clock_id_differs_from_key(entry: Entry) -> None:
    other = "08011220" + OTHER_PUB.hex()
    with pytest.raises(IntegrityError, match=r"clock.id .* differs from key"):
        decode_entry(reblock(entry, {"clock.id": other}))
    with pytest.raises(IntegrityError, match=r"clock.id differs from key"):
        verify_entry(
            rebuild(entry, clock_id=b"\x08\x01\x12\x20" + OTHER_PUB), SUITE.ed25519_verify, PUB
        )


def test_identity_id_is_not_hex_sign_pub(entry: Entry) -> None:
    block = reblock(entry, {"identity.id": OTHER_PUB.hex()})
    with pytest.raises(IntegrityError, match=r"identity.id .* is not hex\(sign_pub\)"):
        verify_entry(decode_entry(block), SUITE.ed25519_verify, PUB)
    block = reblock(entry, {"identity.id": PUB.hex().upper()})
    with pytest.raises(IntegrityError, match=r"identity.id"):
        verify_entry(decode_entry(block), SUITE.ed25519_verify, PUB)


def test_identity_public_key_is_not_the_key(entry: Entry) -> None:
    block = reblock(entry, {"identity.publicKey": "08011220" + OTHER_PUB.hex()})
    with pytest.raises(IntegrityError, match=r"identity.publicKey .* is not the entry key"):
        verify_entry(decode_entry(block), SUITE.ed25519_verify, PUB)


def test_identity_type_is_not_bertys(entry: Entry) -> None:
    identity = entry.identity
    odd = Identity(identity.id, identity.public_key, identity.signature_id, b"", "orbitdb")
    with pytest.raises(IntegrityError, match=r"identity.type 'orbitdb' is not 'betry_group_entry'"):
        verify_entry(rebuild(entry, identity=odd), SUITE.ed25519_verify, PUB)


def test_version_is_not_2(entry: Entry) -> None:
    with pytest.raises(IntegrityError, match=r"version 1 is not 2"):
        verify_entry(rebuild(entry, v=1), SUITE.ed25519_verify, PUB)


def test_encrypted_links_refused(entry: Entry) -> None:
    obj = dagcbor.decode(entry.block)
    obj["enc_links"] = "c2VjcmV0"
    obj["enc_links_nonce"] = "bm9uY2U="
    decoded = decode_entry(dagcbor.encode(obj))
    with pytest.raises(IntegrityError, match=r"encrypted links"):
        verify_entry(decoded, SUITE.ed25519_verify, PUB)


def test_identity_signature_invalid(entry: Entry) -> None:
    block = reblock(entry, {"identity.signatures.id": other_sign(PUB.hex().encode()).hex()})
    with pytest.raises(IntegrityError, match=r"identity.signatures.id is not a signature"):
        verify_entry(decode_entry(block), SUITE.ed25519_verify, PUB)


def test_identity_signature_cache_is_per_signature(entry: Entry) -> None:
    verify_entry(decode_entry(entry.block), SUITE.ed25519_verify, PUB)  # caches the good one
    block = reblock(entry, {"identity.signatures.id": "00" * 64})
    with pytest.raises(IntegrityError, match=r"identity.signatures.id"):
        verify_entry(decode_entry(block), SUITE.ed25519_verify, PUB)


def test_identity_signature_cache_is_per_verifier(entry: Entry) -> None:
    def refuse(pub: bytes, message: bytes, signature: bytes) -> bool:
        return False

    verify_entry(decode_entry(entry.block), SUITE.ed25519_verify, PUB)
    with pytest.raises(IntegrityError, match=r"identity.signatures.id"):
        verify_entry(decode_entry(entry.block), refuse, PUB)


def test_entry_signature_invalid(entry: Entry) -> None:
    block = reblock(entry, {"sig": other_sign(b"anything").hex()})
    with pytest.raises(IntegrityError, match=r"sig is not a signature of the entry's signed bytes"):
        verify_entry(decode_entry(block), SUITE.ed25519_verify, PUB)


@pytest.mark.parametrize(
    "change",
    [
        {"payload": "changed"},
        {"id": LOG + "x"},
        {"clock.time": 3},
        {"next": []},
        {"refs": [create_entry(LOG, "r", [], [], 1, PUB, sign).cid]},
    ],
)
def test_signed_field_changed(entry: Entry, change: dict) -> None:
    with pytest.raises(IntegrityError, match=r"sig is not a signature"):
        verify_entry(decode_entry(reblock(entry, change)), SUITE.ed25519_verify, PUB)


def test_wrong_length_sign_pub_is_caller_error(entry: Entry) -> None:
    with pytest.raises(LocalProtocolError):
        verify_entry(entry, SUITE.ed25519_verify, PUB[:31])


def test_unsigned_fields_do_not_need_resigning(entry: Entry) -> None:
    # identity.signatures.publicKey is neither signed nor bound (Berty leaves it empty)
    block = reblock(entry, {"identity.signatures.publicKey": "abcd"})
    verify_entry(decode_entry(block), SUITE.ed25519_verify, PUB)


def test_identity_memo_is_the_callers_and_bounded(entry: Entry) -> None:
    from node.sync.entry import IDENTITY_CACHE_MAX

    calls: list[bytes] = []

    def counting_verify(pub: bytes, message: bytes, sig: bytes) -> bool:
        calls.append(message)
        return SUITE.ed25519_verify(pub, message, sig)

    memo: dict[tuple[bytes, bytes], bool] = {}
    verify_entry(entry, counting_verify, PUB, memo)
    verify_entry(entry, counting_verify, PUB, memo)
    assert len(calls) == 3  # identity once, then the entry signature twice
    assert memo == {(PUB, entry.identity.signature_id): True}
    calls.clear()
    verify_entry(entry, counting_verify, PUB)  # no memo: nothing is remembered across calls
    verify_entry(entry, counting_verify, PUB)
    assert len(calls) == 4
    memo = {(i.to_bytes(32, "big"), bytes(64)): True for i in range(IDENTITY_CACHE_MAX)}
    verify_entry(entry, counting_verify, PUB, memo)  # full: emptied, then this pair remembered
    assert memo == {(PUB, entry.identity.signature_id): True}
