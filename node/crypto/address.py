# orbit-db store addresses as Berty derives them (L0).
#
# Theory of operation (reference/berty-wesh.md §5.1; weshnet orbitdb.go storeForGroup,
# store_options.go defaultACForGroup, orbitdb_signed_entry_accesscontroller.go; go-orbit-db
# baseorbitdb DetermineAddress and utils/create_db_manifest.go). An address is a pure function of
# the group public key, the group signing public key and the store type:
#
#   1. access controller: the Go encoding/json bytes of the map
#        {"group_id": [hex(group_pk)], "store_type": [store_type], "write": [hex(sign_pub)]}
#      (keys sorted, as Go sorts map keys). Its CID is CIDv1, codec raw (0x55), sha2-256. The AC
#      ("bertysimple", SkipManifest) has no manifest block of its own: the CID is all there is.
#   2. name = hex(group_pk) + "_" + store_type.
#   3. manifest: the DAG-CBOR map {"name": name, "type": store_type,
#      "access_controller": "/ipfs/" + base32(ac CID)}; `type` is the orbit-db store type passed to
#      DetermineAddress (e.g. "berty_group_metadata"), not the AC type. Its CID is CIDv1 dag-cbor.
#   4. address = "/orbitdb/" + base32(manifest CID) + "/" + name.
#
# The address is the log id of every entry and the pubsub topic. Because the AC commits to
# sign_pub, a relay that recomputes the address from an entry's key and the group key in the
# name knows the log's writer without any registration (DESIGN.md §2).
#
# parse_address is strict: exactly "/orbitdb/<base32 CIDv1 dag-cbor>/<64 lowercase hex>_<type>",
# with the CID in its canonical base32 text and a type of lowercase letters, digits and "_".
# Anything else raises RemoteProtocolError (addresses arrive from peers).

from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError
from node.sync import dagcbor, gojson
from node.sync.cid import CID, DAG_CBOR, RAW

TYPE_CHECKING = False
if TYPE_CHECKING:
    from node.crypto.api import Suite

METADATA_STORE = "berty_group_metadata"
MESSAGES_STORE = "berty_group_messages"
STORE_TYPES = (METADATA_STORE, MESSAGES_STORE)

ADDRESS_PREFIX = "/orbitdb/"
MAX_ADDRESS_LENGTH = 256
MAX_STORE_TYPE_LENGTH = 64
_STORE_TYPE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_HEX_CHARS = "0123456789abcdef"


def store_name(group_pk: bytes, store_type: str) -> str:
    """The orbit-db database name: hex(group_pk) + "_" + store_type."""
    _check_key("group public key", group_pk)
    _check_store_type_arg(store_type)
    return group_pk.hex() + "_" + store_type


def access_controller_json(group_pk: bytes, sign_pub: bytes, store_type: str) -> bytes:
    """The Go-JSON bytes the access-controller CID hashes."""
    _check_key("group public key", group_pk)
    _check_key("signing public key", sign_pub)
    _check_store_type_arg(store_type)
    return gojson.dumps(
        {"group_id": [group_pk.hex()], "store_type": [store_type], "write": [sign_pub.hex()]}
    )


def access_controller_cid(group_pk: bytes, sign_pub: bytes, store_type: str) -> CID:
    """CIDv1 (raw, sha2-256) of access_controller_json."""
    return CID.from_block(access_controller_json(group_pk, sign_pub, store_type), RAW)


def manifest_block(name: str, store_type: str, ac_cid: CID) -> bytes:
    """The DAG-CBOR manifest block {name, type, access_controller: "/ipfs/<ac cid>"}."""
    return dagcbor.encode(
        {"name": name, "type": store_type, "access_controller": "/ipfs/" + str(ac_cid)}
    )


def manifest_cid(group_pk: bytes, sign_pub: bytes, store_type: str) -> CID:
    """CIDv1 (dag-cbor, sha2-256) of the store's manifest block."""
    ac_cid = access_controller_cid(group_pk, sign_pub, store_type)
    block = manifest_block(store_name(group_pk, store_type), store_type, ac_cid)
    return CID.from_block(block, DAG_CBOR)


