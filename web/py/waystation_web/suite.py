"""The crypto suite of the web app: libsodium.js for curves and boxes, Pyodide's hashlib for hashes.

The JavaScript half is web/src/sodium_bridge.mjs, registered with Pyodide as the module
``waystation_sodium``. This is the one place where its errors (``JsException``) become ours: a
message starting with "integrity:" (a box that does not open, a low-order key) is an
IntegrityError, as in node.crypto._nacl; anything else is a LocalProtocolError (a bug: wrong key
length from our own code).
"""

import hashlib
import hmac as _hmac
from collections.abc import Callable
from typing import Any

from node.crypto.api import BLAKE2B, SHA3_256, SHA256, SHA512, Suite
from node.errors import IntegrityError, LocalProtocolError
from waystation_web.ffi import JsException, to_js

HASHES: dict[str, Callable[..., Any]] = {
    SHA256: hashlib.sha256,
    SHA512: hashlib.sha512,
    SHA3_256: hashlib.sha3_256,
    BLAKE2B: hashlib.blake2b,  # 64-byte digest by default
}


class JsSuite(Suite):
    """Crypto suite backed by libsodium.js (through `bridge`) and hashlib.

    Args:
        bridge: the object made by makeSodiumBridge (web/src/sodium_bridge.mjs).
    """

    name = "libsodium.js"

    def __init__(self, bridge: Any) -> None:
        self._js = bridge

    def _call(self, function: str, *args: Any) -> Any:
        try:
            return getattr(self._js, function)(*(to_js(a) for a in args))
        except JsException as exc:
            text = str(exc)
            if "integrity:" in text:
                raise IntegrityError(text.split("integrity:", 1)[1].strip()) from None
            raise LocalProtocolError("%s failed: %s" % (function, text)) from None

    def _bytes(self, function: str, *args: Any) -> bytes:
        return bytes(self._call(function, *args).to_bytes())

    def random_bytes(self, n: int) -> bytes:
        return self._bytes("random_bytes", n)

    def digest(self, hash_name: str, data: bytes) -> bytes:
        if hash_name not in HASHES:
            raise LocalProtocolError("unknown hash " + repr(hash_name))
        return bytes(HASHES[hash_name](data).digest())

    def hmac(self, hash_name: str, key: bytes, data: bytes) -> bytes:
        if hash_name not in HASHES:
            raise LocalProtocolError("unknown hash " + repr(hash_name))
        return _hmac.new(key, data, HASHES[hash_name]).digest()

    def ed25519_keypair(self, seed: bytes) -> tuple[bytes, bytes]:
        if len(seed) != 32:
            raise LocalProtocolError("an Ed25519 seed is 32 bytes, got %d" % len(seed))
        public, secret = self._call("ed25519_keypair", seed)
        return bytes(public.to_bytes()), bytes(secret.to_bytes())

    def ed25519_sign(self, secret_key: bytes, message: bytes) -> bytes:
        if len(secret_key) != 64:
            raise LocalProtocolError("an Ed25519 secret key is 64 bytes, got %d" % len(secret_key))
        return self._bytes("ed25519_sign", secret_key, message)

    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != 32 or len(signature) != 64:
            return False
        return bool(self._call("ed25519_verify", public_key, message, signature))

    def ed25519_pk_to_x25519(self, public_key: bytes) -> bytes:
        if len(public_key) != 32:
            raise IntegrityError("an Ed25519 public key is 32 bytes, got %d" % len(public_key))
        return self._bytes("ed25519_pk_to_x25519", public_key)

    def ed25519_sk_to_x25519(self, secret_key: bytes) -> bytes:
        if len(secret_key) != 64:
            raise LocalProtocolError("an Ed25519 secret key is 64 bytes, got %d" % len(secret_key))
        return self._bytes("ed25519_sk_to_x25519", secret_key)

    def x25519_public(self, private_key: bytes) -> bytes:
        return self._bytes("x25519_public", private_key)

    def x25519(self, private_key: bytes, public_key: bytes) -> bytes:
        if len(public_key) != 32:
            raise IntegrityError("an X25519 public key is 32 bytes, got %d" % len(public_key))
        return self._bytes("x25519", private_key, public_key)

    def secretbox_seal(self, key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
        return self._bytes("secretbox_seal", key, nonce, plaintext)

    def secretbox_open(self, key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
        return self._bytes("secretbox_open", key, nonce, ciphertext)

    def box_seal(
        self, their_public: bytes, my_secret: bytes, nonce: bytes, plaintext: bytes
    ) -> bytes:
        return self._bytes("box_seal", their_public, my_secret, nonce, plaintext)

    def box_open(
        self, their_public: bytes, my_secret: bytes, nonce: bytes, ciphertext: bytes
    ) -> bytes:
        return self._bytes("box_open", their_public, my_secret, nonce, ciphertext)

    def aead_seal(self, key: bytes, nonce: bytes, associated: bytes, plaintext: bytes) -> bytes:
        return self._bytes("aead_seal", key, nonce, associated, plaintext)

    def aead_open(self, key: bytes, nonce: bytes, associated: bytes, ciphertext: bytes) -> bytes:
        return self._bytes("aead_open", key, nonce, associated, ciphertext)
