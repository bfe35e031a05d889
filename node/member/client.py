"""MemberClient: a member device's accounts, groups and messages over a Store of log entries.

Theory of operation
-------------------
Files (the member data directory, mode 0700): account.json (the account keys, node.member.account)
and groups/<hex group pk>.json (one GroupState each, node.member.group_state), all mode 0600 and
written atomically. The log entries themselves live in the Store the caller passes in (the CLI
uses DATA/store.db); each group has two logs, registered (pinned) in that store:
    metadata  /orbitdb/<manifest>/<hex group pk>_berty_group_metadata   (GroupEnvelope payloads)
    messages  /orbitdb/<manifest>/<hex group pk>_berty_group_messages   (MessageEnvelope payloads)
Every entry is signed with the group signing key, which all members share (berty-wesh.md §4.1).

Activation (weshnet activateGroup, berty-wesh.md §2.3), on create_group and on join:
    1. our chain key to every member we already know (GroupDeviceChainKeyAdded, once per member);
    2. GroupMemberDeviceAdded (member key signs the device key, device signs the event);
    3. the creator only: MultiMemberGroupInitialMemberAnnounced (signed by the group key, which
       is then forgotten; we put the member key in member_pk -- weshnet puts the device key there,
       a bug we accept on input but do not copy);
    4. our display name: GroupMetadataPayloadSent carrying AppMessage{SetUserInfo} (weshnet's
       AppMetadataSend; boxed with the group secret only, so members who join later see it too).

process(now) walks each group's logs in their total order and handles every entry not handled yet:
    metadata  GroupMemberDeviceAdded from another member -> send our chain key to that member,
              once (areSecretsAlreadySent); GroupDeviceChainKeyAdded addressed to our member ->
              open the box, register the chain with the ratchet, which then opens the queued
              messages it reaches; SetUserInfo -> remember the author's name.
    messages  open the headers with the group secret, hand the message to the ratchet: opened
              now, or queued until its chain key arrives (then opened by the step above), or
              unreadable (written before we joined: joiners read from the moment they joined).
An entry whose envelope does not open or verify is marked handled and counted as rejected.

Crash safety: sending saves the advanced ratchet BEFORE the entry is written (a crash in between
skips a counter, which receivers tolerate; the reverse order could reuse a message key). A chain
key is written BEFORE we record that it was sent (a crash in between sends it twice; receivers
ignore the second).
"""

import time
from pathlib import Path
from typing import Any

from node.crypto import envelope as env
from node.crypto import ratchet
from node.crypto.address import MESSAGES_STORE, METADATA_STORE, store_address
from node.crypto.api import Suite
from node.crypto.keys import Group, ReplicationGroup, new_multi_member_group
from node.errors import RemoteProtocolError
from node.member import appmessage
from node.member.account import Account, check_display_name
from node.member.errors import MemberError
from node.member.group_state import GroupState, MessageRecord
from node.member.invitation import decode_invitation, encode_invitation
from node.member.logio import append_entry, log_entries, parse_op
from node.member.store_files import ensure_private_dir, read_json, write_json
from node.sync.cid import CID
from node.sync.entry import Entry, decode_entry
from node.sync.store import Store
from node.sync.wire import log_header

ACCOUNT_FILE = "account.json"
GROUPS_DIR = "groups"
MAX_MESSAGE_CHARS = 16 * 1024
MAX_METADATA_PASSES = 4


class Message:
    """One message as `read` returns it.

    Attributes:
        cid: the log entry CID (base32); clock_time: its Lamport time.
        author: the author's announced name, else "member:<16 hex>" / "device:<16 hex>".
        member: hex of the author's member key ("" if its GroupMemberDeviceAdded is unknown).
        device: hex of the author's device key in this group.
        sent_date: milliseconds since the epoch, as the author's device claims.
        body: the text. mine: written by this device.
    """

    __slots__ = ("author", "body", "cid", "clock_time", "device", "member", "mine", "sent_date")

    def __init__(
        self,
        cid: str,
        clock_time: int,
        author: str,
        member: str,
        device: str,
        sent_date: int,
        body: str,
        mine: bool,
    ) -> None:
        self.cid = cid
        self.clock_time = clock_time
        self.author = author
        self.member = member
        self.device = device
        self.sent_date = sent_date
        self.body = body
        self.mine = mine

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's --json form)."""
        return {
            "cid": self.cid,
            "lamport": self.clock_time,
            "author": self.author,
            "member": self.member,
            "device": self.device,
            "sent_ms": self.sent_date,
            "body": self.body,
            "mine": self.mine,
        }

    def __repr__(self) -> str:
        return "Message(%s: %r)" % (self.author, self.body)


