# Portable shims (L0). The only place that sniffs the interpreter.
#
# Everything in L0 (node.sync, node.proto, the portable part of node.crypto, node.errors) runs on
# CPython and on the MicroPython unix port. MicroPython differs in ways that matter here:
#   * no `from __future__ import annotations`, no `typing` module: L0 quotes annotations that name
#     typing-only things and imports them under `if TYPE_CHECKING:` (this flag, always False at run
#     time; mypy treats any name TYPE_CHECKING as true);
#   * dicts do not keep insertion order: never rely on it;
#   * `isinstance(True, int)` is False: test for bool before int, and for int with `type(x) is int`;
#   * `int.bit_length` is missing: `bit_length` below;
#   * `hmac`, `hashlib.sha512` and `hashlib.blake2b` are missing: `hmac_sha256` below is built on
#     `hashlib.sha256`, which both interpreters have.

import hashlib
import sys

TYPE_CHECKING = False

IS_MICROPYTHON = sys.implementation.name == "micropython"


def bit_length(value: int) -> int:
    """`int.bit_length` for non-negative ints (MicroPython lacks the method)."""
    if value < 0:
        value = -value
    n = 0
    while value >= 0x10000:
        value >>= 16
        n += 16
    while value:
        value >>= 1
        n += 1
    return n


def sha256(data: bytes) -> bytes:
    """SHA-256 digest (present on both interpreters)."""
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) over `hashlib.sha256`; MicroPython has no `hmac` module."""
    block = 64
    if len(key) > block:
        key = sha256(key)
    key = key + bytes(block - len(key))
    inner = bytes(b ^ 0x36 for b in key)
    outer = bytes(b ^ 0x5C for b in key)
    return sha256(outer + sha256(inner + message))
