"""What the `spake2` package needs from `cryptography`, for Pyodide (which carries no cryptography).

Theory of operation
-------------------
Pairing (node.app.pake) uses the `spake2` package (0.9, MIT, pure Python), which the web app
carries in waystation-py.zip (web/pack_python.py). Of `cryptography` it uses only HKDF with
SHA-256 (``hkdf.HKDF(algorithm=hashes.SHA256(), length, salt=b"", info).derive(data)``, to turn
the code into a scalar). `install()` registers a stand-in with exactly that, built on hmac and
RFC 5869, under the module names spake2 imports; where the real package is importable (CPython)
it does nothing. web/tests/webble.test.mjs checks it on RFC 5869's vector, and pairing with a
real relay (which runs the real cryptography, tests/radio/test_web_ble.py) shows both agree.
"""

import hashlib
import hmac
import sys
import types

HASH_BYTES = 32


class SHA256:
    """The one hash spake2 asks for."""

    name = "sha256"
    digest_size = HASH_BYTES


class HKDF:
    """HKDF-SHA256 (RFC 5869) with cryptography's constructor and `derive`."""

    def __init__(
        self, algorithm: SHA256, length: int, salt: bytes | None, info: bytes | None
    ) -> None:
        if not isinstance(algorithm, SHA256) or length > 255 * HASH_BYTES:
            raise ValueError("HKDF stand-in: SHA-256 only, at most 8160 bytes")
        self._length = length
        self._salt = salt or bytes(HASH_BYTES)
        self._info = info or b""

    def derive(self, key_material: bytes) -> bytes:
        """The output keying material."""
        prk = hmac.new(self._salt, key_material, hashlib.sha256).digest()
        out, block, counter = b"", b"", 0
        while len(out) < self._length:
            counter += 1
            block = hmac.new(prk, block + self._info + bytes((counter,)), hashlib.sha256).digest()
            out += block
        return out[: self._length]


def install() -> None:
    """Make ``cryptography.hazmat.primitives.{hashes,kdf.hkdf}`` importable if they are not."""
    try:
        import cryptography.hazmat.primitives.kdf.hkdf  # noqa: F401

        return
    except ImportError:
        pass
    base = "cryptography.hazmat.primitives"
    for name in ("cryptography", "cryptography.hazmat", base, base + ".kdf"):
        sys.modules[name] = types.ModuleType(name)
    hashes = types.ModuleType(base + ".hashes")
    hashes.SHA256 = SHA256  # type: ignore[attr-defined]
    hkdf = types.ModuleType(base + ".kdf.hkdf")
    hkdf.HKDF = HKDF  # type: ignore[attr-defined]
    sys.modules[hashes.__name__] = hashes
    sys.modules[hkdf.__name__] = hkdf
    sys.modules[base].hashes = hashes  # type: ignore[attr-defined]
    sys.modules[base + ".kdf"].hkdf = hkdf  # type: ignore[attr-defined]