class ProcessReport:
    """What one process() call did (counts)."""

    __slots__ = (
        "chain_keys_received",
        "chain_keys_sent",
        "dropped",
        "opened",
        "queued",
        "rejected",
    )

    def __init__(self) -> None:
        self.opened = 0  # messages opened for the first time
        self.queued = 0  # messages waiting for a chain key
        self.dropped = 0  # messages pushed out of the bounded queue (offered again next time)
        self.rejected = 0  # entries or events that did not open or verify, or are unreadable
        self.chain_keys_sent = 0
        self.chain_keys_received = 0

    def __repr__(self) -> str:
        return "ProcessReport(opened=%d, queued=%d, dropped=%d, rejected=%d, keys %d/%d)" % (
            self.opened,
            self.queued,
            self.dropped,
            self.rejected,
            self.chain_keys_sent,
            self.chain_keys_received,
        )


class SyncLog:
    """One log the member wants a relay to carry (the `peer sync` hook's unit).

    Attributes:
        address: the store address (the entries' log id).
        sign_pub: the group signing public key every entry is signed with.
        group_pk, store_type: what the address is made of.
        identity_signature: Sign(group signing key, utf8(hex(sign_pub))), the identity signature
            every entry of the group carries (Ed25519 is deterministic); with sign_pub it makes
            the session's per-log header (`header`, node.sync.wire.log_header).
        replication: the zero-knowledge group record (public_key, sign_pub, link_key,
            link_key_sig) -- what a relay may be given; never the secret.
    """

    __slots__ = (
        "address",
        "group_pk",
        "identity_signature",
        "replication",
        "sign_pub",
        "store_type",
    )

    def __init__(
        self,
        address: str,
        sign_pub: bytes,
        group_pk: bytes,
        store_type: str,
        identity_signature: bytes,
        replication: ReplicationGroup,
    ) -> None:
        self.address = address
        self.sign_pub = sign_pub
        self.group_pk = group_pk
        self.store_type = store_type
        self.identity_signature = identity_signature
        self.replication = replication

    @property
    def header(self) -> bytes:
        """The session's per-log header: 0x01 || sign_pub || identity signature."""
        return log_header(self.sign_pub, self.identity_signature)

    def __repr__(self) -> str:
        return "SyncLog(%s)" % self.address


def is_initialised(data_dir: Path) -> bool:
    """True when `data_dir` holds a member account."""
    return (Path(data_dir) / ACCOUNT_FILE).exists()


