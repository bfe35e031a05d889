# The field layer of an entry block (L0): the two parsers that read a block's raw field values
# and the checks of single values. node/sync/entry.py builds the Entry from what they return.
#
# Theory of operation. decode_entry first tries fast_fields, which reads the canonical layout
# Berty writes byte by byte (fixed map heads, keys and CID links compared as byte strings) and
# gives up (NotFastPathError) on anything else; generic_fields then decodes the block with the
# strict DAG-CBOR decoder under an item budget and checks the field set, so that it can name what
# is wrong. Both return the same tuple of raw values; neither checks a signature.

from node.errors import REASON_TOO_LARGE, RemoteProtocolError
from node.sync import dagcbor
from node.sync.cid import CID, DAG_CBOR
from node.sync.utf8 import decode_strict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_LINKS = 64  # per list (next, refs)
_ITEM_SLACK = 64  # items beyond the two link lists that decode_entry lets a block announce
_ENTRY_FIELDS = ("clock", "hash", "id", "identity", "key", "next", "payload", "refs", "sig", "v")
_ENC_FIELDS = ("enc_links", "enc_links_nonce")
_CLOCK_FIELDS = ("id", "time")
_IDENTITY_FIELDS = ("id", "publicKey", "signatures", "type")
_SIGNATURES_FIELDS = ("id", "publicKey")


def malformed(message: str) -> RemoteProtocolError:
    return RemoteProtocolError("entry: " + message)


def check_fields(
    obj: object, what: str, required: "tuple[str, ...]", optional: "tuple[str, ...]" = ()
) -> "dict[str, Any]":
    if type(obj) is not dict:
        raise malformed("%s is %s, expected a map" % (what, type(obj).__name__))
    if len(obj) == len(required):
        for k in required:
            if k not in obj:
                break
        else:
            return obj
    keys = set(obj)
    missing = [k for k in required if k not in keys]
    if missing:
        raise malformed("%s lacks field %s" % (what, ", ".join(missing)))
    extra = sorted(k for k in keys if k not in required and k not in optional)
    if extra:
        raise malformed("%s has unexpected field %s" % (what, ", ".join(extra)))
    return obj


def text_field(value: object, what: str) -> str:
    if type(value) is not str:
        raise malformed("%s is %s, expected text" % (what, type(value).__name__))
    return value


def hex_field(value: object, what: str, length: int = -1) -> bytes:
    if type(value) is not str:
        raise malformed("%s is %s, expected hex text" % (what, type(value).__name__))
    try:
        raw: "bytes | None" = bytes.fromhex(value)
    except ValueError:
        raw = None
    if raw is None or raw.hex() != value:
        raise malformed("%s is not lower-case hex: %r" % (what, value[:80]))
    if length >= 0 and len(raw) != length:
        raise malformed("%s is %d bytes, expected %d" % (what, len(raw), length))
    return raw


def links_field(value: object, what: str, max_links: int) -> "list[CID]":
    if type(value) is not list:
        raise malformed("%s is %s, expected a list of CIDs" % (what, type(value).__name__))
    if len(value) > max_links:
        raise RemoteProtocolError(
            "entry: %s has %d CIDs, more than %d" % (what, len(value), max_links),
            REASON_TOO_LARGE,
        )
    for i, c in enumerate(value):
        if not isinstance(c, CID):
            raise malformed("%s[%d] is %s, expected a CID" % (what, i, type(c).__name__))
        if c.codec != DAG_CBOR or c.version != 1:
            raise malformed("%s[%d] %s is not a CIDv1 dag-cbor link" % (what, i, c))
    if len(value) > 1 and len(set(value)) != len(value):
        raise malformed("%s lists a CID twice" % what)
    return value


# The raw field values, in this order, as both parsers hand them to _build:
# v, id, key, sig, hash, next, refs, clock.id, clock.time, payload, identity.id, identity.type,
# identity.publicKey, identity.signatures.id, identity.signatures.publicKey, enc_links,
# enc_links_nonce (the last two None when absent).


# What the head byte of a block that is not a map decodes to (for the message naming it).
_MAJOR_NAMES = ("int", "int", "bytes", "str", "list", "dict", "CID", "NoneType")


def generic_fields(block: bytes, max_links: int = MAX_LINKS) -> "tuple[Any, ...]":
    # Refuse what cannot be an entry before building anything: the top level must be a map, and
    # the whole block can announce no more items than an entry has
    # (20 pairs of maps plus two link lists), with room to spare so that the field checks below
    # still name what is wrong in a near miss. Rejection then costs a small constant times the
    # block (docs/security.md).
    if block and block[0] >> 5 != 5:
        raise malformed("entry is %s, expected a map" % _MAJOR_NAMES[block[0] >> 5])
    decoded = dagcbor.decode(block, 2 * max_links + _ITEM_SLACK)
    obj = check_fields(decoded, "entry", _ENTRY_FIELDS, _ENC_FIELDS)
    clock = check_fields(obj["clock"], "clock", _CLOCK_FIELDS)
    ident = check_fields(obj["identity"], "identity", _IDENTITY_FIELDS)
    sigs = check_fields(ident["signatures"], "identity.signatures", _SIGNATURES_FIELDS)
    enc_links = None
    enc_links_nonce = None
    if len(obj) != len(_ENTRY_FIELDS):
        if "enc_links" not in obj or "enc_links_nonce" not in obj:
            raise malformed("enc_links and enc_links_nonce must come together")
        enc_links = text_field(obj["enc_links"], "enc_links")
        enc_links_nonce = text_field(obj["enc_links_nonce"], "enc_links_nonce")
    return (
        obj["v"], obj["id"], obj["key"], obj["sig"], obj["hash"], obj["next"], obj["refs"],
        clock["id"], clock["time"], obj["payload"], ident["id"], ident["type"],
        ident["publicKey"], sigs["id"], sigs["publicKey"], enc_links, enc_links_nonce,
    )  # fmt: skip


