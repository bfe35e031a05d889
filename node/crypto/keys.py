# Keys and the group record, as weshnet builds them (L0; primitives come from the injected Suite).
#
# Theory of operation (reference/berty-wesh.md §1, weshnet pkg/protocoltypes/group.go,
# pkg/secretstore/keys_utils.go, device_keystore_wrapper.go, secret_store.go).
#
# All long-term keys are Ed25519. An Ed25519 secret key here is 64 bytes, seed || public, which is
# both libsodium's form and libp2p's Raw(). X25519 keys come from libsodium's conversions
# (crypto_sign_ed25519_{pk,sk}_to_curve25519), which equal weshnet's cryptoutil.EdwardsToMontgomery:
# the secret is SHA-512(seed)[:32] clamped, the public key the Montgomery u of the Edwards point.
#
# A group record (protobuf `Group`) holds:
#   public_key    32  the group id: an Ed25519 public key
#   secret        32  member-side only: secretbox key, seed of the group signing key, link-key IKM
#   secret_sig    64  Sign(group secret key, secret); multi-member groups only, else empty
#   group_type        0 undefined, 1 account, 2 contact, 3 multi-member
#   sign_pub      32  public key of Ed25519FromSeed(secret): signs every log entry of the group
#   link_key      32  HKDF-SHA3-256(IKM = secret, salt = nil, info = public_key)[:32]
#   link_key_sig  64  Sign(group secret key, link_key); multi-member groups only, else empty
#
# A relay only ever sees the zero-knowledge part (ReplicationGroup): public_key, sign_pub,
# link_key, link_key_sig (weshnet FilterGroupForReplication). It can verify entries (sign_pub)
# and open heads boxes (link_key) but cannot read envelopes or write entries.
#
# How each group is built:
#   multi-member  random group key; secret = a random seed; both signatures by the group key,
#                 which the creator then uses once (initial member announcement) and discards.
#   contact       pair = Ed25519FromSeed(X25519(x(accountSK), x(contactPK))), where x() is the
#                 libsodium conversion; okm = HKDF-SHA256(IKM = Raw(pair) (64 B), salt nil,
#                 info nil, 64 B); public_key = pub(Ed25519FromSeed(okm[:32])); secret = okm[32:].
#                 X25519 is symmetric, so both accounts derive the same group.
#   account       public_key = pub(accountSK); secret = seed(accountProofSK).
#   member key    (multi-member groups) Ed25519FromSeed(X25519(x(accountProofSK), x(groupPK))):
#                 deterministic, so every device of one account gets the same member key.
#
# X25519 notes. weshnet computes X25519 with github.com/aead/ecdh (Go's curve25519.ScalarMult),
# which clamps the scalar; the converted secret is already clamped, so libsodium's
# crypto_scalarmult (our Suite.x25519) gives the same bytes. libsodium additionally refuses a
# low-order public key (all-zero result); Go does not. Such a key can only be hostile, so here it
# raises IntegrityError instead of yielding a predictable key.

from node.crypto.api import SHA3_256, SHA256
from node.crypto.kdf import hkdf
from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from node.crypto.api import Suite

GROUP_TYPE_UNDEFINED = 0
GROUP_TYPE_ACCOUNT = 1
GROUP_TYPE_CONTACT = 2
GROUP_TYPE_MULTI_MEMBER = 3
GROUP_TYPES = (
    GROUP_TYPE_UNDEFINED,
    GROUP_TYPE_ACCOUNT,
    GROUP_TYPE_CONTACT,
    GROUP_TYPE_MULTI_MEMBER,
)

KEY_SIZE = 32
SIGNATURE_SIZE = 64
SECRET_KEY_SIZE = 64

# libp2p crypto.pb PublicKey / PrivateKey {Type = 1 (Ed25519), Data = Raw()}.
LIBP2P_ED25519_PUBLIC_PREFIX = b"\x08\x01\x12\x20"
LIBP2P_ED25519_PRIVATE_PREFIX = b"\x08\x01\x12\x40"


# ----------------------------------------------------------------------------------------------
# libp2p key marshalling


def marshal_public_key(public_key: bytes) -> bytes:
    """libp2p MarshalPublicKey of an Ed25519 key: 08 01 12 20 || pk (36 bytes)."""
    _require_length("Ed25519 public key", public_key, KEY_SIZE)
    return LIBP2P_ED25519_PUBLIC_PREFIX + public_key


def unmarshal_public_key(data: bytes) -> bytes:
    """Inverse of marshal_public_key; RemoteProtocolError unless exactly that form."""
    if len(data) != 4 + KEY_SIZE or data[:4] != LIBP2P_ED25519_PUBLIC_PREFIX:
        raise RemoteProtocolError(
            "not a libp2p-marshalled Ed25519 public key (%d bytes)" % len(data)
        )
    return bytes(data[4:])


