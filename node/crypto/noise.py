# Noise_XX_25519_ChaChaPoly_BLAKE2b, sans-IO (L0).
#
# Theory of operation
# -------------------
# This is the Noise Protocol Framework (revision 34) for exactly one protocol name, the one every
# Waystation link uses (DESIGN.md §3). No I/O, no clock, no logging: bytes in, bytes out. Every
# primitive comes from the injected Suite: X25519 (`x25519`, `x25519_public`), ChaCha20-Poly1305
# IETF (`aead_seal`, `aead_open`), BLAKE2b-512 (`digest`) and HMAC-BLAKE2b (`hmac`, through
# node.crypto.kdf, whose HKDF with an empty `info` is exactly Noise's HKDF). Ephemeral keys come
# from `suite.random_bytes` unless the caller injects them (test vectors do).
#
# The layers follow the specification's names:
#   CipherState    key k and 64-bit counter n; the 12-byte AEAD nonce is 4 zero bytes followed by
#                  n little-endian. n = 2^64-1 is reserved: using it is an error (no rekey here).
#   SymmetricState chaining key ck and handshake hash h (HASHLEN 64, BLOCKLEN 128 inside HMAC).
#   NoiseHandshake the XX pattern, three messages:
#                      -> e                       32 + len(payload)
#                      <- e, ee, s, es            32 + 48 + len(payload) + 16
#                      -> s, se                   48 + len(payload) + 16
#                  then split() into a NoiseTransport (one CipherState per direction).
#
# State machine of NoiseHandshake (index = number of handshake messages processed so far):
#   index 0, 2 : the initiator may write, the responder may read
#   index 1    : the responder may write, the initiator may read
#   index 3    : complete -> transport() may be called once; read/write are errors
#   ERROR      : entered when read_message rejects its input; every later call is an error.
# Calling out of turn raises LocalProtocolError. Input from the peer that is too short, too long,
# fails its tag or carries a low-order X25519 key raises RemoteProtocolError (IntegrityError for
# cryptographic failures) and moves the handshake to ERROR.
#
# NoiseTransport enforces the 65535-byte Noise message limit both ways. After a message fails to
# decrypt, the receiving direction refuses further input (the session must end); the sending
# direction still works so that the session can say `bye`.

