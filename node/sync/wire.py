# The compact wire form of log entries (L0, portable). docs/protocol.md §"Entries on the wire".
#
# Theory of operation
# -------------------
# Every entry of a Berty group log repeats the same 36-byte key (three times, as hex), the same
# identity block with the same identity signature (Ed25519 signatures are deterministic), the log
# address, and spells its CIDs and signature in hex. On a BLE link that is most of the bytes. So a
# session sends, once per log, a header with the group signing key and the identity signature, and
# then each entry as only what differs:
#
#   header  = 0x01 (version) || sign_pub (32) || identity signature (64)             97 bytes
#   item    = kind (1 byte) || body
#     kind 0x00  FULL      body = the exact DAG-CBOR block (anything the compact form cannot
#                          rebuild byte for byte is sent this way)
#     kind 0x01  COMPACT   body = uvarint clock time || uvarint n || n x 32-byte next digests
#                          || uvarint m || m x 32-byte refs digests || sig (64) || payload (UTF-8)
#     kind 0x02  COMPACT_ADD  as COMPACT, but the payload is the raw bytes of an orbit-db ADD
#                          operation's value: the text is rebuilt as
#                          {"op":"ADD","value":"<base64 std of the bytes>"} (saves a quarter)
#
# The receiver rebuilds the exact block (node.sync.entry.encode_entry), names it (CID), and the
# caller verifies it (verify_entry) before anything is stored: the wire form is an encoding, never
# a trust shortcut. A FULL item must belong to the log it was sent for. Everything is bounded.
# A relay may forward a compact item it received unchanged (forward_item) only to a peer that got
# the same header from it, since the receiver rebuilds the block with the sender's header.

import binascii

from node.errors import REASON_TOO_LARGE, LocalProtocolError, RemoteProtocolError
from node.sync.cid import CID, DAG_CBOR
from node.sync.entry import (
    IDENTITY_TYPE,
    KEY_PREFIX,
    MAX_LINKS,
    MAX_PAYLOAD,
    VERSION,
    Entry,
    Identity,
    assemble_entry,
    decode_entry,
)
from node.varint import decode_uvarint, encode_uvarint

HEADER_VERSION = 1
HEADER_SIZE = 97
FULL = 0x00
COMPACT = 0x01
COMPACT_ADD = 0x02

_ADD_PREFIX = '{"op":"ADD","value":"'
_ADD_SUFFIX = '"}'


def log_header(sign_pub: bytes, identity_signature: bytes) -> bytes:
    """The per-log header: version, group signing key, identity signature."""
    if len(sign_pub) != 32 or len(identity_signature) != 64:
        raise LocalProtocolError("log header needs a 32-byte key and a 64-byte signature")
    return bytes((HEADER_VERSION,)) + sign_pub + identity_signature


def parse_log_header(data: bytes) -> "tuple[bytes, bytes]":
    """(sign_pub, identity signature) from a log header.

    Raises:
        RemoteProtocolError: wrong version or length.
    """
    if len(data) != HEADER_SIZE or data[0] != HEADER_VERSION:
        raise RemoteProtocolError(
            "log header: expected %d bytes of version %d, got %d bytes"
            % (HEADER_SIZE, HEADER_VERSION, len(data))
        )
    return bytes(data[1:33]), bytes(data[33:97])


def _add_value(payload: str) -> "bytes | None":
    # The raw value of an orbit-db ADD operation, if the payload is exactly one we can rebuild.
    if not (payload.startswith(_ADD_PREFIX) and payload.endswith(_ADD_SUFFIX)):
        return None
    text = payload[len(_ADD_PREFIX) : len(payload) - len(_ADD_SUFFIX)]
    if '"' in text or "\\" in text:
        return None
    try:
        raw = binascii.a2b_base64(text.encode())
    except (ValueError, binascii.Error):
        return None
    if _b64(raw) != text:
        return None
    return bytes(raw)


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode()


def _compactable(entry: Entry, sign_pub: bytes, identity_signature: bytes) -> bool:
    identity = entry.identity
    return (
        entry.v == VERSION
        and entry.key == KEY_PREFIX + sign_pub
        and entry.clock_id == entry.key
        and entry.enc_links is None
        and identity.signature_id == identity_signature
        and identity.signature_public_key == b""
        and identity.public_key == entry.key
        and identity.id == sign_pub.hex()
        and identity.type == IDENTITY_TYPE
        and all(c.codec == DAG_CBOR and c.version == 1 for c in entry.next)
        and all(c.codec == DAG_CBOR and c.version == 1 for c in entry.refs)
    )