def marshal_private_key(secret_key: bytes) -> bytes:
    """libp2p MarshalPrivateKey of an Ed25519 key: 08 01 12 40 || seed || pk (68 bytes)."""
    _require_length("Ed25519 secret key", secret_key, SECRET_KEY_SIZE)
    return LIBP2P_ED25519_PRIVATE_PREFIX + secret_key


def unmarshal_private_key(data: bytes) -> bytes:
    """Inverse of marshal_private_key, returning the 64-byte secret key.

    Also accepts go-libp2p's legacy 96-byte form (08 01 12 60 || seed || pk || pk), as
    UnmarshalEd25519PrivateKey does, when the two copies of the public key agree. The seed is not
    checked against the public key here (that needs the suite): see keypair_matches.
    """
    if len(data) == 4 + SECRET_KEY_SIZE and data[:4] == LIBP2P_ED25519_PRIVATE_PREFIX:
        return bytes(data[4:])
    if len(data) == 4 + 96 and data[:4] == b"\x08\x01\x12\x60":
        if data[36:68] != data[68:100]:
            raise RemoteProtocolError("legacy libp2p Ed25519 private key: public key copies differ")
        return bytes(data[4:68])
    raise RemoteProtocolError("not a libp2p-marshalled Ed25519 private key (%d bytes)" % len(data))


def keypair_matches(suite: "Suite", secret_key: bytes) -> bool:
    """True when the public half of a 64-byte secret key is the one its seed generates."""
    if len(secret_key) != SECRET_KEY_SIZE:
        return False
    return suite.ed25519_keypair(secret_key[:32])[0] == secret_key[32:]


# ----------------------------------------------------------------------------------------------
# Ed25519 -> X25519


def x25519_public_from_ed25519(suite: "Suite", public_key: bytes) -> bytes:
    """Montgomery form of an Ed25519 public key (crypto_sign_ed25519_pk_to_curve25519)."""
    _require_length("Ed25519 public key", public_key, KEY_SIZE)
    return suite.ed25519_pk_to_x25519(public_key)


def x25519_secret_from_ed25519(suite: "Suite", secret_key: bytes) -> bytes:
    """Clamped SHA-512(seed)[:32] (crypto_sign_ed25519_sk_to_curve25519)."""
    _require_length("Ed25519 secret key", secret_key, SECRET_KEY_SIZE)
    return suite.ed25519_sk_to_x25519(secret_key)


def ed25519_from_ecdh(suite: "Suite", own_secret_key: bytes, their_public_key: bytes) -> bytes:
    """weshnet getOrComputeECDH: the 64-byte Ed25519 secret key seeded by X25519(x(own), x(their)).

    Raises IntegrityError when `their_public_key` is not a usable Ed25519 point (low order).
    """
    shared = suite.x25519(
        x25519_secret_from_ed25519(suite, own_secret_key),
        x25519_public_from_ed25519(suite, their_public_key),
    )
    return suite.ed25519_keypair(shared)[1]


def contact_pair_key(suite: "Suite", account_sk: bytes, contact_pk: bytes) -> bytes:
    """The contact pair secret key (`contactGroupSK_<hex contact pk>`), 64 bytes."""
    return ed25519_from_ecdh(suite, account_sk, contact_pk)


def member_key(suite: "Suite", account_proof_sk: bytes, group_pk: bytes) -> bytes:
    """The member secret key for a multi-member group (`memberSK_<hex group pk>`), 64 bytes."""
    return ed25519_from_ecdh(suite, account_proof_sk, group_pk)


# ----------------------------------------------------------------------------------------------
# The group record


def compute_link_key(suite: "Suite", public_key: bytes, secret: bytes) -> bytes:
    """weshnet ComputeLinkKey: HKDF-SHA3-256(IKM = secret, salt = nil, info = public_key)[:32]."""
    return hkdf(suite, SHA3_256, secret, b"", public_key, KEY_SIZE)


