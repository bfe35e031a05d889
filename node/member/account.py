"""A member's account: the three long-term Ed25519 keys of weshnet (berty-wesh.md §1.1).

    account key        accountSK: the account id; shared by all devices of the account
    account proof key  accountProofSK: root of the per-group member keys (memberSK_<group>)
    device key         deviceSK: this device (account and contact groups; multi-member groups get
                       their own device key per group, see group_state)

All three are generated from `suite.random_bytes` seeds. Secret keys are 64 bytes (seed || public),
as libsodium and libp2p's Raw() hold them. `to_dict` is what account.json stores; it holds the
secret keys, so the file is written with mode 0600 (node.member.store_files).
"""

from typing import Any

from node.crypto.api import Suite
from node.crypto.keys import KEY_SIZE, keypair_matches
from node.member.errors import MemberError

ACCOUNT_VERSION = 1
MAX_NAME_LENGTH = 64


def check_display_name(name: str) -> str:
    """A display name stripped of surrounding blanks; 1..64 characters, printable.

    Raises:
        MemberError: empty, too long or with control characters.
    """
    name = name.strip()
    if not name:
        raise MemberError("a name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise MemberError("a name has at most %d characters" % MAX_NAME_LENGTH)
    if not name.isprintable():
        raise MemberError("a name must not contain control characters")
    return name


class Account:
    """The account keys and display name of one member device.

    Attributes:
        name: the display name announced in groups.
        account_sk, account_proof_sk, device_sk: 64-byte Ed25519 secret keys.
    """

    __slots__ = ("account_proof_sk", "account_sk", "device_sk", "name")

    def __init__(
        self, name: str, account_sk: bytes, account_proof_sk: bytes, device_sk: bytes
    ) -> None:
        self.name = name
        self.account_sk = account_sk
        self.account_proof_sk = account_proof_sk
        self.device_sk = device_sk

    @classmethod
    def generate(cls, suite: Suite, name: str) -> "Account":
        """Fresh random keys (weshnet refuses accountSK == accountProofSK; so do we)."""
        name = check_display_name(name)
        account_sk = suite.ed25519_keypair(suite.random_bytes(KEY_SIZE))[1]
        account_proof_sk = account_sk
        while account_proof_sk == account_sk:
            account_proof_sk = suite.ed25519_keypair(suite.random_bytes(KEY_SIZE))[1]
        device_sk = suite.ed25519_keypair(suite.random_bytes(KEY_SIZE))[1]
        return cls(name, account_sk, account_proof_sk, device_sk)

    @property
    def account_pk(self) -> bytes:
        """The account id (public key)."""
        return self.account_sk[32:]

    def to_dict(self) -> dict[str, Any]:
        """The saved form (bytes values; see node.member.store_files)."""
        return {
            "version": ACCOUNT_VERSION,
            "name": self.name,
            "account_sk": self.account_sk,
            "account_proof_sk": self.account_proof_sk,
            "device_sk": self.device_sk,
        }

    @classmethod
    def from_dict(cls, suite: Suite, data: Any) -> "Account":
        """Rebuild a saved account, checking every key pair.

        Raises:
            MemberError: not an account file of a known version, or a key is inconsistent.
        """
        if not isinstance(data, dict) or data.get("version") != ACCOUNT_VERSION:
            raise MemberError("not a Waystation account file (version %r)" % (_version(data),))
        keys = []
        for field in ("account_sk", "account_proof_sk", "device_sk"):
            value = data.get(field)
            if not isinstance(value, bytes) or not keypair_matches(suite, value):
                raise MemberError("account file: %s is not a valid Ed25519 secret key" % field)
            keys.append(value)
        name = data.get("name")
        if not isinstance(name, str):
            raise MemberError("account file: name is missing")
        return cls(name, keys[0], keys[1], keys[2])

    def __repr__(self) -> str:
        return "Account(%r, %s)" % (self.name, self.account_pk.hex()[:16])


def _version(data: Any) -> Any:
    return data.get("version") if isinstance(data, dict) else None
