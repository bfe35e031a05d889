# ipfs-log v2 entries exactly as Berty writes them (L0). See docs/protocol.md, "Log entries".
#
# Theory of operation
# -------------------
# An entry is one DAG-CBOR block (berty-wesh.md §4.3): a map with the ten keys
#     v (2) · id (log address) · key (hex) · sig (hex) · hash (null) · next ([CID]) · refs ([CID])
#     · clock ({id: hex, time: int}) · payload (text) · identity ({id, type, publicKey, signatures})
# in canonical DAG-CBOR key order (length first, then bytewise; the encoder sorts). Its name is
# CIDv1(dag-cbor, sha2-256(block)). `key` and `clock.id` are the libp2p-marshalled group signing
# key 08 01 12 20 ‖ sign_pub; identity is Berty's "betry_group_entry" identity (the typo is real):
# id = hex(sign_pub), publicKey = hex(key),
# signatures = {id: hex(Sign(sk, utf8(id))), publicKey: ""}.
#
# The signature `sig` covers NOT the block but the Go `encoding/json` bytes of
#     {"clock":{"id":hex(key),"time":T},"hash":null,"id":LOG,"next":[b58…],"payload":P,
#      "refs":[b58…],"v":2}
# (node.sync.gojson reproduces Go's escaping; CIDs in base58btc there). `key` and `identity` are not
# signed, so verify_entry binds them to sign_pub itself, which Berty does not do.
#
# Three steps, each its own function, so a caller pays only for what it needs:
#   create_entry  build, sign (a callable is passed in: no crypto here), encode, name.
#   decode_entry  strict structure only: every field present, of the right type, canonical hex, key
#                 well formed, clock.id == key, bounds. Raises RemoteProtocolError (malformed or
#                 too-large) or IntegrityError (key/clock mismatch). No signature is checked.
#   verify_entry  CID recomputed, key == 08 01 12 20 ‖ sign_pub, identity bound to the key, identity
#                 signature, entry signature. Each failure is an IntegrityError naming what did not
#                 match. The identity signature is the same for every entry of a group, so a
#                 caller may pass its own bounded memo of (sign_pub, signature) pairs already
#                 verified (a store does) and pay one Ed25519 verification per entry, not two.
#
# Decisions (documented in docs/protocol.md, "Log entries"):
#   * v must be 2. Berty writes only v2; v0/v1 blocks have other shapes and signed bytes.
#   * enc_links / enc_links_nonce (go-ipfs-log's encrypted links, §4.6) are parsed when present
#     (both text, both or neither) and kept on the entry, never emitted by create_entry;
#     verify_entry refuses such entries, because their signed bytes cannot be rebuilt faithfully
#     (upstream signs with an empty key and verifies with the real one).
#   * next and refs must list distinct dag-cbor CIDs (Go de-duplicates before writing).
#   * clock.time is an int in [0, 2**63).

from node.errors import (
    REASON_TOO_LARGE,
    IntegrityError,
    LocalProtocolError,
    RemoteProtocolError,
)
from node.sync import dagcbor
from node.sync.cid import CID, DAG_CBOR
from node.sync.entry_fields import MAX_LINKS as MAX_LINKS  # re-exported: node.sync.wire uses it
from node.sync.entry_fields import (
    NotFastPathError,
    hex_field,
    links_field,
    malformed,
    text_field,
)
from node.sync.entry_fields import fast_fields as _fast_fields
from node.sync.entry_fields import generic_fields as _generic_fields
from node.sync.entry_signed import signed_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

VERSION = 2
IDENTITY_TYPE = "betry_group_entry"
KEY_PREFIX = b"\x08\x01\x12\x20"  # libp2p PublicKey{Type: Ed25519, Data: <32 bytes>}
KEY_LENGTH = 36
SIGNATURE_LENGTH = 64
MAX_PAYLOAD = 256 * 1024  # bytes of UTF-8 payload
MAX_LOG_ID = 512  # characters; a Berty store address is about 160
MAX_CLOCK_TIME = 1 << 63
# Everything in a block apart from the payload is bounded by the limits above; this slack lets
# decode_entry refuse an oversized block before parsing it.
_BLOCK_SLACK = 4 * MAX_LOG_ID + 2 * MAX_LINKS * 40 + 1024


