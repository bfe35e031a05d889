# Content identifiers (CIDv1, sha2-256) as ipfs-log/orbit-db use them (L0, portable).
#
# Theory of operation. A CID names a block by its hash. The binary form we accept and produce is
#
#     0x01                 CID version 1 (varint)
#     varint codec         0x71 dag-cbor or 0x55 raw
#     0x12 0x20            multihash: sha2-256 (varint 0x12), digest length 32 (varint 0x20)
#     32 bytes             sha256(block)
#
# i.e. 36 bytes for both codecs (each codec varint is one byte). Text forms are multibase: "b" +
# base32 lower case without padding (what Go prints, "bafyrei..." for dag-cbor), and "z" +
# base58btc ("zdpu..."), which the ipfs-log entry signature covers. CIDv0 ("Qm...", a bare
# multihash) and every other version, codec, hash function or digest length is refused with a
# RemoteProtocolError saying which; so is anything after the digest. A CID is an immutable value:
# equality and hash follow the binary form, and CIDs order by their binary form.

import hashlib

from node.errors import LocalProtocolError, RemoteProtocolError
from node.sync.multibase import (
    BASE32_PREFIX,
    BASE58BTC_PREFIX,
    base32_encode,
    base58_encode,
    multibase_decode,
)
from node.varint import decode_uvarint, encode_uvarint

DAG_CBOR = 0x71
RAW = 0x55
SHA2_256 = 0x12
SHA2_256_LENGTH = 32

_CODECS = (DAG_CBOR, RAW)
_CODEC_NAMES = {DAG_CBOR: "dag-cbor", RAW: "raw"}


class CID:
    """A CIDv1 with a sha2-256 multihash.

    Attributes:
        version: always 1.
        codec: multicodec of the block (DAG_CBOR or RAW).
        digest: the 32-byte sha2-256 digest of the block.
    """

    __slots__ = ("_binary", "_text", "codec", "digest", "version")

    def __init__(self, codec: int, digest: bytes) -> None:
        if codec not in _CODECS:
            raise LocalProtocolError("unsupported CID codec 0x%x" % (codec,))
        if not isinstance(digest, (bytes, bytearray)) or len(digest) != SHA2_256_LENGTH:
            raise LocalProtocolError("CID digest must be 32 bytes of sha2-256")
        self.version = 1
        self.codec = codec
        self.digest = bytes(digest)
        self._binary = b"\x01" + encode_uvarint(codec) + b"\x12\x20" + self.digest
        self._text = ""

    @classmethod
    def from_block(cls, block: bytes, codec: int = DAG_CBOR) -> "CID":
        """The CID of `block` (sha2-256, CIDv1)."""
        return cls(codec, hashlib.sha256(block).digest())

    @classmethod
    def from_bytes(cls, binary: bytes) -> "CID":
        """Parse the binary form; raises RemoteProtocolError naming what is wrong and where."""
        if len(binary) == 34 and binary[0] == SHA2_256 and binary[1] == SHA2_256_LENGTH:
            raise RemoteProtocolError(
                "CIDv0 (bare sha2-256 multihash) is not supported, need CIDv1"
            )
        version, pos = decode_uvarint(binary, 0)
        if version != 1:
            raise RemoteProtocolError("unsupported CID version %d at offset 0, need 1" % version)
        codec_at = pos
        codec, pos = decode_uvarint(binary, pos)
        if codec not in _CODECS:
            raise RemoteProtocolError(
                "unsupported CID codec 0x%x at offset %d (dag-cbor 0x71 or raw 0x55)"
                % (codec, codec_at)
            )
        hash_at = pos
        hash_code, pos = decode_uvarint(binary, pos)
        if hash_code != SHA2_256:
            raise RemoteProtocolError(
                "unsupported multihash function 0x%x at offset %d, need sha2-256 0x12"
                % (hash_code, hash_at)
            )
        length_at = pos
        length, pos = decode_uvarint(binary, pos)
        if length != SHA2_256_LENGTH:
            raise RemoteProtocolError(
                "multihash digest length %d at offset %d, need 32" % (length, length_at)
            )
        end = pos + SHA2_256_LENGTH
        if len(binary) < end:
            raise RemoteProtocolError(
                "truncated CID digest at offset %d: %d of 32 bytes" % (pos, len(binary) - pos)
            )
        if len(binary) > end:
            raise RemoteProtocolError(
                "%d trailing bytes after CID at offset %d" % (len(binary) - end, end)
            )
        return cls(codec, binary[pos:end])

    @classmethod
    def parse(cls, text: str) -> "CID":
        """Parse "b..." (base32) or "z..." (base58btc) text; raises RemoteProtocolError."""
        if not isinstance(text, str):
            raise LocalProtocolError("CID.parse needs str, got %s" % type(text).__name__)
        if len(text) == 46 and text.startswith("Qm"):
            raise RemoteProtocolError("CIDv0 text (Qm...) is not supported, need CIDv1")
        if len(text) > 100:
            raise RemoteProtocolError("CID text too long: %d characters" % len(text))
        _prefix, binary = multibase_decode(text)
        return cls.from_bytes(binary)

    def to_bytes(self) -> bytes:
        """The binary form: 0x01 ‖ varint codec ‖ 0x12 0x20 ‖ digest."""
        return self._binary

    def to_base32(self) -> str:
        """Multibase base32 text, "bafy..." for dag-cbor (same as str(cid))."""
        if not self._text:
            self._text = BASE32_PREFIX + base32_encode(self._binary)
        return self._text

    def to_base58(self) -> str:
        """Multibase base58btc text, "zdpu..." for dag-cbor."""
        return BASE58BTC_PREFIX + base58_encode(self._binary)

    def __str__(self) -> str:
        return self.to_base32()

    def __repr__(self) -> str:
        return "CID(%s)" % self.to_base32()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CID) and self._binary == other._binary

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self._binary)

    def __lt__(self, other: "CID") -> bool:
        return self._binary < other._binary

    def __le__(self, other: "CID") -> bool:
        return self._binary <= other._binary

    def __gt__(self, other: "CID") -> bool:
        return self._binary > other._binary

    def __ge__(self, other: "CID") -> bool:
        return self._binary >= other._binary