def encode_item(entry: Entry, sign_pub: bytes, identity_signature: bytes) -> bytes:
    """The wire item for `entry`: compact when it rebuilds exactly, else the full block."""
    if not _compactable(entry, sign_pub, identity_signature):
        return bytes((FULL,)) + entry.block
    value = _add_value(entry.payload)
    parts = [
        bytes((COMPACT if value is None else COMPACT_ADD,)),
        encode_uvarint(entry.clock_time),
        encode_uvarint(len(entry.next)),
    ]
    parts.extend(c.digest for c in entry.next)
    parts.append(encode_uvarint(len(entry.refs)))
    parts.extend(c.digest for c in entry.refs)
    parts.append(entry.sig)
    parts.append(entry.payload.encode() if value is None else value)
    return b"".join(parts)


def forward_item(
    item: bytes, sent_with: bytes, entry: Entry, sign_pub: bytes, identity_signature: bytes
) -> bytes:
    """The wire item for `entry` to a peer that will rebuild it with our header (sign_pub,
    identity_signature), reusing `item` (received for `entry` from a peer whose header was
    `sent_with` = sign_pub || identity signature) when that rebuilds the same block: a compact
    item is rebuilt from the header, so it is reused only under the same header; anything else is
    encoded again (encode_item)."""
    if item and item[0] != FULL and sent_with == sign_pub + identity_signature:
        return item
    return encode_item(entry, sign_pub, identity_signature)


def _digests(item: bytes, pos: int, what: str) -> "tuple[list[CID], int]":
    count, pos = decode_uvarint(item, pos)
    if count > MAX_LINKS:
        raise RemoteProtocolError(
            "entry item: %d %s links, more than %d" % (count, what, MAX_LINKS)
        )
    end = pos + 32 * count
    if end > len(item):
        raise RemoteProtocolError(
            "entry item: %s links run past the end at offset %d" % (what, pos)
        )
    cids = [CID(DAG_CBOR, bytes(item[p : p + 32])) for p in range(pos, end, 32)]
    return cids, end


def decode_item(
    item: bytes,
    log_id: str,
    sign_pub: bytes,
    identity_signature: bytes,
    max_payload: int = MAX_PAYLOAD,
) -> Entry:
    """Rebuild the entry of one wire item (structure only: the caller must verify_entry it).

    Raises:
        RemoteProtocolError: malformed item, unknown kind, over a bound, or a FULL block for
            another log.
    """
    if not item:
        raise RemoteProtocolError("entry item: empty")
    kind = item[0]
    if kind == FULL:
        entry = decode_entry(bytes(item[1:]), None, max_payload)
        if entry.log_id != log_id:
            raise RemoteProtocolError(
                "entry item: block for log %r sent as log %r" % (entry.log_id[:80], log_id[:80]),
                "unexpected",
            )
        return entry
    if kind != COMPACT and kind != COMPACT_ADD:
        raise RemoteProtocolError("entry item: unknown kind 0x%02x at offset 0" % kind)
    clock_time, pos = decode_uvarint(item, 1)
    next, pos = _digests(item, pos, "next")
    refs, pos = _digests(item, pos, "refs")
    if pos + 64 > len(item):
        raise RemoteProtocolError("entry item: signature runs past the end at offset %d" % pos)
    sig = bytes(item[pos : pos + 64])
    body = bytes(item[pos + 64 :])
    if kind == COMPACT:
        if len(body) > max_payload:
            raise RemoteProtocolError(
                "entry item: payload over %d bytes" % max_payload, REASON_TOO_LARGE
            )
        try:
            payload = body.decode()
        except UnicodeError:
            raise RemoteProtocolError(
                "entry item: payload is not UTF-8 at offset %d" % (pos + 64)
            ) from None
    else:
        payload = _ADD_PREFIX + _b64(body) + _ADD_SUFFIX
        if len(payload) > max_payload:
            raise RemoteProtocolError(
                "entry item: payload over %d bytes" % max_payload, REASON_TOO_LARGE
            )
    if len(set(next)) != len(next) or len(set(refs)) != len(refs):
        raise RemoteProtocolError("entry item: a link is listed twice")
    key = KEY_PREFIX + sign_pub
    identity = Identity(sign_pub.hex(), key, identity_signature)
    return assemble_entry(log_id, payload, next, refs, clock_time, key, sig, identity)
