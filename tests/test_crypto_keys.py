"""node.crypto.keys against independent computations (PyNaCl bindings, Python's hmac/hashlib)."""

import hashlib
import hmac

import nacl.bindings as sodium
import pytest

from node.crypto import keys
from node.crypto._nacl import NaclSuite
from node.crypto.keys import (
    GROUP_TYPE_ACCOUNT,
    GROUP_TYPE_CONTACT,
    GROUP_TYPE_MULTI_MEMBER,
    Group,
    ReplicationGroup,
)
from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError

SUITE = NaclSuite()


def seed(n: int) -> bytes:
    return bytes([n]) * 32


def ref_hkdf(digest: str, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with salt = nil, written out independently of node.crypto.kdf."""
    hash_len = hashlib.new(digest).digest_size
    prk = hmac.new(bytes(hash_len), ikm, digest).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), digest).digest()
        out += block
        counter += 1
    return out[:length]


def ref_keypair(s: bytes) -> tuple[bytes, bytes]:
    pk, sk = sodium.crypto_sign_seed_keypair(s)
    return bytes(pk), bytes(sk)


def ref_ecdh_seed(own_sk: bytes, their_pk: bytes) -> bytes:
    return bytes(
        sodium.crypto_scalarmult(
            sodium.crypto_sign_ed25519_sk_to_curve25519(own_sk),
            sodium.crypto_sign_ed25519_pk_to_curve25519(their_pk),
        )
    )


# -- libp2p marshalling -------------------------------------------------------------------------


def test_marshal_public_key():
    pk = ref_keypair(seed(1))[0]
    data = keys.marshal_public_key(pk)
    assert data == bytes.fromhex("08011220") + pk
    assert keys.unmarshal_public_key(data) == pk


def test_marshal_private_key_is_68_bytes():
    sk = ref_keypair(seed(1))[1]
    data = keys.marshal_private_key(sk)
    assert data == bytes.fromhex("08011240") + sk and len(data) == 68
    assert keys.unmarshal_private_key(data) == sk


def test_unmarshal_private_key_legacy_96_byte_form():
    sk = ref_keypair(seed(2))[1]
    assert keys.unmarshal_private_key(bytes.fromhex("08011260") + sk + sk[32:]) == sk
    with pytest.raises(RemoteProtocolError, match="copies differ"):
        keys.unmarshal_private_key(bytes.fromhex("08011260") + sk + bytes(32))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("08011220") + bytes(31),
        bytes.fromhex("08011220") + bytes(33),
        bytes.fromhex("08001220") + bytes(32),  # RSA type
        bytes.fromhex("08011221") + bytes(32),
    ],
)
def test_unmarshal_public_key_rejects(data):
    with pytest.raises(RemoteProtocolError):
        keys.unmarshal_public_key(data)


@pytest.mark.parametrize(
    "data", [b"", bytes.fromhex("08011240") + bytes(63), bytes.fromhex("08021240") + bytes(64)]
)
def test_unmarshal_private_key_rejects(data):
    with pytest.raises(RemoteProtocolError):
        keys.unmarshal_private_key(data)


def test_keypair_matches():
    sk = ref_keypair(seed(3))[1]
    assert keys.keypair_matches(SUITE, sk)
    assert not keys.keypair_matches(SUITE, sk[:32] + bytes(32))
    assert not keys.keypair_matches(SUITE, sk[:40])


def test_marshal_rejects_wrong_sizes():
    with pytest.raises(LocalProtocolError):
        keys.marshal_public_key(bytes(31))
    with pytest.raises(LocalProtocolError):
        keys.marshal_private_key(bytes(32))


# -- X25519 conversion --------------------------------------------------------------------------


def test_x25519_conversion_matches_libsodium():
    pk, sk = ref_keypair(seed(4))
    assert keys.x25519_public_from_ed25519(SUITE, pk) == bytes(
        sodium.crypto_sign_ed25519_pk_to_curve25519(pk)
    )
    x_sk = keys.x25519_secret_from_ed25519(SUITE, sk)
    assert x_sk == bytes(sodium.crypto_sign_ed25519_sk_to_curve25519(sk))
    # weshnet's PrivateKeyToCurve25519: SHA-512(seed)[:32], clamped.
    h = bytearray(hashlib.sha512(seed(4)).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    assert x_sk == bytes(h)
    # The converted secret and public keys are one X25519 key pair.
    assert bytes(sodium.crypto_scalarmult_base(x_sk)) == keys.x25519_public_from_ed25519(SUITE, pk)


def test_ecdh_low_order_key_rejected():
    sk = ref_keypair(seed(5))[1]
    identity_point = bytes([1]) + bytes(31)  # the Edwards identity: low order
    with pytest.raises(IntegrityError):
        keys.ed25519_from_ecdh(SUITE, sk, identity_point)


# -- group record -------------------------------------------------------------------------------


def test_link_key_is_hkdf_sha3_256():
    group_pk = ref_keypair(seed(6))[0]
    secret = seed(7)
    expected = ref_hkdf("sha3_256", secret, group_pk, 32)
    assert keys.compute_link_key(SUITE, group_pk, secret) == expected


def test_multi_member_group_from_seeds():
    group, group_sk = keys.multi_member_group_from_seeds(SUITE, seed(8), seed(9))
    group_pk, ref_group_sk = ref_keypair(seed(8))
    assert group_sk == ref_group_sk
    assert group.public_key == group_pk
    assert group.secret == seed(9)
    assert group.group_type == GROUP_TYPE_MULTI_MEMBER
    assert group.sign_pub == ref_keypair(seed(9))[0]
    assert group.link_key == ref_hkdf("sha3_256", seed(9), group_pk, 32)
    # Ed25519 is deterministic: the signatures are the reference ones byte for byte.
    assert group.secret_sig == bytes(sodium.crypto_sign(seed(9), ref_group_sk)[:64])
    assert group.link_key_sig == bytes(sodium.crypto_sign(group.link_key, ref_group_sk)[:64])
    assert group.is_valid(SUITE)
    group.check(SUITE)
    assert group.signing_keypair(SUITE) == ref_keypair(seed(9))


def test_new_multi_member_group_is_random_and_valid():
    a, _ = keys.new_multi_member_group(SUITE)
    b, _ = keys.new_multi_member_group(SUITE)
    assert a.public_key != b.public_key and a.secret != b.secret
    a.check(SUITE)
    a.for_replication().verify(SUITE)


def _tampered(group: Group, field: str, value: bytes) -> Group:
    args = {name: getattr(group, name) for name in Group.__slots__}
    args[field] = value
    return Group(**args)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("secret_sig", "secret_sig"),
        ("sign_pub", "sign_pub"),
        ("link_key", "link_key is not"),
        ("link_key_sig", "link_key_sig"),
    ],
)
def test_group_check_detects_tampering(field, message):
    group, _ = keys.multi_member_group_from_seeds(SUITE, seed(10), seed(11))
    value = bytearray(getattr(group, field))
    value[0] ^= 1
    with pytest.raises(IntegrityError, match=message):
        _tampered(group, field, bytes(value)).check(SUITE)


def test_is_valid_detects_other_secret():
    group, _ = keys.multi_member_group_from_seeds(SUITE, seed(10), seed(11))
    assert not _tampered(group, "secret", seed(12)).is_valid(SUITE)


def test_multi_member_group_without_signatures_fails_check():
    group, _ = keys.multi_member_group_from_seeds(SUITE, seed(10), seed(11))
    with pytest.raises(IntegrityError, match="secret_sig"):
        _tampered(group, "secret_sig", b"").check(SUITE)
    with pytest.raises(IntegrityError, match="link_key_sig must be 64"):
        _tampered(group, "link_key_sig", b"").check(SUITE)


def test_group_rejects_unknown_type():
    with pytest.raises(LocalProtocolError):
        Group(seed(1), seed(2), b"", 7, seed(3), seed(4), b"")


def test_repr_hides_secrets():
    group, _ = keys.multi_member_group_from_seeds(SUITE, seed(10), seed(11))
    text = repr(group) + repr(group.for_replication())
    assert group.secret.hex() not in text and group.link_key.hex() not in text


# -- contact, member and account derivations ----------------------------------------------------


def ref_contact_group(account_sk: bytes, contact_pk: bytes) -> tuple[bytes, bytes]:
    pair_sk = ref_keypair(ref_ecdh_seed(account_sk, contact_pk))[1]
    okm = ref_hkdf("sha256", pair_sk, b"", 64)
    return ref_keypair(okm[:32])[0], okm[32:]


def test_contact_group_matches_reference_and_is_symmetric():
    alice_pk, alice_sk = ref_keypair(seed(20))
    bob_pk, bob_sk = ref_keypair(seed(21))
    from_alice = keys.contact_group(SUITE, alice_sk, bob_pk)
    from_bob = keys.contact_group(SUITE, bob_sk, alice_pk)
    assert from_alice == from_bob
    assert (from_alice.public_key, from_alice.secret) == ref_contact_group(alice_sk, bob_pk)
    assert from_alice.group_type == GROUP_TYPE_CONTACT
    assert from_alice.secret_sig == b"" and from_alice.link_key_sig == b""
    assert not from_alice.is_valid(SUITE)  # as in weshnet: no secret_sig
    from_alice.check(SUITE)
    # Another contact gives another group.
    carol_pk = ref_keypair(seed(22))[0]
    assert keys.contact_group(SUITE, alice_sk, carol_pk).public_key != from_alice.public_key


def test_contact_pair_key_symmetric():
    alice_pk, alice_sk = ref_keypair(seed(23))
    bob_pk, bob_sk = ref_keypair(seed(24))
    pair = keys.contact_pair_key(SUITE, alice_sk, bob_pk)
    assert pair == keys.contact_pair_key(SUITE, bob_sk, alice_pk)
    assert pair == ref_keypair(ref_ecdh_seed(alice_sk, bob_pk))[1]


def test_contact_group_replication_record_needs_unsigned_mode():
    alice_sk = ref_keypair(seed(25))[1]
    bob_pk = ref_keypair(seed(26))[0]
    record = keys.contact_group(SUITE, alice_sk, bob_pk).for_replication()
    with pytest.raises(IntegrityError, match="link_key_sig"):
        record.verify(SUITE)  # Berty's server rejects it too
    record.verify(SUITE, require_signature=False)


def test_member_key_is_deterministic_per_account():
    group, _ = keys.multi_member_group_from_seeds(SUITE, seed(30), seed(31))
    proof_sk = ref_keypair(seed(32))[1]
    member_sk = keys.member_key(SUITE, proof_sk, group.public_key)
    assert member_sk == ref_keypair(ref_ecdh_seed(proof_sk, group.public_key))[1]
    assert member_sk == keys.member_key(SUITE, proof_sk, group.public_key)
    other_proof_sk = ref_keypair(seed(33))[1]
    assert keys.member_key(SUITE, other_proof_sk, group.public_key) != member_sk


def test_account_group():
    account_pk, account_sk = ref_keypair(seed(40))
    proof_sk = ref_keypair(seed(41))[1]
    group = keys.account_group(SUITE, account_sk, proof_sk)
    assert group.public_key == account_pk
    assert group.secret == seed(41)
    assert group.group_type == GROUP_TYPE_ACCOUNT
    assert group.link_key == ref_hkdf("sha3_256", seed(41), account_pk, 32)
    group.check(SUITE)
    with pytest.raises(LocalProtocolError):
        keys.account_group(SUITE, account_sk, account_sk)


# -- the zero-knowledge record ------------------------------------------------------------------


def test_for_replication_fields():
    group, _ = keys.multi_member_group_from_seeds(SUITE, seed(50), seed(51))
    record = group.for_replication()
    assert record == ReplicationGroup(
        group.public_key, group.sign_pub, group.link_key, group.link_key_sig
    )
    assert not hasattr(record, "secret")
    record.verify(SUITE)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("public_key", bytes(31), "public_key must be 32"),
        ("sign_pub", bytes(33), "sign_pub must be 32"),
        ("link_key", b"", "link_key must be 32"),
        ("link_key_sig", bytes(63), "link_key_sig must be 64"),
        ("link_key_sig", bytes(64), "not a signature"),
        ("link_key", bytes(32), "not a signature"),
        ("public_key", ref_keypair(seed(52))[0], "not a signature"),
    ],
)
def test_replication_group_verify_rejects(field, value, message):
    group, _ = keys.multi_member_group_from_seeds(SUITE, seed(50), seed(51))
    record = group.for_replication()
    setattr(record, field, value)
    with pytest.raises(IntegrityError, match=message):
        record.verify(SUITE)
    with pytest.raises(IntegrityError, match=message):
        record.verify(SUITE, require_signature=False)


# -- the worked example in docs/protocol.md (store address) ------------------------------------


def test_worked_example_group():
    group, _ = keys.multi_member_group_from_seeds(SUITE, seed(1), seed(2))
    assert group.public_key.hex() == (
        "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
    )
    assert group.sign_pub.hex() == (
        "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"
    )
    assert group.link_key.hex() == (
        "4962c34aecbf614f8776039f0d286fba8223b7b3d94b4a94ea288ff69bf6bcbd"
    )
    assert group.secret_sig.hex() == (
        "23c6a658950372e3fa22a44762002cf7ee4c4ee092f351103fa016f3d13de9ac"
        "95b1ec77a718a395353fbe102151696571d21f76bdb019cadf9e82766f2f2a0f"
    )
    assert group.link_key_sig.hex() == (
        "e8745d3194e88aeed8049a1468cff97ddebab66c0ca667e3d01f1c228be946aa"
        "85e4eab72d13a4eb5925852a9bb6d014a906755a700d8d46bc952c559a8da007"
    )


def test_worked_example_contact_group():
    alice_sk = ref_keypair(seed(0x14))[1]
    bob_pk = ref_keypair(seed(0x15))[0]
    group = keys.contact_group(SUITE, alice_sk, bob_pk)
    assert group.public_key.hex() == (
        "09a0d57073c77c90fbe4d1846a639529319510d6ce09ff2bc9bcf20be0834819"
    )
    assert group.secret.hex() == (
        "3b3629566dde0f560aa85c4bdc57e0f1b2313b1b90eb72be3a71d4cd3637dd90"
    )
    assert group.link_key.hex() == (
        "a37593ed1a93329130c2c68bcc9c942e13c3b26ba018e9c35299153bb424b6b1"
    )
