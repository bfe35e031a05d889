"""A member device's view of one multi-member group, and its saved form.

What one group row of DATA/member.sqlite3 (node.member.memberdb, table `groups`) holds as JSON:

    group            the full Group record, secret included (member side only)
    name             the group's display name (from create, or from the invitation)
    member_sk        our member key in this group: Ed25519FromSeed(X25519(x(accountProofSK),
                     x(groupPK))) -- weshnet memberSK_<hex group pk>, berty-wesh.md §1.1; derived,
                     so every device of one account has the same one
    device_sk        our device key in this group: random per device per group
                     (weshnet memberDeviceSK_<hex group pk>)
    ratchet          node.crypto.ratchet.RatchetState without `read_keys` (our sending chain, the
                     chains other devices shared with us, the window of precomputed keys, the
                     queue of messages waiting for a key): bounded, whatever the history
    devices          device pk -> member pk, from GroupMemberDeviceAdded events
    names            device pk -> display name, from SetUserInfo (GroupMetadataPayloadSent)
    secrets_sent     member pks we already sent our chain key to (weshnet areSecretsAlreadySent)
    initial_member   the member pk of MultiMemberGroupInitialMemberAnnounced, if seen

What grows with history lives in rows of its own (memberdb): the entries handled, the opened
messages, and the key of every message read (by CID, as weshnet keeps them). The fields
`new_done`, `new_messages`, `saved_read_keys` and `retry` below track this run's changes not
yet written there.

Version 1 (the JSON files DATA/groups/<hex group pk>.json before member.sqlite3) also held
`done` and `messages` and the ratchet's `read_keys`; from_dict still reads it, for the migration.
"""

from typing import Any, TypeVar

from node.crypto import ratchet
from node.crypto.api import Suite
from node.crypto.keys import Group, member_key
from node.errors import NodeError
from node.member.errors import MemberError

TYPE_UNREADABLE = -1  # MessageRecord.type of a message that could not be opened (body: why)
STATE_VERSION = 2
LEGACY_VERSION = 1  # the JSON group files
KEY_FIELDS = ("member_sk", "device_sk")


class MessageRecord:
    """One opened message of the messages log.

    Attributes:
        cid: the entry CID (base32 text); clock_time: its Lamport time (log order is
            (clock_time, clock id, cid), and the clock id is the same for every entry of a log).
        device_pk: the author's device key; counter: its ratchet counter.
        type: the AppMessage type; sent_date: milliseconds, as the author claims; body: the text.
    """

    __slots__ = ("body", "cid", "clock_time", "counter", "device_pk", "sent_date", "type")

    def __init__(
        self,
        cid: str,
        clock_time: int,
        device_pk: bytes,
        counter: int,
        type: int,
        sent_date: int,
        body: str,
    ) -> None:
        self.cid = cid
        self.clock_time = clock_time
        self.device_pk = device_pk
        self.counter = counter
        self.type = type
        self.sent_date = sent_date
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "clock_time": self.clock_time,
            "device_pk": self.device_pk,
            "counter": self.counter,
            "type": self.type,
            "sent_date": self.sent_date,
            "body": self.body,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MessageRecord":
        """Rebuild a saved record.

        Raises:
            TypeError: a field has the wrong type (callers name the file or row).
        """
        return cls(
            _typed(data["cid"], str),
            _typed(data["clock_time"], int),
            _typed(data["device_pk"], bytes),
            _typed(data["counter"], int),
            _typed(data["type"], int),
            _typed(data["sent_date"], int),
            _typed(data["body"], str),
        )

    def __repr__(self) -> str:
        return "MessageRecord(%s, time=%d)" % (self.cid, self.clock_time)