class ReplicationGroup:
    """The zero-knowledge group record a relay holds: public_key, sign_pub, link_key, link_key_sig.

    Built by Group.for_replication on a member device, or from a peer's registration (then call
    verify before using it).
    """

    __slots__ = ("link_key", "link_key_sig", "public_key", "sign_pub")

    def __init__(
        self, public_key: bytes, sign_pub: bytes, link_key: bytes, link_key_sig: bytes = b""
    ) -> None:
        self.public_key = bytes(public_key)
        self.sign_pub = bytes(sign_pub)
        self.link_key = bytes(link_key)
        self.link_key_sig = bytes(link_key_sig)

    def verify(self, suite: "Suite", require_signature: bool = True) -> None:
        """Check the record as Berty's replication server does (services_replication.go).

        Lengths: public_key 32, sign_pub 32, link_key 32 (Berty only requires non-empty, but a
        link key of any other size cannot key a secretbox), link_key_sig 64 and
        Ed25519.verify(public_key, link_key, link_key_sig). Only multi-member groups carry a
        link_key_sig; `require_signature=False` accepts an empty one (contact and account groups
        registered by a paired device), never a present but bad one.

        Raises:
            IntegrityError: naming the first field that is wrong.
        """
        _check_length("public_key", self.public_key, KEY_SIZE)
        _check_length("sign_pub", self.sign_pub, KEY_SIZE)
        _check_length("link_key", self.link_key, KEY_SIZE)
        if not self.link_key_sig and not require_signature:
            return
        _check_length("link_key_sig", self.link_key_sig, SIGNATURE_SIZE)
        if not suite.ed25519_verify(self.public_key, self.link_key, self.link_key_sig):
            raise IntegrityError("link_key_sig is not a signature of link_key by public_key")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReplicationGroup):
            return NotImplemented
        return (
            self.public_key == other.public_key
            and self.sign_pub == other.sign_pub
            and self.link_key == other.link_key
            and self.link_key_sig == other.link_key_sig
        )

    def __hash__(self) -> int:
        return hash((self.public_key, self.sign_pub, self.link_key, self.link_key_sig))

    def __repr__(self) -> str:
        # The link key is not shown: it opens heads boxes.
        return "ReplicationGroup(public_key=%s, sign_pub=%s)" % (
            self.public_key.hex(),
            self.sign_pub.hex(),
        )


class Group:
    """A full group record (member side). Build it with one of the module functions:
    new_multi_member_group, multi_member_group_from_seeds, contact_group, account_group, or
    Group.build from known fields."""

    __slots__ = (
        "group_type",
        "link_key",
        "link_key_sig",
        "public_key",
        "secret",
        "secret_sig",
        "sign_pub",
    )

    def __init__(
        self,
        public_key: bytes,
        secret: bytes,
        secret_sig: bytes,
        group_type: int,
        sign_pub: bytes,
        link_key: bytes,
        link_key_sig: bytes,
    ) -> None:
        if group_type not in GROUP_TYPES:
            raise LocalProtocolError("unknown group type %r" % (group_type,))
        self.public_key = bytes(public_key)
        self.secret = bytes(secret)
        self.secret_sig = bytes(secret_sig)
        self.group_type = group_type
        self.sign_pub = bytes(sign_pub)
        self.link_key = bytes(link_key)
        self.link_key_sig = bytes(link_key_sig)

    @classmethod
    def build(
        cls,
        suite: "Suite",
        public_key: bytes,
        secret: bytes,
        group_type: int,
        secret_sig: bytes = b"",
        link_key_sig: bytes = b"",
    ) -> "Group":
        """A record from its independent fields; sign_pub and link_key are derived from them."""
        _require_length("group public key", public_key, KEY_SIZE)
        _require_length("group secret", secret, KEY_SIZE)
        return cls(
            public_key,
            secret,
            secret_sig,
            group_type,
            suite.ed25519_keypair(secret)[0],
            compute_link_key(suite, public_key, secret),
            link_key_sig,
        )

    def signing_keypair(self, suite: "Suite") -> "tuple[bytes, bytes]":
        """The group signing key (public 32, secret 64): Ed25519 seeded by `secret`."""
        return suite.ed25519_keypair(self.secret)

    def is_valid(self, suite: "Suite") -> bool:
        """weshnet Group.IsValid: secret_sig verifies as a signature of secret by public_key.

        False for account and contact groups, which carry no secret_sig (as in weshnet).
        """
        return suite.ed25519_verify(self.public_key, self.secret, self.secret_sig)

    def check(self, suite: "Suite") -> None:
        """Full consistency check of a received record (e.g. a multi-member invitation).

        sign_pub and link_key must be the ones the secret derives; signatures, where present, must
        verify; a multi-member group must carry both signatures.

        Raises:
            IntegrityError: naming the first field that does not match.
        """
        _check_length("public_key", self.public_key, KEY_SIZE)
        _check_length("secret", self.secret, KEY_SIZE)
        if self.sign_pub != suite.ed25519_keypair(self.secret)[0]:
            raise IntegrityError("sign_pub is not the key seeded by the group secret")
        if self.link_key != compute_link_key(suite, self.public_key, self.secret):
            raise IntegrityError("link_key is not HKDF-SHA3-256(secret, info = public_key)")
        wants_secret_sig = self.secret_sig or self.group_type == GROUP_TYPE_MULTI_MEMBER
        if wants_secret_sig and not self.is_valid(suite):
            raise IntegrityError("secret_sig is not a signature of secret by public_key")
        if self.link_key_sig or self.group_type == GROUP_TYPE_MULTI_MEMBER:
            self.for_replication().verify(suite)

    def for_replication(self) -> ReplicationGroup:
        """The zero-knowledge record to hand to a relay (weshnet FilterGroupForReplication)."""
        return ReplicationGroup(self.public_key, self.sign_pub, self.link_key, self.link_key_sig)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Group):
            return NotImplemented
        return (
            self.public_key == other.public_key
            and self.secret == other.secret
            and self.secret_sig == other.secret_sig
            and self.group_type == other.group_type
            and self.sign_pub == other.sign_pub
            and self.link_key == other.link_key
            and self.link_key_sig == other.link_key_sig
        )

    def __hash__(self) -> int:
        return hash((self.public_key, self.secret, self.group_type))

    def __repr__(self) -> str:
        # Never print the secret or the link key.
        return "Group(type=%d, public_key=%s, sign_pub=%s)" % (
            self.group_type,
            self.public_key.hex(),
            self.sign_pub.hex(),
        )


