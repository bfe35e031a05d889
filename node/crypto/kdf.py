# HKDF (RFC 5869) over an injected Suite (L0).
#
# Berty uses HKDF-SHA256 (ratchet, contact groups) and HKDF-SHA3-256 (link key, out-of-store
# secrets), both with salt = nil, which RFC 5869 defines as HashLen zero bytes.

from node.crypto.api import HASH_LENGTHS
from node.errors import LocalProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from node.crypto.api import Suite


def hkdf_extract(suite: "Suite", hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract; an empty salt means HashLen zero bytes."""
    if not salt:
        salt = bytes(HASH_LENGTHS[hash_name])
    return suite.hmac(hash_name, salt, ikm)


def hkdf_expand(suite: "Suite", hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand to `length` bytes (at most 255 * HashLen)."""
    hash_len = HASH_LENGTHS[hash_name]
    if length > 255 * hash_len:
        raise LocalProtocolError("HKDF output too long: %d" % length)
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = suite.hmac(hash_name, prk, block + info + bytes((counter,)))
        out += block
        counter += 1
    return out[:length]


def hkdf(
    suite: "Suite", hash_name: str, ikm: bytes, salt: bytes, info: bytes, length: int
) -> bytes:
    """HKDF-Extract then HKDF-Expand."""
    return hkdf_expand(suite, hash_name, hkdf_extract(suite, hash_name, salt, ikm), info, length)
