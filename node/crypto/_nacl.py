"""The PyNaCl crypto suite (L1): libsodium for the curves and boxes, hashlib/hmac for hashes.

This is the one place where PyNaCl's exceptions are translated to ours: a box or AEAD that does not
open becomes IntegrityError, a malformed key becomes IntegrityError too (it came from a peer).
"""

import hashlib
import hmac as _hmac
import os

import nacl.bindings as sodium
import nacl.exceptions

from node.crypto.api import BLAKE2B, SHA3_256, SHA256, SHA512, Suite
from node.errors import IntegrityError, LocalProtocolError


class NaclSuite(Suite):
    """Crypto suite backed by PyNaCl (libsodium) and the standard library."""

    name = "pynacl"

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def digest(self, hash_name: str, data: bytes) -> bytes:
        if hash_name == SHA256:
            return hashlib.sha256(data).digest()
        if hash_name == SHA512:
            return hashlib.sha512(data).digest()
        if hash_name == SHA3_256:
            return hashlib.sha3_256(data).digest()
        if hash_name == BLAKE2B:
            return hashlib.blake2b(data).digest()
        raise LocalProtocolError("unknown hash " + repr(hash_name))

    def hmac(self, hash_name: str, key: bytes, data: bytes) -> bytes:
        digestmod = {SHA256: "sha256", SHA512: "sha512", SHA3_256: "sha3_256", BLAKE2B: "blake2b"}
        if hash_name not in digestmod:
            raise LocalProtocolError("unknown hash " + repr(hash_name))
        return _hmac.new(key, data, digestmod[hash_name]).digest()

    def ed25519_keypair(self, seed: bytes) -> tuple[bytes, bytes]:
        if len(seed) != 32:
            raise LocalProtocolError("an Ed25519 seed is 32 bytes, got %d" % len(seed))
        public, secret = sodium.crypto_sign_seed_keypair(seed)
        return bytes(public), bytes(secret)

    def ed25519_sign(self, secret_key: bytes, message: bytes) -> bytes:
        if len(secret_key) != 64:
            raise LocalProtocolError("an Ed25519 secret key is 64 bytes, got %d" % len(secret_key))
        return bytes(sodium.crypto_sign(message, secret_key)[:64])

    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != 32 or len(signature) != 64:
            return False
        try:
            sodium.crypto_sign_open(signature + message, public_key)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True

    def ed25519_pk_to_x25519(self, public_key: bytes) -> bytes:
        try:
            return bytes(sodium.crypto_sign_ed25519_pk_to_curve25519(public_key))
        except (
            nacl.exceptions.RuntimeError,
            nacl.exceptions.ValueError,
            nacl.exceptions.TypeError,
        ) as exc:
            raise IntegrityError("not a valid Ed25519 public key: %s" % exc) from exc

    def ed25519_sk_to_x25519(self, secret_key: bytes) -> bytes:
        if len(secret_key) != 64:
            raise LocalProtocolError("an Ed25519 secret key is 64 bytes, got %d" % len(secret_key))
        return bytes(sodium.crypto_sign_ed25519_sk_to_curve25519(secret_key))

    def x25519_public(self, private_key: bytes) -> bytes:
        return bytes(sodium.crypto_scalarmult_base(private_key))

    def x25519(self, private_key: bytes, public_key: bytes) -> bytes:
        if len(public_key) != 32:
            raise IntegrityError("an X25519 public key is 32 bytes, got %d" % len(public_key))
        try:
            return bytes(sodium.crypto_scalarmult(private_key, public_key))
        except nacl.exceptions.RuntimeError as exc:
            raise IntegrityError("X25519 with a low-order public key") from exc

    def secretbox_seal(self, key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
        return bytes(sodium.crypto_secretbox(plaintext, nonce, key))

    def secretbox_open(self, key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
        try:
            return bytes(sodium.crypto_secretbox_open(ciphertext, nonce, key))
        except (
            nacl.exceptions.CryptoError,
            nacl.exceptions.ValueError,
            nacl.exceptions.TypeError,
        ) as exc:
            raise IntegrityError("secretbox did not open") from exc

    def box_seal(
        self, their_public: bytes, my_secret: bytes, nonce: bytes, plaintext: bytes
    ) -> bytes:
        return bytes(sodium.crypto_box(plaintext, nonce, their_public, my_secret))

    def box_open(
        self, their_public: bytes, my_secret: bytes, nonce: bytes, ciphertext: bytes
    ) -> bytes:
        try:
            return bytes(sodium.crypto_box_open(ciphertext, nonce, their_public, my_secret))
        except (
            nacl.exceptions.CryptoError,
            nacl.exceptions.ValueError,
            nacl.exceptions.TypeError,
        ) as exc:
            raise IntegrityError("box did not open") from exc

    def aead_seal(self, key: bytes, nonce: bytes, associated: bytes, plaintext: bytes) -> bytes:
        return bytes(
            sodium.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, associated, nonce, key)
        )

    def aead_open(self, key: bytes, nonce: bytes, associated: bytes, ciphertext: bytes) -> bytes:
        try:
            return bytes(
                sodium.crypto_aead_chacha20poly1305_ietf_decrypt(ciphertext, associated, nonce, key)
            )
        except (
            nacl.exceptions.CryptoError,
            nacl.exceptions.ValueError,
            nacl.exceptions.TypeError,
        ) as exc:
            raise IntegrityError("AEAD tag did not verify") from exc