def multi_member_group_from_seeds(
    suite: "Suite", group_seed: bytes, secret: bytes
) -> "tuple[Group, bytes]":
    """weshnet NewGroupMultiMember with its two random draws given (for tests and vectors).

    Args:
        group_seed: 32-byte seed of the group key.
        secret: 32-byte group secret (weshnet: the seed of a fresh Ed25519 key).

    Returns:
        (group, group secret key 64 B). The caller signs the initial member announcement with the
        group secret key and then forgets it.
    """
    _require_length("group seed", group_seed, KEY_SIZE)
    group_pk, group_sk = suite.ed25519_keypair(group_seed)
    link_key = compute_link_key(suite, group_pk, secret)
    group = Group.build(
        suite,
        group_pk,
        secret,
        GROUP_TYPE_MULTI_MEMBER,
        secret_sig=suite.ed25519_sign(group_sk, secret),
        link_key_sig=suite.ed25519_sign(group_sk, link_key),
    )
    return group, group_sk


def new_multi_member_group(suite: "Suite") -> "tuple[Group, bytes]":
    """A fresh multi-member group and its group secret key (see multi_member_group_from_seeds)."""
    return multi_member_group_from_seeds(
        suite, suite.random_bytes(KEY_SIZE), suite.random_bytes(KEY_SIZE)
    )


def contact_group_from_pair_key(suite: "Suite", contact_pair_sk: bytes) -> Group:
    """weshnet getGroupForContact: the contact group of a contact pair secret key (64 bytes)."""
    _require_length("contact pair secret key", contact_pair_sk, SECRET_KEY_SIZE)
    okm = hkdf(suite, SHA256, contact_pair_sk, b"", b"", 2 * KEY_SIZE)
    group_pk = suite.ed25519_keypair(okm[:KEY_SIZE])[0]
    return Group.build(suite, group_pk, okm[KEY_SIZE:], GROUP_TYPE_CONTACT)


def contact_group(suite: "Suite", account_sk: bytes, contact_pk: bytes) -> Group:
    """The contact group between our account (secret key) and a contact's account public key.

    Both sides derive the same group. Raises IntegrityError for an unusable contact key.
    """
    return contact_group_from_pair_key(suite, contact_pair_key(suite, account_sk, contact_pk))


def account_group(suite: "Suite", account_sk: bytes, account_proof_sk: bytes) -> Group:
    """weshnet GetGroupForAccount: public_key = pub(accountSK), secret = seed(accountProofSK)."""
    _require_length("account secret key", account_sk, SECRET_KEY_SIZE)
    _require_length("account proof secret key", account_proof_sk, SECRET_KEY_SIZE)
    if account_sk == account_proof_sk:
        raise LocalProtocolError("the account key must differ from the account proof key")
    return Group.build(suite, account_sk[32:], account_proof_sk[:32], GROUP_TYPE_ACCOUNT)


# ----------------------------------------------------------------------------------------------


def _require_length(what: str, value: bytes, size: int) -> None:
    # Our own caller's argument: a wrong size is a bug on our side.
    if len(value) != size:
        raise LocalProtocolError("%s must be %d bytes, got %d" % (what, size, len(value)))


def _check_length(field: str, value: bytes, size: int) -> None:
    # A field of a record that came from elsewhere.
    if len(value) != size:
        raise IntegrityError("%s must be %d bytes, got %d" % (field, size, len(value)))