class GroupState:
    """Everything one device knows and keeps about one group (see the module text)."""

    def __init__(
        self,
        suite: Suite,
        group: Group,
        name: str,
        member_sk: bytes,
        device_sk: bytes,
        ratchet_state: ratchet.RatchetState,
        metadata_address: str,
        messages_address: str,
    ) -> None:
        self.suite = suite
        self.group = group
        self.name = name
        self.member_sk = member_sk
        self.device_sk = device_sk
        self.ratchet = ratchet_state
        self.metadata_address = metadata_address
        self.messages_address = messages_address
        self.devices: dict[bytes, bytes] = {}
        self.names: dict[bytes, str] = {}
        self.secrets_sent: set[bytes] = set()
        self.initial_member: bytes | None = None
        self.new_done: dict[str, set[bytes]] = {}  # log -> digests handled, not yet saved
        self.new_messages: list[MessageRecord] = []  # opened in this run, not yet saved
        self.saved_read_keys: set[bytes] = set()  # CIDs of ratchet.read_keys already saved
        self.legacy_done: set[bytes] = set()  # a version-1 file's handled CIDs (migration)
        self.retry = False  # a message left the ratchet queue: look at every entry next time

    @classmethod
    def new(
        cls,
        suite: Suite,
        group: Group,
        name: str,
        account_proof_sk: bytes,
        metadata_address: str,
        messages_address: str,
    ) -> "GroupState":
        """A fresh state: member key derived, new device key, new sending chain."""
        member_sk = member_key(suite, account_proof_sk, group.public_key)
        device_pk, device_sk = suite.ed25519_keypair(suite.random_bytes(32))
        state = ratchet.RatchetState(suite, group.public_key, device_pk)
        state.start_own_chain()
        return cls(
            suite, group, name, member_sk, device_sk, state, metadata_address, messages_address
        )

    @property
    def group_id(self) -> str:
        """The group id: hex of the group public key."""
        return self.group.public_key.hex()

    @property
    def member_pk(self) -> bytes:
        return self.member_sk[32:]

    @property
    def device_pk(self) -> bytes:
        return self.device_sk[32:]

    def author_name(self, device_pk: bytes) -> str:
        """The name a device announced, else its member key (short hex), else the device key."""
        name = self.names.get(device_pk)
        if name:
            return name
        member = self.devices.get(device_pk)
        if member is not None:
            return "member:" + member.hex()[:16]
        return "device:" + device_pk.hex()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The saved form without what grows with history (bytes values; see store_files)."""
        group = self.group
        ratchet_dict = self.ratchet.to_dict()
        del ratchet_dict["read_keys"]  # rows of their own (memberdb)
        return {
            "version": STATE_VERSION,
            "name": self.name,
            "group": {
                "public_key": group.public_key,
                "secret": group.secret,
                "secret_sig": group.secret_sig,
                "group_type": group.group_type,
                "link_key_sig": group.link_key_sig,
            },
            "member_sk": self.member_sk,
            "device_sk": self.device_sk,
            "metadata_address": self.metadata_address,
            "messages_address": self.messages_address,
            "ratchet": ratchet_dict,
            "devices": [[pk, self.devices[pk]] for pk in sorted(self.devices)],
            "names": [[pk, self.names[pk]] for pk in sorted(self.names)],
            "secrets_sent": sorted(self.secrets_sent),
            "initial_member": self.initial_member,
            "retry": self.retry,
        }

    @classmethod
    def from_dict(cls, suite: Suite, data: Any) -> "GroupState":
        """Rebuild a saved state (this version's, or a version-1 group file's).

        A version-1 file's handled CIDs and opened messages go to `legacy_done` and `new_messages`,
        its read keys stay in the ratchet: saving the state moves them into their rows.

        Raises:
            MemberError: not a group state of a known version, or damaged (wrong types,
                inconsistent keys); the message says which field.
        """
        if not isinstance(data, dict) or data.get("version") not in (STATE_VERSION, LEGACY_VERSION):
            raise MemberError("not a Waystation group state")
        for field in KEY_FIELDS:
            value = data.get(field)
            if not isinstance(value, bytes) or len(value) != 64:
                raise MemberError("group state is damaged: %s is not a 64-byte key" % field)
        for field in ("name", "metadata_address", "messages_address"):
            if not isinstance(data.get(field), str):
                raise MemberError("group state is damaged: %s is not text" % field)
        try:
            record = data["group"]
            group = Group.build(
                suite,
                record["public_key"],
                record["secret"],
                record["group_type"],
                secret_sig=record["secret_sig"],
                link_key_sig=record["link_key_sig"],
            )
            ratchet_dict = dict(data["ratchet"])
            ratchet_dict.setdefault("read_keys", [])
            state = cls(
                suite,
                group,
                data["name"],
                data["member_sk"],
                data["device_sk"],
                ratchet.RatchetState.from_dict(suite, ratchet_dict),
                data["metadata_address"],
                data["messages_address"],
            )
            state.devices = {_key(pk): _key(member) for pk, member in data["devices"]}
            state.names = {_key(pk): str(name) for pk, name in data["names"]}
            state.secrets_sent = {_key(pk) for pk in data["secrets_sent"]}
            initial = data["initial_member"]
            state.initial_member = None if initial is None else _key(initial)
            state.retry = bool(data.get("retry", False))
            if data["version"] == LEGACY_VERSION:
                state.legacy_done = {_typed(cid, bytes) for cid in data["done"]}
                for saved in data["messages"]:
                    state.new_messages.append(MessageRecord.from_dict(saved))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MemberError("group state is damaged: %r" % (exc,)) from exc
        except NodeError as exc:  # LocalProtocolError from Group.build / RatchetState
            raise MemberError("group state is damaged: %s" % (exc,)) from exc
        if state.device_sk[32:] != state.ratchet.own_device_pk:
            raise MemberError("group state is damaged: device key and ratchet disagree")
        return state

    def __repr__(self) -> str:
        return "GroupState(%r, %s)" % (self.name, self.group_id[:16])


T = TypeVar("T")


def _typed(value: Any, kind: type[T]) -> T:
    """`value` if it is a `kind` (bool is not an int here), else TypeError."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError("expected %s, got %s" % (kind.__name__, type(value).__name__))
    return value


def _key(value: Any) -> bytes:
    """A 32-byte public key from a saved state (TypeError otherwise: from_dict reports it)."""
    if not isinstance(value, bytes) or len(value) != 32:
        raise TypeError("expected a 32-byte key, got %s" % type(value).__name__)
    return value
