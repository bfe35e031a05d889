# The crypto suite interface (L0).
#
# Theory of operation: portable code never imports a crypto library. Every primitive it needs is a
# method of a Suite object that the caller passes in (the daemon builds one; tests build one). The
# PyNaCl backend lives in node.crypto._nacl (L1). Hash names are the constants below; HKDF and the
# key schedule are built on `hmac` in node.crypto.kdf.
#
# Failures of authenticated decryption raise IntegrityError (never return None), so a caller cannot
# forget to check. Keys are raw bytes: Ed25519 public keys 32 bytes, secret keys 64 bytes
# (seed || public, as libsodium and libp2p's Raw() give them), X25519 keys 32 bytes.

from node.errors import LocalProtocolError

SHA256 = "sha256"
SHA512 = "sha512"
SHA3_256 = "sha3_256"
BLAKE2B = "blake2b"  # 64-byte digest, as Noise's BLAKE2b hash function

HASH_LENGTHS = {SHA256: 32, SHA512: 64, SHA3_256: 32, BLAKE2B: 64}


class Suite:
    """The primitives portable code may use. Subclasses implement every method."""

    name = "abstract"

    def random_bytes(self, n: int) -> bytes:
        """Return `n` bytes from a cryptographically secure source."""
        raise LocalProtocolError("Suite.random_bytes not implemented")

    def digest(self, hash_name: str, data: bytes) -> bytes:
        """Hash `data` with one of SHA256, SHA512, SHA3_256, BLAKE2B."""
        raise LocalProtocolError("Suite.digest not implemented")

    def hmac(self, hash_name: str, key: bytes, data: bytes) -> bytes:
        """HMAC (RFC 2104) of `data` under `key` with the named hash."""
        raise LocalProtocolError("Suite.hmac not implemented")

    def ed25519_keypair(self, seed: bytes) -> "tuple[bytes, bytes]":
        """Return (public 32 B, secret 64 B) for a 32-byte seed."""
        raise LocalProtocolError("Suite.ed25519_keypair not implemented")

    def ed25519_sign(self, secret_key: bytes, message: bytes) -> bytes:
        """Return the 64-byte detached signature of `message`."""
        raise LocalProtocolError("Suite.ed25519_sign not implemented")

    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """True when `signature` is a valid signature of `message` by `public_key`."""
        raise LocalProtocolError("Suite.ed25519_verify not implemented")

    def ed25519_pk_to_x25519(self, public_key: bytes) -> bytes:
        """Edwards to Montgomery conversion of a public key (libsodium's)."""
        raise LocalProtocolError("Suite.ed25519_pk_to_x25519 not implemented")

    def ed25519_sk_to_x25519(self, secret_key: bytes) -> bytes:
        """Clamped SHA-512(seed)[:32] (libsodium's crypto_sign_ed25519_sk_to_curve25519)."""
        raise LocalProtocolError("Suite.ed25519_sk_to_x25519 not implemented")

    def x25519_public(self, private_key: bytes) -> bytes:
        """The X25519 public key of a 32-byte private key."""
        raise LocalProtocolError("Suite.x25519_public not implemented")

    def x25519(self, private_key: bytes, public_key: bytes) -> bytes:
        """X25519 shared secret; raises IntegrityError for a low-order public key."""
        raise LocalProtocolError("Suite.x25519 not implemented")

    def secretbox_seal(self, key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
        """XSalsa20-Poly1305 (NaCl secretbox): return MAC || ciphertext, without the nonce."""
        raise LocalProtocolError("Suite.secretbox_seal not implemented")

    def secretbox_open(self, key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
        """Inverse of secretbox_seal; raises IntegrityError when the box does not open."""
        raise LocalProtocolError("Suite.secretbox_open not implemented")

    def box_seal(
        self, their_public: bytes, my_secret: bytes, nonce: bytes, plaintext: bytes
    ) -> bytes:
        """NaCl crypto_box (X25519 + XSalsa20-Poly1305) without the nonce."""
        raise LocalProtocolError("Suite.box_seal not implemented")

    def box_open(
        self, their_public: bytes, my_secret: bytes, nonce: bytes, ciphertext: bytes
    ) -> bytes:
        """Inverse of box_seal; raises IntegrityError when the box does not open."""
        raise LocalProtocolError("Suite.box_open not implemented")

    def aead_seal(self, key: bytes, nonce: bytes, associated: bytes, plaintext: bytes) -> bytes:
        """ChaCha20-Poly1305 (IETF, 12-byte nonce): ciphertext || tag."""
        raise LocalProtocolError("Suite.aead_seal not implemented")

    def aead_open(self, key: bytes, nonce: bytes, associated: bytes, ciphertext: bytes) -> bytes:
        """Inverse of aead_seal; raises IntegrityError on a bad tag."""
        raise LocalProtocolError("Suite.aead_open not implemented")