class NotFastPathError(Exception):
    """The block is not in the exact layout Berty writes; take the generic path."""


# The fast path reads the canonical layout Berty writes byte by byte (map heads, keys, CID links
# as fixed byte strings) and hands anything else to the generic decoder, which accepts or refuses
# it with a precise message. It accepts nothing the generic path would refuse: shortest-form
# heads, strict UTF-8, exact CID links, no trailing bytes (tests compare both on mutated blocks).
_F_HEAD = b"\xaa\x61v\x02\x62id"  # map(10) "v" 2 "id"
_F_VERSION = 2  # the v that _F_HEAD spells
_F_KEY = b"\x63key\x78\x48"  # "key" text(72)
_F_SIG = b"\x63sig\x78\x80"  # "sig" text(128)
_F_HASH_NEXT = b"\x64hash\xf6\x64next"
_F_REFS = b"\x64refs"
_F_CLOCK = b"\x65clock\xa2\x62id\x78\x48"  # "clock" map(2) "id" text(72)
_F_TIME = b"\x64time"
_F_PAYLOAD = b"\x67payload"
_F_IDENTITY = b"\x68identity\xa4\x62id"  # "identity" map(4) "id"
_F_TYPE = b"\x64type"
_F_PUBLIC_KEY = b"\x69publicKey"
_F_SIGNATURES = b"\x6asignatures\xa2\x62id"  # "signatures" map(2) "id"
_F_LINK = b"\xd8\x2a\x58\x25\x00\x01\x71\x12\x20"  # tag 42, bytes(37), 0x00, CIDv1 dag-cbor sha256


def fast_fields(block: bytes, max_links: int) -> "tuple[Any, ...]":
    if block[:7] != _F_HEAD:
        raise NotFastPathError
    log_id, pos = _fast_text(block, 7)
    pos = _expect(block, pos, _F_KEY)
    key = block[pos : pos + 72].decode()
    pos = _expect(block, pos + 72, _F_SIG)
    sig = block[pos : pos + 128].decode()
    pos = _expect(block, pos + 128, _F_HASH_NEXT)
    next, pos = _fast_links(block, pos, max_links)
    refs, pos = _fast_links(block, _expect(block, pos, _F_REFS), max_links)
    pos = _expect(block, pos, _F_CLOCK)
    clock_id = block[pos : pos + 72].decode()
    clock_time, pos = _fast_head(block, _expect(block, pos + 72, _F_TIME), 0)
    payload, pos = _fast_text(block, _expect(block, pos, _F_PAYLOAD))
    ident_id, pos = _fast_text(block, _expect(block, pos, _F_IDENTITY))
    ident_type, pos = _fast_text(block, _expect(block, pos, _F_TYPE))
    ident_key, pos = _fast_text(block, _expect(block, pos, _F_PUBLIC_KEY))
    sig_id, pos = _fast_text(block, _expect(block, pos, _F_SIGNATURES))
    sig_key, pos = _fast_text(block, _expect(block, pos, _F_PUBLIC_KEY))
    if pos != len(block) or len(key) != 72 or len(sig) != 128 or len(clock_id) != 72:
        raise NotFastPathError
    return (
        _F_VERSION, log_id, key, sig, None, next, refs, clock_id, clock_time, payload, ident_id,
        ident_type, ident_key, sig_id, sig_key, None, None,
    )  # fmt: skip


def _expect(block: bytes, pos: int, expected: bytes) -> int:
    end = pos + len(expected)
    if block[pos:end] != expected:
        raise NotFastPathError
    return end


def _fast_head(block: bytes, pos: int, major: int) -> "tuple[int, int]":
    """(argument, offset past the head) of an item of type `major`, else not the fast path."""
    found, arg, pos = dagcbor.read_head(block, pos)
    if found != major:
        raise NotFastPathError
    return arg, pos


def _fast_text(block: bytes, pos: int) -> "tuple[str, int]":
    head = block[pos]
    if 0x60 <= head <= 0x77:  # text shorter than 24 bytes: the head is its length
        n = head - 0x60
        pos += 1
    else:
        n, pos = _fast_head(block, pos, 3)
    end = pos + n
    if end > len(block):
        raise NotFastPathError
    text = decode_strict(block[pos:end])
    if text is None:
        raise NotFastPathError
    return text, end


def _fast_links(block: bytes, pos: int, max_links: int) -> "tuple[list[CID], int]":
    n, pos = _fast_head(block, pos, 4)
    if n > max_links or pos + 41 * n > len(block):
        raise NotFastPathError
    links = []
    for _ in range(n):
        if block[pos : pos + 9] != _F_LINK:
            raise NotFastPathError
        links.append(CID(DAG_CBOR, block[pos + 9 : pos + 41]))
        pos += 41
    return links, pos
