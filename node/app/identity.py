"""The node's own long-term key: generated on first start, kept 0600 in the data directory."""

from pathlib import Path

from node.crypto.api import Suite
from node.errors import ConfigError, StoreError
from node.member.store_files import write_private_file
from node.proto.pairing import key_fingerprint

NODE_KEY_FILE = "node.key"


class NodeIdentity:
    """The node's Ed25519 key pair.

    Attributes:
        public_key: 32-byte Ed25519 public key.
        secret_key: 64-byte Ed25519 secret key (seed || public).
    """

    def __init__(self, public_key: bytes, secret_key: bytes) -> None:
        self.public_key = public_key
        self.secret_key = secret_key

    def link_public(self, suite: Suite) -> bytes:
        """The Noise static (X25519) public key of the node's links, derived from this key."""
        return suite.x25519_public(suite.ed25519_sk_to_x25519(self.secret_key))

    def fingerprint(self, suite: Suite) -> str:
        """The node's one fingerprint, of its link key (`link_public`): what a peer sees in the
        handshake, a member pins, `relay.trusted` lists and the pairing QR code carries; 8 groups
        of 4 hex digits of its SHA-256 (node.proto.pairing.key_fingerprint)."""
        return key_fingerprint(suite, self.link_public(suite))


def load_identity(data_dir: Path, suite: Suite) -> NodeIdentity | None:
    """Load the node key from `data_dir`; None when there is none (nothing is created).

    Raises:
        StoreError: the key file exists but is unreadable or malformed.
    """
    path = data_dir / NODE_KEY_FILE
    try:
        seed = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError("cannot read node key %s: %s" % (path, exc.strerror)) from exc
    return _identity(path, seed, suite)


def _identity(path: Path, seed: bytes, suite: Suite) -> NodeIdentity:
    if len(seed) != 32:
        raise StoreError("node key %s is %d bytes, expected a 32-byte seed" % (path, len(seed)))
    public, secret = suite.ed25519_keypair(seed)
    return NodeIdentity(public, secret)


def load_or_create_identity(data_dir: Path, suite: Suite) -> NodeIdentity:
    """Load the node key from `data_dir`, creating it (mode 0600) on first start.

    Raises:
        StoreError: the key file exists but is unreadable or malformed.
        ConfigError: the data directory cannot be created.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            "node.data_dir", "cannot create %s: %s" % (data_dir, exc.strerror)
        ) from exc
    found = load_identity(data_dir, suite)
    if found is not None:
        return found
    path = data_dir / NODE_KEY_FILE
    seed = suite.random_bytes(32)
    _write_key(path, seed)
    return _identity(path, seed, suite)


def _write_key(path: Path, seed: bytes) -> None:
    """Write the key atomically (0600, fsync, rename, fsync of the directory)."""
    try:
        write_private_file(path, seed)
    except OSError as exc:
        raise StoreError("cannot write node key %s: %s" % (path, exc.strerror)) from exc