class Identity:
    """Berty's entry identity block (berty-wesh.md §4.1).

    Attributes:
        id: hex(sign_pub), lower case.
        public_key: the 36-byte marshalled key (hex in the block).
        signature_id: signature of utf8(id) by the group signing key (64 bytes).
        signature_public_key: bytes; Berty leaves it empty.
        type: "betry_group_entry".
    """

    __slots__ = ("id", "public_key", "signature_id", "signature_public_key", "type")

    def __init__(
        self,
        id: str,
        public_key: bytes,
        signature_id: bytes,
        signature_public_key: bytes = b"",
        type: str = IDENTITY_TYPE,
    ) -> None:
        self.id = id
        self.public_key = public_key
        self.signature_id = signature_id
        self.signature_public_key = signature_public_key
        self.type = type

    def to_obj(self) -> "dict[str, Any]":
        """The identity as the DAG-CBOR map Berty writes."""
        return {
            "id": self.id,
            "type": self.type,
            "publicKey": self.public_key.hex(),
            "signatures": {
                "id": self.signature_id.hex(),
                "publicKey": self.signature_public_key.hex(),
            },
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return (
            self.id == other.id
            and self.public_key == other.public_key
            and self.signature_id == other.signature_id
            and self.signature_public_key == other.signature_public_key
            and self.type == other.type
        )

    def __hash__(self) -> int:
        return hash((self.id, self.public_key, self.signature_id))

    def __repr__(self) -> str:
        return "Identity(id=%r, type=%r)" % (self.id, self.type)


class Entry:
    """One decoded ipfs-log v2 entry. Treat as immutable.

    Attributes:
        log_id: the log (store) address.
        payload: the orbit-db operation JSON, as text.
        next, refs: lists of CID (parents; skip pointers).
        v: 2.
        key: 36 bytes, 08 01 12 20 ‖ sign_pub.
        sig: 64-byte Ed25519 signature over signed_bytes(entry).
        clock_id: 36 bytes (equal to key); clock_time: Lamport time.
        identity: Identity.
        block: the exact DAG-CBOR bytes; cid: the CID it is known by.
        sign_pub: key[4:] (32 bytes).
        enc_links, enc_links_nonce: None, or the text of go-ipfs-log's encrypted links.
    """

    __slots__ = (
        "_cid_checked",
        "_signed",
        "_sort_key",
        "block",
        "cid",
        "clock_id",
        "clock_time",
        "enc_links",
        "enc_links_nonce",
        "identity",
        "key",
        "log_id",
        "next",
        "payload",
        "refs",
        "sig",
        "sign_pub",
        "v",
    )

    def __init__(
        self,
        log_id: str,
        payload: str,
        next: "list[CID]",
        refs: "list[CID]",
        v: int,
        key: bytes,
        sig: bytes,
        clock_id: bytes,
        clock_time: int,
        identity: Identity,
        block: bytes,
        cid: CID,
        enc_links: "str | None" = None,
        enc_links_nonce: "str | None" = None,
    ) -> None:
        self.log_id = log_id
        self.payload = payload
        self.next = next
        self.refs = refs
        self.v = v
        self.key = key
        self.sig = sig
        self.clock_id = clock_id
        self.clock_time = clock_time
        self.identity = identity
        self.block = block
        self.cid = cid
        self.enc_links = enc_links
        self.enc_links_nonce = enc_links_nonce
        self.sign_pub = key[4:]
        self._signed: "bytes | None" = None
        # True when self.cid was computed from self.block here (decode or create), so verify_entry
        # need not hash the block again.
        self._cid_checked = False
        self._sort_key: "tuple[int, bytes, str] | None" = None

    def sort_key(self) -> "tuple[int, bytes, str]":
        """(clock time, clock id, base32 CID): the total order of a log, oldest first."""
        key = self._sort_key
        if key is None:
            key = (self.clock_time, self.clock_id, str(self.cid))
            self._sort_key = key
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return self.cid == other.cid and self.block == other.block

    def __hash__(self) -> int:
        return hash(self.cid)

    def __repr__(self) -> str:
        return "Entry(%s, time=%d, next=%d, refs=%d)" % (
            self.cid,
            self.clock_time,
            len(self.next),
            len(self.refs),
        )


def entry_key(sign_pub: bytes) -> bytes:
    """The entry key: libp2p-marshalled sign_pub, 08 01 12 20 ‖ sign_pub (36 bytes)."""
    if len(sign_pub) != 32:
        raise LocalProtocolError("sign_pub must be 32 bytes, got %d" % len(sign_pub))
    return KEY_PREFIX + sign_pub


def signed_bytes(entry: Entry) -> bytes:
    """The Go-JSON bytes the entry signature covers (cached on the entry)."""
    signed = entry._signed
    if signed is None:
        signed = signed_json(
            entry.log_id,
            entry.payload,
            entry.next,
            entry.refs,
            entry.v,
            entry.clock_id,
            entry.clock_time,
        )
        entry._signed = signed
    return signed


def _unique(cids: "list[CID]", what: str) -> "list[CID]":
    out: "list[CID]" = []
    seen = set()
    for c in cids:
        if not isinstance(c, CID):
            raise LocalProtocolError("%s must hold CIDs, got %s" % (what, type(c).__name__))
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def _entry_obj(
    log_id: str,
    payload: str,
    next: "list[CID]",
    refs: "list[CID]",
    v: int,
    key: bytes,
    sig: bytes,
    clock_id: bytes,
    clock_time: int,
    identity: Identity,
    enc_links: "str | None",
    enc_links_nonce: "str | None",
) -> "dict[str, Any]":
    obj: "dict[str, Any]" = {
        "v": v,
        "id": log_id,
        "key": key.hex(),
        "sig": sig.hex(),
        "hash": None,
        "next": list(next),
        "refs": list(refs),
        "clock": {"id": clock_id.hex(), "time": clock_time},
        "payload": payload,
        "identity": identity.to_obj(),
    }
    if enc_links is not None:
        obj["enc_links"] = enc_links
        obj["enc_links_nonce"] = enc_links_nonce
    return obj


def encode_entry(entry: Entry) -> bytes:
    """Re-encode an entry's fields to its DAG-CBOR block (equals entry.block for a valid entry)."""
    return dagcbor.encode(
        _entry_obj(
            entry.log_id,
            entry.payload,
            entry.next,
            entry.refs,
            entry.v,
            entry.key,
            entry.sig,
            entry.clock_id,
            entry.clock_time,
            entry.identity,
            entry.enc_links,
            entry.enc_links_nonce,
        )
    )


def assemble_entry(
    log_id: str,
    payload: str,
    next: "list[CID]",
    refs: "list[CID]",
    clock_time: int,
    key: bytes,
    sig: bytes,
    identity: Identity,
) -> Entry:
    """Encode and name a v2 entry from its fields (no signing, no checks; see create_entry)."""
    block = dagcbor.encode(
        _entry_obj(
            log_id, payload, next, refs, VERSION, key, sig, key, clock_time, identity, None, None
        )
    )
    return Entry(
        log_id,
        payload,
        next,
        refs,
        VERSION,
        key,
        sig,
        key,
        clock_time,
        identity,
        block,
        CID.from_block(block, DAG_CBOR),
    )


def create_entry(
    log_id: str,
    payload: str,
    next: "list[CID]",
    refs: "list[CID]",
    clock_time: int,
    sign_pub: bytes,
    sign: "Callable[[bytes], bytes]",
) -> Entry:
    """Build, sign, encode and name a v2 entry as Berty's go-ipfs-log does.

    Args:
        log_id: the store address.
        payload: the orbit-db operation JSON text.
        next, refs: CIDs (duplicates are dropped, first occurrence kept, as Go does).
        clock_time: the Lamport time (see node.sync.log.next_clock_time).
        sign_pub: the group signing public key (32 bytes).
        sign: sign(message) -> 64-byte Ed25519 signature by the group signing key.

    Returns:
        The Entry, with block and cid set.

    Raises:
        LocalProtocolError: for arguments Berty could not have written.
    """
    if type(log_id) is not str or not log_id:
        raise LocalProtocolError("log_id must be a non-empty str")
    if type(payload) is not str:
        raise LocalProtocolError("payload must be a str, got %s" % type(payload).__name__)
    if type(clock_time) is not int or not 0 <= clock_time < MAX_CLOCK_TIME:
        raise LocalProtocolError("clock_time must be an int in [0, 2**63)")
    key = entry_key(sign_pub)
    next = _unique(next, "next")
    refs = _unique(refs, "refs")
    identity_id = sign_pub.hex()
    identity_sig = sign(identity_id.encode())
    message = signed_json(log_id, payload, next, refs, VERSION, key, clock_time)
    sig = sign(message)
    if len(sig) != SIGNATURE_LENGTH or len(identity_sig) != SIGNATURE_LENGTH:
        raise LocalProtocolError("sign() must return 64-byte signatures")
    identity = Identity(identity_id, key, identity_sig)
    entry = assemble_entry(log_id, payload, next, refs, clock_time, key, sig, identity)
    entry._signed = message
    entry._cid_checked = True
    return entry


# ---- decoding (the field parsers: entry_fields.py) ---------------------------------------------


def decode_entry(
    block: bytes,
    cid: "CID | None" = None,
    max_payload: int = MAX_PAYLOAD,
    max_links: int = MAX_LINKS,
) -> Entry:
    """Parse a block into an Entry, checking structure only (no signature).

    Args:
        block: the exact DAG-CBOR bytes.
        cid: the CID the block was fetched by; verify_entry checks the block hashes to it. When
            None, the block's own CID is computed here.
        max_payload: largest payload accepted, in UTF-8 bytes.
        max_links: largest accepted length of next and of refs.

    Raises:
        RemoteProtocolError: malformed (reason "malformed") or over a bound ("too-large").
        IntegrityError: key not a marshalled Ed25519 key, or clock.id differing from key.
    """
    if len(block) > max_payload + _BLOCK_SLACK:
        raise RemoteProtocolError(
            "entry: block is %d bytes, too large for a %d-byte payload bound"
            % (len(block), max_payload),
            REASON_TOO_LARGE,
        )
    block = bytes(block)
    try:
        fields = _fast_fields(block, max_links)
    except (NotFastPathError, RemoteProtocolError, IndexError, ValueError, UnicodeError):
        fields = _generic_fields(block, max_links)
    return _build(block, fields, cid, max_payload, max_links)


def _build(
    block: bytes, fields: "tuple[Any, ...]", cid: "CID | None", max_payload: int, max_links: int
) -> Entry:
    (
        v, log_id, key_text, sig_text, hash_value, next, refs, clock_id_text, clock_time, payload,
        ident_id, ident_type, ident_key, sig_id, sig_key, enc_links, enc_links_nonce,
    ) = fields  # fmt: skip
    if type(v) is not int:
        raise malformed("v is %s, expected an int" % type(v).__name__)
    if v != VERSION:
        raise malformed("unsupported entry version v=%d (Berty writes v=2 only)" % v)
    log_id = text_field(log_id, "id")
    if not log_id:
        raise malformed("id (log address) is empty")
    if len(log_id) > MAX_LOG_ID:
        raise RemoteProtocolError(
            "entry: id is %d characters, more than %d" % (len(log_id), MAX_LOG_ID),
            REASON_TOO_LARGE,
        )
    key = hex_field(key_text, "key")
    if len(key) != KEY_LENGTH or key[:4] != KEY_PREFIX:
        raise IntegrityError(
            "entry: key %s is not a marshalled Ed25519 public key (08011220 + 32 bytes)"
            % key.hex()[:80]
        )
    sig = hex_field(sig_text, "sig", SIGNATURE_LENGTH)
    if hash_value is not None:
        raise malformed("hash is %s, expected null" % type(hash_value).__name__)
    next = links_field(next, "next", max_links)
    refs = links_field(refs, "refs", max_links)
    if clock_id_text != key_text:
        clock_id = hex_field(clock_id_text, "clock.id")
        raise IntegrityError(
            "entry: clock.id %s differs from key %s" % (clock_id.hex()[:80], key.hex())
        )
    if type(clock_time) is not int:
        raise malformed("clock.time is %s, expected an int" % type(clock_time).__name__)
    if not 0 <= clock_time < MAX_CLOCK_TIME:
        raise malformed("clock.time %d is outside [0, 2**63)" % clock_time)
    payload = text_field(payload, "payload")
    size = len(payload)
    if size > max_payload or (4 * size > max_payload and len(payload.encode()) > max_payload):
        raise RemoteProtocolError(
            "entry: payload is larger than %d bytes" % max_payload, REASON_TOO_LARGE
        )
    ident_type = text_field(ident_type, "identity.type")
    if ident_type != IDENTITY_TYPE:
        raise malformed("identity.type is %r, expected %r" % (ident_type, IDENTITY_TYPE))
    identity = Identity(
        text_field(ident_id, "identity.id"),
        hex_field(ident_key, "identity.publicKey"),
        hex_field(sig_id, "identity.signatures.id", SIGNATURE_LENGTH),
        hex_field(sig_key, "identity.signatures.publicKey"),
        ident_type,
    )
    entry = Entry(
        log_id, payload, next, refs, v, key, sig, key, clock_time, identity, block,
        cid if cid is not None else CID.from_block(block, DAG_CBOR), enc_links, enc_links_nonce,
    )  # fmt: skip
    entry._cid_checked = cid is None
    return entry


# ---- verification ----------------------------------------------------------------------------

# Most (sign_pub, identity signature) pairs a caller's cache keeps before it is emptied.
IDENTITY_CACHE_MAX = 256


def verify_entry(
    entry: Entry,
    verify: "Callable[[bytes, bytes, bytes], bool]",
    sign_pub: "bytes | None" = None,
    verified_identities: "dict[tuple[bytes, bytes], bool] | None" = None,
) -> None:
    """Check an entry's name, key binding and signatures.

    Args:
        entry: from decode_entry (or create_entry).
        verify: verify(public_key32, message, signature64) -> bool (e.g. Suite.ed25519_verify).
        sign_pub: the log's group signing key; when None, the entry's own key is taken as given
            (the caller must then bind it to the log some other way, e.g. verify_address).
        verified_identities: the caller's own memo of (sign_pub, identity signature) pairs that
            `verify` already accepted (every entry of a group carries the same one, so a store
            verifies it once, not once per entry); bounded to IDENTITY_CACHE_MAX. None: check
            the identity signature every time.

    Raises:
        IntegrityError: naming the first check that failed.
    """
    if not entry._cid_checked:
        actual = CID.from_block(entry.block, DAG_CBOR)
        if actual != entry.cid:
            raise IntegrityError("entry: block hashes to %s, not to %s" % (actual, entry.cid))
        entry._cid_checked = True
    key = entry.key
    if sign_pub is not None:
        if len(sign_pub) != 32:
            raise LocalProtocolError("sign_pub must be 32 bytes, got %d" % len(sign_pub))
        if key != KEY_PREFIX + sign_pub:
            raise IntegrityError(
                "entry %s: key %s is not the log's key 08011220%s"
                % (entry.cid, key.hex(), sign_pub.hex())
            )
    elif len(key) != KEY_LENGTH or key[:4] != KEY_PREFIX:
        raise IntegrityError("entry %s: key is not a marshalled Ed25519 key" % entry.cid)
    if entry.clock_id != key:
        raise IntegrityError("entry %s: clock.id differs from key" % entry.cid)
    pub = key[4:]
    identity = entry.identity
    pub_hex = pub.hex()
    if identity.id != pub_hex:
        raise IntegrityError(
            "entry %s: identity.id %r is not hex(sign_pub) %s"
            % (entry.cid, identity.id[:80], pub_hex)
        )
    if identity.public_key != key:
        raise IntegrityError(
            "entry %s: identity.publicKey %s is not the entry key %s"
            % (entry.cid, identity.public_key.hex()[:80], key.hex())
        )
    if identity.type != IDENTITY_TYPE:
        raise IntegrityError(
            "entry %s: identity.type %r is not %r" % (entry.cid, identity.type, IDENTITY_TYPE)
        )
    if entry.v != VERSION:
        raise IntegrityError("entry %s: version %d is not 2" % (entry.cid, entry.v))
    if entry.enc_links is not None:
        raise IntegrityError(
            "entry %s: uses encrypted links (enc_links), whose signed bytes cannot be rebuilt;"
            " refused" % entry.cid
        )
    cache_key = (pub, identity.signature_id)
    if verified_identities is None or cache_key not in verified_identities:
        if not verify(pub, pub_hex.encode(), identity.signature_id):
            raise IntegrityError(
                "entry %s: identity.signatures.id is not a signature of identity.id by %s"
                % (entry.cid, pub_hex)
            )
        if verified_identities is not None:
            if len(verified_identities) >= IDENTITY_CACHE_MAX:
                verified_identities.clear()
            verified_identities[cache_key] = True
    if not verify(pub, signed_bytes(entry), entry.sig):
        raise IntegrityError(
            "entry %s: sig is not a signature of the entry's signed bytes by %s"
            % (entry.cid, pub_hex)
        )