def _clean_name(name: str) -> str:
    """A name from another member, made safe to print: printable, at most 64 characters."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in name.strip())
    return cleaned[:64]


class MemberClient:
    """A member device: its account, its groups, and their logs in `store`.

    Args:
        suite: the crypto suite (node.crypto._nacl.NaclSuite in the CLI).
        store: where the entries live (node.sync.store.Store; SQLiteStore in the CLI).
        data_dir: the member data directory (account.json, groups/).

    Raises:
        MemberError: `data_dir` holds no account (see MemberClient.init) or a damaged file.
    """

    def __init__(self, suite: Suite, store: Store, data_dir: Path) -> None:
        self.suite = suite
        self.store = store
        self.data_dir = Path(data_dir)
        account_path = self.data_dir / ACCOUNT_FILE
        if not account_path.exists():
            raise MemberError(
                "no member account in %s: run `waystation peer init --data %s --name NAME` first"
                % (self.data_dir, self.data_dir)
            )
        self.account = Account.from_dict(suite, read_json(account_path))
        self.groups: dict[str, GroupState] = {}
        groups_dir = self.data_dir / GROUPS_DIR
        if groups_dir.is_dir():
            for path in sorted(groups_dir.glob("*.json")):
                state = GroupState.from_dict(suite, read_json(path))
                self.groups[state.group_id] = state
                self._register_logs(state)
        self.store.commit()

    @classmethod
    def init(cls, suite: Suite, store: Store, data_dir: Path, name: str) -> "MemberClient":
        """Create the account in `data_dir` and return a client for it.

        Raises:
            MemberError: an account already exists there, or the name is not acceptable.
        """
        data_dir = Path(data_dir)
        if is_initialised(data_dir):
            raise MemberError("%s already holds a member account" % data_dir)
        account = Account.generate(suite, name)
        ensure_private_dir(data_dir)
        ensure_private_dir(data_dir / GROUPS_DIR)
        write_json(data_dir / ACCOUNT_FILE, account.to_dict())
        return cls(suite, store, data_dir)

    # ---- groups ---------------------------------------------------------------------------

    def list_groups(self) -> list[tuple[str, str]]:
        """(group id, name) of every group, sorted by name then id."""
        return sorted(((gid, s.name) for gid, s in self.groups.items()), key=lambda p: (p[1], p[0]))

    def resolve(self, group_ref: str) -> GroupState:
        """The group named by its id (hex), its name, or a unique id prefix (>= 4 hex digits).

        Raises:
            MemberError: no such group, or the reference is ambiguous.
        """
        ref = group_ref.strip()
        state = self.groups.get(ref.lower())
        if state is not None:
            return state
        by_name = [s for s in self.groups.values() if s.name == ref]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            raise MemberError("several groups are named %r: use the group id" % ref)
        if len(ref) >= 4:
            by_prefix = [s for gid, s in self.groups.items() if gid.startswith(ref.lower())]
            if len(by_prefix) == 1:
                return by_prefix[0]
            if len(by_prefix) > 1:
                raise MemberError("group id prefix %r is ambiguous" % ref)
        known = ", ".join("%s (%s)" % (name, gid[:12]) for gid, name in self.list_groups())
        raise MemberError("unknown group %r; known groups: %s" % (ref, known or "none"))

    def create_group(self, name: str, now: float) -> str:
        """Create a multi-member group, activate it, and return its id (hex group pk)."""
        name = check_display_name(name)
        group, group_sk = new_multi_member_group(self.suite)
        state = self._adopt(group, name)
        self._activate(state, now, group_sk)
        return state.group_id

    def invitation(self, group_ref: str) -> str:
        """The invitation text for a group (it carries the group secret: see invitation.py)."""
        state = self.resolve(group_ref)
        return encode_invitation(state.group, state.name)

    def join(self, invitation: str, now: float) -> str:
        """Join the group of an invitation; return its id. Joining twice changes nothing.

        Raises:
            MemberError: the invitation is malformed or does not check.
        """
        group, name = decode_invitation(self.suite, invitation)
        group_id = group.public_key.hex()
        if group_id in self.groups:
            return group_id
        state = self._adopt(group, _clean_name(name) or group_id[:12])
        self._process_group(state, now, ProcessReport())
        self._activate(state, now, None)
        return group_id

    def _adopt(self, group: Group, name: str) -> GroupState:
        suite = self.suite
        state = GroupState.new(
            suite,
            group,
            name,
            self.account.account_proof_sk,
            store_address(suite, group.public_key, group.sign_pub, METADATA_STORE),
            store_address(suite, group.public_key, group.sign_pub, MESSAGES_STORE),
        )
        self._register_logs(state)
        self.store.commit()
        self.groups[state.group_id] = state
        self._save(state)
        return state

    def _register_logs(self, state: GroupState) -> None:
        sign_pub = state.group.sign_pub
        self.store.add_log(state.metadata_address, sign_pub, pinned=True)
        self.store.add_log(state.messages_address, sign_pub, pinned=True)

    def _activate(self, state: GroupState, now: float, group_sk: bytes | None) -> None:
        for member_pk in sorted(set(state.devices.values())):
            self._share_chain_key(state, member_pk, now, ProcessReport())
        suite = self.suite
        payload, sig = env.member_device_added(suite, state.member_sk, state.device_sk)
        self._write_event(state, env.EVENT_GROUP_MEMBER_DEVICE_ADDED, payload, sig, now)
        if group_sk is not None:
            payload, sig = env.initial_member_announced(suite, group_sk, state.member_pk)
            self._write_event(
                state, env.EVENT_MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED, payload, sig, now
            )
        info = appmessage.set_user_info(self.account.name, _millis(now))
        payload, sig = env.metadata_payload_sent(suite, state.device_sk, info)
        self._write_event(state, env.EVENT_GROUP_METADATA_PAYLOAD_SENT, payload, sig, now)
        self._process_group(state, now, ProcessReport())
        self._save(state)

    def _write_event(
        self, state: GroupState, event_type: int, payload: bytes, sig: bytes, now: float
    ) -> Entry:
        sealed = env.seal_group_event(self.suite, state.group.secret, event_type, payload, sig)
        return append_entry(
            self.store, self.suite, state.group, state.metadata_address, sealed, now
        )

    def _share_chain_key(
        self, state: GroupState, member_pk: bytes, now: float, report: ProcessReport
    ) -> None:
        if member_pk == state.member_pk or member_pk in state.secrets_sent:
            return
        chain_key, counter = state.ratchet.own_chain()
        payload, sig = env.device_chain_key_added(
            self.suite, state.group.public_key, state.device_sk, member_pk, chain_key, counter
        )
        self._write_event(state, env.EVENT_GROUP_DEVICE_CHAIN_KEY_ADDED, payload, sig, now)
        state.secrets_sent.add(member_pk)
        self._save(state)
        report.chain_keys_sent += 1

    # ---- messages -------------------------------------------------------------------------

    def send(self, group_ref: str, text: str, now: float) -> CID:
        """Write one text message to a group's messages log; return the entry CID.

        Raises:
            MemberError: unknown group, or an empty or too long text.
        """
        state = self.resolve(group_ref)
        if not text.strip():
            raise MemberError("refusing to send an empty message")
        if len(text) > MAX_MESSAGE_CHARS:
            raise MemberError("a message has at most %d characters" % MAX_MESSAGE_CHARS)
        plaintext = appmessage.user_message(text, _millis(now))
        sealed = state.ratchet.seal(state.group.secret, state.device_sk, plaintext)
        self._save(state)  # the advanced chain first: a message key is never used twice
        entry = append_entry(
            self.store, self.suite, state.group, state.messages_address, sealed, now
        )
        self._process_group(state, now, ProcessReport())
        self._save(state)
        return entry.cid

    def read(self, group_ref: str) -> list[Message]:
        """The group's opened text messages in log order (time, clock id, CID).

        Only what process() (or send) has opened is shown; call process(now) first to include
        entries that arrived since.
        """
        state = self.resolve(group_ref)
        records = sorted(state.messages.values(), key=MessageRecord.order_key)
        out = []
        for record in records:
            if record.type != appmessage.TYPE_USER_MESSAGE:
                continue
            member = state.devices.get(record.device_pk)
            out.append(
                Message(
                    record.cid,
                    record.clock_time,
                    state.author_name(record.device_pk),
                    member.hex() if member is not None else "",
                    record.device_pk.hex(),
                    record.sent_date,
                    record.body,
                    record.device_pk == state.device_pk,
                )
            )
        return out

    def pending(self, group_ref: str) -> int:
        """How many messages of a group wait for a chain key (the ratchet queue)."""
        return len(self.resolve(group_ref).ratchet.queued())

    # ---- processing -----------------------------------------------------------------------

    def process(self, now: float) -> ProcessReport:
        """Handle every entry of every group's logs not handled yet (see the module text)."""
        report = ProcessReport()
        for group_id in sorted(self.groups):
            state = self.groups[group_id]
            self._process_group(state, now, report)
            self._save(state)
        return report

    def _process_group(self, state: GroupState, now: float, report: ProcessReport) -> None:
        for _ in range(MAX_METADATA_PASSES):  # our own chain-key entries show up on the next pass
            fresh = [
                entry
                for entry in log_entries(self.store, state.metadata_address)
                if entry.cid.to_bytes() not in state.done
            ]
            if not fresh:
                break
            for entry in fresh:
                self._metadata_entry(state, entry, now, report)
                state.done.add(entry.cid.to_bytes())
        queued = {cid for cid, _device, _counter in state.ratchet.queued()}
        for entry in log_entries(self.store, state.messages_address):
            key = entry.cid.to_bytes()
            if key in state.done or key in queued:
                continue
            try:
                sealed = env.open_message_headers(
                    self.suite, state.group.secret, parse_op(entry.payload)
                )
                events = state.ratchet.receive(key, sealed)
            except RemoteProtocolError:  # IntegrityError included
                state.done.add(key)
                report.rejected += 1
                continue
            self._apply(state, events, report)

    def _metadata_entry(
        self, state: GroupState, entry: Entry, now: float, report: ProcessReport
    ) -> None:
        suite = self.suite
        group = state.group
        try:
            event = env.open_group_event(
                suite, group.public_key, group.secret, parse_op(entry.payload)
            )
        except RemoteProtocolError:
            report.rejected += 1
            return
        fields = event.fields
        kind = event.event_type
        if kind == env.EVENT_GROUP_MEMBER_DEVICE_ADDED:
            state.devices[fields["device_pk"]] = fields["member_pk"]
            self._share_chain_key(state, fields["member_pk"], now, report)
        elif kind == env.EVENT_GROUP_DEVICE_CHAIN_KEY_ADDED:
            sender = fields["device_pk"]
            if fields["dest_member_pk"] != state.member_pk or sender == state.device_pk:
                return
            try:
                chain_key, counter = env.open_chain_key(
                    suite, group.public_key, state.member_sk, sender, fields["payload"]
                )
            except RemoteProtocolError:
                report.rejected += 1
                return
            report.chain_keys_received += 1
            self._apply(state, state.ratchet.register_chain_key(sender, chain_key, counter), report)
        elif kind == env.EVENT_MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED:
            state.initial_member = fields["member_pk"]
        elif kind == env.EVENT_GROUP_METADATA_PAYLOAD_SENT:
            try:
                message = appmessage.decode(fields["message"])
            except RemoteProtocolError:
                report.rejected += 1
                return
            if message.type == appmessage.TYPE_SET_USER_INFO:
                name = _clean_name(message.body)
                if name:
                    state.names[fields["device_pk"]] = name

    def _apply(
        self, state: GroupState, events: list[ratchet.RatchetEvent], report: ProcessReport
    ) -> None:
        for event in events:
            kind = event.kind
            if kind == ratchet.QUEUED:
                report.queued += 1
                continue
            if kind == ratchet.DROPPED:
                state.done.discard(event.cid)  # offered again by the next process()
                report.dropped += 1
                continue
            state.done.add(event.cid)
            if kind == ratchet.DECRYPTED and event.plaintext is not None:
                self._record(state, event.cid, event.device_pk, event.counter, event.plaintext)
                report.opened += 1
            elif kind in (ratchet.REJECTED, ratchet.UNREADABLE):
                report.rejected += 1

    def _record(
        self, state: GroupState, cid_bytes: bytes, device_pk: bytes, counter: int, plain: bytes
    ) -> None:
        cid = CID.from_bytes(cid_bytes)
        try:
            message = appmessage.decode(plain)
        except RemoteProtocolError:
            message = appmessage.AppMessage(appmessage.TYPE_UNDEFINED, 0, "")
        clock_time = 0
        block = self.store.get_block(cid)
        if block is not None:
            clock_time = decode_entry(block).clock_time
        text = str(cid)
        state.messages[text] = MessageRecord(
            text, clock_time, device_pk, counter, message.type, message.sent_date, message.body
        )

    # ---- the sync hook ---------------------------------------------------------------------

    def sync_logs(self) -> list[SyncLog]:
        """The logs this member wants synced: two per group (metadata, messages), sorted."""
        out = []
        for group_id in sorted(self.groups):
            state = self.groups[group_id]
            group = state.group
            sign_sk = group.signing_keypair(self.suite)[1]
            identity_signature = self.suite.ed25519_sign(sign_sk, group.sign_pub.hex().encode())
            for address, store_type in (
                (state.metadata_address, METADATA_STORE),
                (state.messages_address, MESSAGES_STORE),
            ):
                out.append(
                    SyncLog(
                        address,
                        group.sign_pub,
                        group.public_key,
                        store_type,
                        identity_signature,
                        group.for_replication(),
                    )
                )
        return out

    # ---- files -----------------------------------------------------------------------------

    def _save(self, state: GroupState) -> None:
        groups_dir = self.data_dir / GROUPS_DIR
        ensure_private_dir(groups_dir)
        write_json(groups_dir / (state.group_id + ".json"), state.to_dict())


def _millis(now: float) -> int:
    return int(now * 1000)


def wall_clock() -> float:
    """Seconds since the epoch (the CLI's `now`)."""
    return time.time()