def store_address(suite: "Suite", group_pk: bytes, sign_pub: bytes, store_type: str) -> str:
    """The orbit-db address "/orbitdb/<manifest cid>/<hex group_pk>_<store_type>".

    `suite` is accepted for symmetry with the other node.crypto functions; the only hash involved
    is sha2-256, which node.sync.cid computes portably.
    """
    cid = manifest_cid(group_pk, sign_pub, store_type)
    return ADDRESS_PREFIX + str(cid) + "/" + store_name(group_pk, store_type)


def parse_address(text: str) -> "tuple[CID, bytes, str]":
    """Split an address into (manifest CID, group public key, store type).

    Raises:
        RemoteProtocolError: naming what is malformed.
        LocalProtocolError: `text` is not a str.
    """
    if not isinstance(text, str):
        raise LocalProtocolError("parse_address needs str, got %s" % type(text).__name__)
    if len(text) > MAX_ADDRESS_LENGTH:
        raise RemoteProtocolError("store address too long: %d characters" % len(text))
    if not text.startswith(ADDRESS_PREFIX):
        raise RemoteProtocolError("store address does not start with /orbitdb/")
    parts = text[len(ADDRESS_PREFIX) :].split("/")
    if len(parts) != 2:
        raise RemoteProtocolError(
            "store address needs exactly two parts after /orbitdb/, got %d" % len(parts)
        )
    cid_text, name = parts
    if not cid_text.startswith("b"):
        raise RemoteProtocolError("store address manifest CID is not base32 multibase")
    cid = CID.parse(cid_text)
    if cid.codec != DAG_CBOR:
        raise RemoteProtocolError("store address manifest CID is not dag-cbor")
    if str(cid) != cid_text:
        raise RemoteProtocolError("store address manifest CID is not in canonical base32 form")
    if len(name) < 66 or name[64] != "_":
        raise RemoteProtocolError("store name is not <64 hex digits>_<store type>")
    group_hex = name[:64]
    for char in group_hex:
        if char not in _HEX_CHARS:
            raise RemoteProtocolError("store name group key is not lowercase hex: %r" % group_hex)
    store_type = name[65:]
    _check_store_type(store_type)
    return cid, bytes.fromhex(group_hex), store_type


def verify_address(suite: "Suite", address: str, sign_pub: bytes) -> "tuple[bytes, str]":
    """Check that `address` commits to the writer `sign_pub`.

    Returns:
        (group public key, store type) read from the address.

    Raises:
        RemoteProtocolError: the address is malformed.
        IntegrityError: the manifest CID is not the one group key, store type and `sign_pub` give.
    """
    cid, group_pk, store_type = parse_address(address)
    if len(sign_pub) != 32:
        raise IntegrityError("signing public key must be 32 bytes, got %d" % len(sign_pub))
    if manifest_cid(group_pk, sign_pub, store_type) != cid:
        raise IntegrityError(
            "store address manifest %s does not commit to sign_pub %s" % (cid, sign_pub.hex())
        )
    return group_pk, store_type


def _check_key(what: str, key: bytes) -> None:
    if len(key) != 32:
        raise LocalProtocolError("%s must be 32 bytes, got %d" % (what, len(key)))


def _store_type_problem(store_type: str) -> str:
    if not store_type:
        return "store type is empty"
    if len(store_type) > MAX_STORE_TYPE_LENGTH:
        return "store type longer than %d characters" % MAX_STORE_TYPE_LENGTH
    for char in store_type:
        if char not in _STORE_TYPE_CHARS:
            return "store type %r has a character other than a-z, 0-9, _" % store_type
    return ""


def _check_store_type(store_type: str) -> None:
    problem = _store_type_problem(store_type)
    if problem:
        raise RemoteProtocolError(problem)


def _check_store_type_arg(store_type: str) -> None:
    problem = _store_type_problem(store_type)
    if problem:
        raise LocalProtocolError(problem)