from node.crypto.api import BLAKE2B
from node.crypto.kdf import hkdf
from node.errors import (
    REASON_TOO_LARGE,
    IntegrityError,
    LocalProtocolError,
    RemoteProtocolError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from node.crypto.api import Suite

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_BLAKE2b"
# The prologue every Waystation link uses (docs/protocol.md, "Noise XX"): a version change makes
# the handshake fail at message 2 instead of running with mismatched expectations.
WAYSTATION_PROLOGUE = b"waystation/1"
DHLEN = 32
HASHLEN = 64
TAGLEN = 16
MAX_MESSAGE_LEN = 65535
MAX_NONCE = 0xFFFFFFFFFFFFFFFF  # 2^64 - 1, reserved by the specification
MAX_TRANSPORT_PAYLOAD = MAX_MESSAGE_LEN - TAGLEN

# The XX message patterns and the fixed overhead of each message (keys and tags, no payload).
_XX_PATTERNS = (("e",), ("e", "ee", "s", "es"), ("s", "se"))
_XX_OVERHEAD = (DHLEN, DHLEN + DHLEN + TAGLEN + TAGLEN, DHLEN + TAGLEN + TAGLEN)

# X25519 public keys of small order (libsodium's blacklist; bit 255 is ignored by X25519, so it is
# cleared before comparing). A DH with one of these gives a result independent of our secret key.
_LOW_ORDER_POINTS = (
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
)
_ZERO_DH = bytes(DHLEN)
_NONCE_PREFIX = bytes(4)


def is_low_order(public_key: bytes) -> bool:
    """True when an X25519 public key is one of the small-order points (bit 255 ignored)."""
    if len(public_key) != DHLEN:
        return False
    return public_key[:31] + bytes((public_key[31] & 0x7F,)) in _LOW_ORDER_POINTS


class CipherState:
    """A key and a nonce counter (Noise §5.1). Without a key, encryption is the identity."""

    __slots__ = ("_key", "_nonce", "_suite")

    def __init__(self, suite: "Suite", key: "bytes | None" = None) -> None:
        self._suite = suite
        self._key = key
        self._nonce = 0

    def initialize_key(self, key: "bytes | None") -> None:
        """Set the key (or None) and reset the nonce to zero."""
        self._key = key
        self._nonce = 0

    def has_key(self) -> bool:
        """True once a key is set."""
        return self._key is not None

    @property
    def nonce(self) -> int:
        """The counter the next message will use."""
        return self._nonce

    def set_nonce(self, nonce: int) -> None:
        """Set the counter (the specification's SetNonce; tests use it for the limit)."""
        if nonce < 0 or nonce > MAX_NONCE:
            raise LocalProtocolError("nonce out of range: %d" % nonce)
        self._nonce = nonce

    def _nonce_bytes(self) -> bytes:
        return _NONCE_PREFIX + self._nonce.to_bytes(8, "little")

    def encrypt_with_ad(self, associated: bytes, plaintext: bytes) -> bytes:
        """Encrypt and advance the nonce; the plaintext itself when there is no key.

        Raises:
            LocalProtocolError: the nonce space is exhausted.
        """
        key = self._key
        if key is None:
            return plaintext
        if self._nonce >= MAX_NONCE:
            raise LocalProtocolError("Noise nonce exhausted: the session must end")
        ciphertext = self._suite.aead_seal(key, self._nonce_bytes(), associated, plaintext)
        self._nonce += 1
        return ciphertext

    def decrypt_with_ad(self, associated: bytes, ciphertext: bytes) -> bytes:
        """Decrypt and advance the nonce (not advanced on failure).

        Raises:
            IntegrityError: the tag does not verify (or the input is shorter than a tag).
            RemoteProtocolError: the nonce space is exhausted.
        """
        key = self._key
        if key is None:
            return ciphertext
        if self._nonce >= MAX_NONCE:
            raise RemoteProtocolError("Noise nonce exhausted: the session must end")
        if len(ciphertext) < TAGLEN:
            raise IntegrityError("Noise ciphertext shorter than its %d-byte tag" % TAGLEN)
        plaintext = self._suite.aead_open(key, self._nonce_bytes(), associated, ciphertext)
        self._nonce += 1
        return plaintext


class SymmetricState:
    """Chaining key, handshake hash and the handshake CipherState (Noise §5.2)."""

    __slots__ = ("_suite", "cipher", "ck", "h")

    def __init__(self, suite: "Suite", protocol_name: bytes = PROTOCOL_NAME) -> None:
        self._suite = suite
        if len(protocol_name) <= HASHLEN:
            h = protocol_name + bytes(HASHLEN - len(protocol_name))
        else:
            h = suite.digest(BLAKE2B, protocol_name)
        self.h = h
        self.ck = h
        self.cipher = CipherState(suite)

    def _hkdf(self, ikm: bytes, outputs: int) -> bytes:
        # Noise's HKDF(ck, ikm) = HKDF-Extract(salt=ck) then Expand with empty info.
        return hkdf(self._suite, BLAKE2B, ikm, self.ck, b"", outputs * HASHLEN)

    def mix_key(self, input_key_material: bytes) -> None:
        """ck, temp_k = HKDF(ck, ikm, 2); the cipher key is temp_k truncated to 32 bytes."""
        out = self._hkdf(input_key_material, 2)
        self.ck = out[:HASHLEN]
        self.cipher.initialize_key(out[HASHLEN : HASHLEN + 32])

    def mix_hash(self, data: bytes) -> None:
        """h = HASH(h || data)."""
        self.h = self._suite.digest(BLAKE2B, self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """Encrypt with h as associated data, then mix the ciphertext into h."""
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """Decrypt with h as associated data, then mix the ciphertext into h."""
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> "tuple[CipherState, CipherState]":
        """The two transport CipherStates: (initiator -> responder, responder -> initiator)."""
        out = self._hkdf(b"", 2)
        return (
            CipherState(self._suite, out[:32]),
            CipherState(self._suite, out[HASHLEN : HASHLEN + 32]),
        )


class NoiseTransport:
    """The two directions of a completed handshake.

    Attributes:
        handshake_hash: the final h (64 bytes), for channel binding.
        remote_static: the peer's X25519 static public key (32 bytes).
        local_static: our own X25519 static public key.
        initiator: whether we were the initiator.
    """

    __slots__ = (
        "_broken",
        "_receiving",
        "_sending",
        "handshake_hash",
        "initiator",
        "local_static",
        "remote_static",
    )

    def __init__(
        self,
        sending: CipherState,
        receiving: CipherState,
        handshake_hash: bytes,
        local_static: bytes,
        remote_static: bytes,
        initiator: bool,
    ) -> None:
        self._sending = sending
        self._receiving = receiving
        self._broken = False
        self.handshake_hash = handshake_hash
        self.local_static = local_static
        self.remote_static = remote_static
        self.initiator = initiator

    def get_handshake_hash(self) -> bytes:
        """The handshake hash h (64 bytes), identical on both sides."""
        return self.handshake_hash

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> bytes:
        """Seal one transport message (at most 65535 bytes with its tag).

        Raises:
            LocalProtocolError: plaintext longer than 65519 bytes, or nonce exhausted.
        """
        if len(plaintext) > MAX_TRANSPORT_PAYLOAD:
            raise LocalProtocolError(
                "Noise transport payload of %d bytes exceeds %d"
                % (len(plaintext), MAX_TRANSPORT_PAYLOAD)
            )
        return self._sending.encrypt_with_ad(associated, plaintext)

    def decrypt(self, ciphertext: bytes, associated: bytes = b"") -> bytes:
        """Open one transport message.

        Raises:
            LocalProtocolError: a previous message failed; this direction is closed.
            RemoteProtocolError: the message is longer than 65535 bytes.
            IntegrityError: shorter than a tag, or the tag does not verify.
        """
        if self._broken:
            raise LocalProtocolError("Noise transport already rejected a message")
        if len(ciphertext) > MAX_MESSAGE_LEN:
            self._broken = True
            raise RemoteProtocolError(
                "Noise message of %d bytes exceeds %d" % (len(ciphertext), MAX_MESSAGE_LEN),
                REASON_TOO_LARGE,
            )
        try:
            return self._receiving.decrypt_with_ad(associated, ciphertext)
        except RemoteProtocolError:
            self._broken = True
            raise

    @property
    def send_nonce(self) -> int:
        """Messages sent so far."""
        return self._sending.nonce

    @property
    def receive_nonce(self) -> int:
        """Messages received so far."""
        return self._receiving.nonce


_ERROR = -1
_COMPLETE = len(_XX_PATTERNS)


class NoiseHandshake:
    """One side of a Noise_XX_25519_ChaChaPoly_BLAKE2b handshake.

    Args:
        suite: the crypto suite.
        initiator: True for the side that writes the first message.
        static_private: our 32-byte X25519 static private key.
        prologue: bytes both sides must agree on (mixed into h before the first message).
        ephemeral_private: a fixed 32-byte ephemeral private key (test vectors only); by default
            one is drawn from `suite.random_bytes` when the first `e` token is written.
    """

    __slots__ = (
        "_ephemeral_private",
        "_index",
        "_initiator",
        "_remote_ephemeral",
        "_remote_static",
        "_static_private",
        "_static_public",
        "_suite",
        "_symmetric",
        "_transport_taken",
    )

    def __init__(
        self,
        suite: "Suite",
        initiator: bool,
        static_private: bytes,
        prologue: bytes = b"",
        ephemeral_private: "bytes | None" = None,
    ) -> None:
        if len(static_private) != DHLEN:
            raise LocalProtocolError("an X25519 static private key is 32 bytes")
        if ephemeral_private is not None and len(ephemeral_private) != DHLEN:
            raise LocalProtocolError("an X25519 ephemeral private key is 32 bytes")
        self._suite = suite
        self._initiator = initiator is True
        self._static_private = static_private
        self._static_public = suite.x25519_public(static_private)
        self._ephemeral_private = ephemeral_private
        self._remote_ephemeral: "bytes | None" = None
        self._remote_static: "bytes | None" = None
        self._index = 0
        self._transport_taken = False
        self._symmetric = SymmetricState(suite, PROTOCOL_NAME)
        self._symmetric.mix_hash(prologue)

    # -- state ----------------------------------------------------------------------------------

    @property
    def initiator(self) -> bool:
        """True on the initiating side."""
        return self._initiator

    @property
    def static_public(self) -> bytes:
        """Our X25519 static public key."""
        return self._static_public

    @property
    def remote_static(self) -> "bytes | None":
        """The peer's static public key once received (message 2 for the initiator, 3 for the
        responder); None before."""
        return self._remote_static

    def is_complete(self) -> bool:
        """True after the third message has been written or read."""
        return self._index == _COMPLETE

    def is_my_turn(self) -> bool:
        """True when write_message is the next valid call."""
        if self._index < 0 or self._index >= _COMPLETE:
            return False
        return (self._index % 2 == 0) == self._initiator

    def get_handshake_hash(self) -> bytes:
        """The current handshake hash h (final and equal on both sides once complete)."""
        return self._symmetric.h

    def _check_turn(self, writing: bool) -> None:
        if self._index == _ERROR:
            raise LocalProtocolError("Noise handshake already failed")
        if self._index == _COMPLETE:
            raise LocalProtocolError("Noise handshake already complete")
        if self.is_my_turn() != writing:
            raise LocalProtocolError(
                "not our turn to %s Noise handshake message %d"
                % ("write" if writing else "read", self._index + 1)
            )

    # -- crypto helpers -------------------------------------------------------------------------

    def _dh(self, private_key: "bytes | None", public_key: "bytes | None") -> bytes:
        if private_key is None or public_key is None:
            raise LocalProtocolError("Noise DH with a missing key")  # unreachable for XX
        shared = self._suite.x25519(private_key, public_key)
        if shared == _ZERO_DH:
            raise IntegrityError("X25519 with a low-order public key")
        return shared

    def _mix_dh(self, token: str) -> None:
        # ee, es, se name (initiator key, responder key); each side uses its own private half.
        first, second = token[0], token[1]
        if self._initiator:
            mine = self._ephemeral_private if first == "e" else self._static_private
            theirs = self._remote_ephemeral if second == "e" else self._remote_static
        else:
            mine = self._ephemeral_private if second == "e" else self._static_private
            theirs = self._remote_ephemeral if first == "e" else self._remote_static
        self._symmetric.mix_key(self._dh(mine, theirs))

    # -- messages -------------------------------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        """Produce the next handshake message carrying `payload`.

        Raises:
            LocalProtocolError: not our turn, handshake over, or message would exceed 65535 bytes.
        """
        self._check_turn(True)
        if _XX_OVERHEAD[self._index] + len(payload) > MAX_MESSAGE_LEN:
            raise LocalProtocolError(
                "Noise handshake payload of %d bytes too long for message %d"
                % (len(payload), self._index + 1)
            )
        symmetric = self._symmetric
        out = []
        for token in _XX_PATTERNS[self._index]:
            if token == "e":
                if self._ephemeral_private is None:
                    self._ephemeral_private = self._suite.random_bytes(DHLEN)
                ephemeral_public = self._suite.x25519_public(self._ephemeral_private)
                out.append(ephemeral_public)
                symmetric.mix_hash(ephemeral_public)
            elif token == "s":
                out.append(symmetric.encrypt_and_hash(self._static_public))
            else:
                self._mix_dh(token)
        out.append(symmetric.encrypt_and_hash(payload))
        self._index += 1
        return b"".join(out)

    def read_message(self, message: bytes) -> bytes:
        """Consume the peer's next handshake message and return its payload.

        Raises:
            LocalProtocolError: not our turn to read, or the handshake is over or failed.
            RemoteProtocolError: the message is too short or longer than 65535 bytes.
            IntegrityError: a tag does not verify or a key is of low order.
        """
        self._check_turn(False)
        try:
            payload = self._read(bytes(message))
        except RemoteProtocolError:
            self._index = _ERROR
            raise
        self._index += 1
        return payload

    def _read(self, message: bytes) -> bytes:
        number = self._index + 1
        if len(message) > MAX_MESSAGE_LEN:
            raise RemoteProtocolError(
                "Noise handshake message %d of %d bytes exceeds %d"
                % (number, len(message), MAX_MESSAGE_LEN),
                REASON_TOO_LARGE,
            )
        if len(message) < _XX_OVERHEAD[self._index]:
            raise RemoteProtocolError(
                "Noise handshake message %d is %d bytes, at least %d expected"
                % (number, len(message), _XX_OVERHEAD[self._index])
            )
        symmetric = self._symmetric
        offset = 0
        for token in _XX_PATTERNS[self._index]:
            if token == "e":
                remote_ephemeral = message[offset : offset + DHLEN]
                if is_low_order(remote_ephemeral):
                    raise IntegrityError(
                        "low-order ephemeral key at offset %d of message %d" % (offset, number)
                    )
                self._remote_ephemeral = remote_ephemeral
                symmetric.mix_hash(remote_ephemeral)
                offset += DHLEN
            elif token == "s":
                length = DHLEN + TAGLEN if symmetric.cipher.has_key() else DHLEN
                try:
                    remote_static = symmetric.decrypt_and_hash(message[offset : offset + length])
                except IntegrityError:
                    raise IntegrityError(
                        "static key at offset %d of message %d did not decrypt" % (offset, number)
                    ) from None
                if is_low_order(remote_static):
                    raise IntegrityError("low-order static key in message %d" % number)
                self._remote_static = remote_static
                offset += length
            else:
                self._mix_dh(token)
        try:
            return symmetric.decrypt_and_hash(message[offset:])
        except IntegrityError:
            raise IntegrityError(
                "payload at offset %d of message %d did not decrypt" % (offset, number)
            ) from None

    def transport(self) -> NoiseTransport:
        """Split into the transport pair; only once, only after the handshake is complete.

        Raises:
            LocalProtocolError: the handshake is not complete, or transport() was already called.
        """
        if self._index != _COMPLETE:
            raise LocalProtocolError("Noise handshake is not complete")
        if self._transport_taken:
            raise LocalProtocolError("Noise transport already taken")
        remote_static = self._remote_static
        if remote_static is None:
            raise LocalProtocolError("Noise handshake ended without a remote static key")
        self._transport_taken = True
        initiator_to_responder, responder_to_initiator = self._symmetric.split()
        if self._initiator:
            sending, receiving = initiator_to_responder, responder_to_initiator
        else:
            sending, receiving = responder_to_initiator, initiator_to_responder
        return NoiseTransport(
            sending,
            receiving,
            self._symmetric.h,
            self._static_public,
            remote_static,
            self._initiator,
        )
