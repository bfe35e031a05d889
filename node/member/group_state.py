"""A member device's view of one multi-member group, and its saved form.

What one group file (DATA/groups/<hex group pk>.json, mode 0600) holds:

    group            the full Group record, secret included (member side only)
    name             the group's display name (from create, or from the invitation)
    member_sk        our member key in this group: Ed25519FromSeed(X25519(x(accountProofSK),
                     x(groupPK))) -- weshnet memberSK_<hex group pk>, berty-wesh.md §1.1; derived,
                     so every device of one account has the same one
    device_sk        our device key in this group: random per device per group
                     (weshnet memberDeviceSK_<hex group pk>)
    ratchet          node.crypto.ratchet.RatchetState (our sending chain, the chains other devices
                     shared with us, the window of precomputed keys, the queue of messages waiting
                     for a key)
    devices          device pk -> member pk, from GroupMemberDeviceAdded events
    names            device pk -> display name, from SetUserInfo (GroupMetadataPayloadSent)
    secrets_sent     member pks we already sent our chain key to (weshnet areSecretsAlreadySent)
    initial_member   the member pk of MultiMemberGroupInitialMemberAnnounced, if seen
    done             CIDs (bytes) of entries fully handled (never looked at again)
    messages         CID -> one opened message: log position (clock time, CID text), author
                     device, counter, AppMessage type, sent date (ms) and body

The opened messages are kept so `read` needs no decryption; the ratchet also keeps each read
message key by CID, as weshnet does.
"""

from typing import Any

from node.crypto import ratchet
from node.crypto.api import Suite
from node.crypto.keys import Group, member_key
from node.errors import NodeError
from node.member.errors import MemberError

STATE_VERSION = 1


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

    def order_key(self) -> tuple[int, str]:
        """Position in the log (the clock id is shared by all entries, so it is left out)."""
        return (self.clock_time, self.cid)

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
        return cls(
            data["cid"],
            data["clock_time"],
            data["device_pk"],
            data["counter"],
            data["type"],
            data["sent_date"],
            data["body"],
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
        self.done: set[bytes] = set()
        self.messages: dict[str, MessageRecord] = {}

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
        """The saved form (bytes values; node.member.store_files writes it)."""
        group = self.group
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
            "ratchet": self.ratchet.to_dict(),
            "devices": [[pk, self.devices[pk]] for pk in sorted(self.devices)],
            "names": [[pk, self.names[pk]] for pk in sorted(self.names)],
            "secrets_sent": sorted(self.secrets_sent),
            "initial_member": self.initial_member,
            "done": sorted(self.done),
            "messages": [self.messages[cid].to_dict() for cid in sorted(self.messages)],
        }

    @classmethod
    def from_dict(cls, suite: Suite, data: Any) -> "GroupState":
        """Rebuild a saved state.

        Raises:
            MemberError: not a group file of a known version, or inconsistent.
        """
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise MemberError("not a Waystation group file")
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
            state = cls(
                suite,
                group,
                data["name"],
                data["member_sk"],
                data["device_sk"],
                ratchet.RatchetState.from_dict(suite, data["ratchet"]),
                data["metadata_address"],
                data["messages_address"],
            )
            state.devices = dict(data["devices"])
            state.names = dict(data["names"])
            state.secrets_sent = set(data["secrets_sent"])
            state.initial_member = data["initial_member"]
            state.done = set(data["done"])
            for saved in data["messages"]:
                message = MessageRecord.from_dict(saved)
                state.messages[message.cid] = message
        except (KeyError, TypeError, ValueError) as exc:
            raise MemberError("group file is damaged: %r" % (exc,)) from exc
        except NodeError as exc:  # LocalProtocolError from Group.build / RatchetState
            raise MemberError("group file is damaged: %s" % (exc,)) from exc
        if state.device_sk[32:] != state.ratchet.own_device_pk:
            raise MemberError("group file is damaged: device key and ratchet disagree")
        return state

    def __repr__(self) -> str:
        return "GroupState(%r, %s)" % (self.name, self.group_id[:16])
