"""MemberClient: a member device's accounts, groups and messages over a Store of log entries.

Theory of operation
-------------------
State (the member data directory, mode 0700): member.sqlite3 (node.member.memberdb, through
node.member.saved: the account keys, one GroupState row per group, and the rows that grow with
history: entries handled, messages opened, message keys read). The log entries themselves live
in the Store the caller passes in (the CLI uses DATA/store.sqlite3); each group has two logs,
registered (pinned) in that store:
    metadata  /orbitdb/<manifest>/<hex group pk>_berty_group_metadata   (GroupEnvelope payloads)
    messages  /orbitdb/<manifest>/<hex group pk>_berty_group_messages   (MessageEnvelope payloads)
Every entry is signed with the group signing key, which all members share (berty-wesh.md §4.1).

Cost: a command reads only what is new. A log whose store key set still has the fingerprint
recorded when all of it was handled is not read at all; an entry this device appends is handled
at once; `read` asks for the newest messages only when told to (`last`).

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
An entry whose envelope does not open or verify is marked handled and counted as rejected; in
the messages log it is also kept as "an unreadable message" so the reader sees that something
arrived (a payload is as hostile as bytes from a socket: parse_op bounds its size and nesting).

Lost store: each log's highest Lamport time is remembered in member.sqlite3. When the store holds
less than that (deleted, damaged and moved aside, replaced), the device would restart its log at
a low Lamport time and beside its own history: `store_lost` is set, nothing is processed or
written, and every command says so until a sync brings the log back from a relay
(`recovered()`). Appends use max(heads, remembered time) + 1 in any case.

Crash safety: sending saves the advanced ratchet BEFORE the entry is written (a crash in between
skips a counter, which receivers tolerate; the reverse order could reuse a message key). A chain
key is written BEFORE we record that it was sent (a crash in between sends it twice; receivers
ignore the second).
"""

import time
from pathlib import Path

from node.crypto import envelope as env
from node.crypto import ratchet
from node.crypto.address import MESSAGES_STORE, METADATA_STORE, store_address
from node.crypto.api import Suite
from node.crypto.keys import Group, new_multi_member_group
from node.errors import RemoteProtocolError
from node.member import appmessage
from node.member.account import Account, check_display_name
from node.member.errors import MemberError
from node.member.group_state import TYPE_UNREADABLE, GroupState, MessageRecord
from node.member.invitation import decode_invitation, encode_invitation
from node.member.logio import append_entry, parse_op
from node.member.records import Message, ProcessReport, SyncLog
from node.member.saved import SavedState, has_account
from node.member.store_files import ensure_private_dir
from node.sync.cid import CID
from node.sync.entry import Entry, decode_entry
from node.sync.store import Store

__all__ = ["MemberClient", "Message", "ProcessReport", "SyncLog", "is_initialised"]

MAX_MESSAGE_CHARS = 16 * 1024
MAX_METADATA_PASSES = 4
UNKNOWN_AUTHOR = "an unknown member"


def is_initialised(data_dir: Path) -> bool:
    """True when `data_dir` holds a member account."""
    return has_account(Path(data_dir))


def _clean_name(name: str) -> str:
    """A name from another member, made safe to print: printable, at most 64 characters."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in name.strip())
    return cleaned[:64]


class MemberClient:
    """A member device: its account, its groups, and their logs in `store`.

    Args:
        suite: the crypto suite (node.crypto._nacl.NaclSuite in the CLI).
        store: where the entries live (node.sync.store.Store; SQLiteStore in the CLI).
        data_dir: the member data directory (member.sqlite3; account.json and groups/ before it,
            migrated on first use).

    Raises:
        MemberError: `data_dir` holds no account (see MemberClient.init) or a damaged file.
    """

    def __init__(self, suite: Suite, store: Store, data_dir: Path) -> None:
        self.suite = suite
        self.store = store
        self.data_dir = Path(data_dir)
        self.saved = SavedState(suite, store, self.data_dir)
        self.account: Account = self.saved.account
        self.groups: dict[str, GroupState] = self.saved.groups
        for state in self.groups.values():
            self._register_logs(state)
        self.store.commit()
        if not self.saved.store_lost() and self.saved.missing():
            self.saved.set_store_lost(True)

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
        SavedState.create(suite, store, data_dir, account).close()
        return cls(suite, store, data_dir)

    def close(self) -> None:
        """Close member.sqlite3 (everything is saved by then)."""
        self.saved.close()

    # ---- a lost store ---------------------------------------------------------------------

    @property
    def store_lost(self) -> bool:
        """True while the log store lost entries this device had (see the module text)."""
        return self.saved.store_lost()

    def mark_store_lost(self) -> None:
        """The caller replaced a damaged store: recover from a relay before writing."""
        self.saved.set_store_lost(True)

    def recovered(self) -> list[tuple[str, int, int]]:
        """After a completed sync: writing is allowed again. Returns (address, time the store
        reaches, time this device had seen) of each log the relay could not give back in full
        (those entries are lost; new ones still get later Lamport times)."""
        missing = self.saved.missing()
        self.saved.set_store_lost(False)
        return missing

    def _check_writable(self) -> None:
        if self.store_lost:
            raise MemberError(
                "the local log store in %s lost entries this device had (deleted or damaged):"
                " run `waystation peer sync` first, so that this device recovers its log from a"
                " relay before it writes again" % self.data_dir
            )

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
        self._check_writable()
        group, group_sk = new_multi_member_group(self.suite)
        state = self._adopt(group, name)
        self._activate(state, now, group_sk)
        return state.group_id

    def invitation(self, group_ref: str) -> str:
        """The invitation text for a group (it carries the group secret: see invitation.py)."""
        state = self.resolve(group_ref)
        return encode_invitation(state.group, state.name)

    def group_of_invitation(self, invitation: str) -> str:
        """The group id an invitation is for (checked as join checks it)."""
        return decode_invitation(self.suite, invitation)[0].public_key.hex()

    def join(self, invitation: str, now: float) -> str:
        """Join the group of an invitation; return its id. Joining twice changes nothing.

        Raises:
            MemberError: the invitation is malformed or does not check.
        """
        group, name = decode_invitation(self.suite, invitation)
        group_id = group.public_key.hex()
        if group_id in self.groups:
            return group_id
        self._check_writable()
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
        self.saved.add_group(state)
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
        self.saved.save(state)

    def _append(self, state: GroupState, address: str, envelope: bytes, now: float) -> Entry:
        """Append to a log; when the log was clean, handle the new entry at once (it stays
        clean, so the next command reads nothing old)."""
        self._check_writable()
        clean = self.saved.is_clean(address)
        top = self.saved.marks[address].top
        entry = append_entry(self.store, self.suite, state.group, address, envelope, now, top)
        if clean:
            if address == state.metadata_address:
                self._metadata_entry(state, entry, now, ProcessReport())
            else:
                self._message_entry(state, entry, now, ProcessReport())
            self._done(state, address, entry)
            self.saved.mark_clean(address)
        return entry

    def _write_event(
        self, state: GroupState, event_type: int, payload: bytes, sig: bytes, now: float
    ) -> Entry:
        sealed = env.seal_group_event(self.suite, state.group.secret, event_type, payload, sig)
        return self._append(state, state.metadata_address, sealed, now)

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
        self.saved.save(state)
        report.chain_keys_sent += 1

    # ---- messages -------------------------------------------------------------------------

    def send(self, group_ref: str, text: str, now: float) -> CID:
        """Write one text message to a group's messages log; return the entry CID.

        Raises:
            MemberError: unknown group, an empty or too long text, or a store to recover first.
        """
        state = self.resolve(group_ref)
        if not text.strip():
            raise MemberError("refusing to send an empty message")
        if len(text) > MAX_MESSAGE_CHARS:
            raise MemberError("a message has at most %d characters" % MAX_MESSAGE_CHARS)
        self._check_writable()
        plaintext = appmessage.user_message(text, _millis(now))
        sealed = state.ratchet.seal(state.group.secret, state.device_sk, plaintext)
        self.saved.save(state)  # the advanced chain first: a message key is never used twice
        entry = self._append(state, state.messages_address, sealed, now)
        self._process_group(state, now, ProcessReport())
        self.saved.save(state)
        return entry.cid

    def others_met(self, group_ref: str) -> int:
        """How many other member devices of the group this device has met (their
        GroupMemberDeviceAdded was processed): with none, nobody else can read what it writes."""
        state = self.resolve(group_ref)
        return sum(1 for device in state.devices if device != state.device_pk)

    def read(self, group_ref: str, last: int | None = None) -> list[Message]:
        """The group's opened text messages (and unreadable ones) in log order (time, clock id,
        CID); only the `last` newest when given.

        Only what process() (or send) has opened is shown; call process(now) first to include
        entries that arrived since.
        """
        state = self.resolve(group_ref)
        out = []
        for record in self.saved.messages(state, last):
            unreadable = record.type == TYPE_UNREADABLE
            if record.type != appmessage.TYPE_USER_MESSAGE and not unreadable:
                continue
            member = state.devices.get(record.device_pk)
            if unreadable and not record.device_pk:
                author = UNKNOWN_AUTHOR
            else:
                author = state.author_name(record.device_pk)
            out.append(
                Message(
                    record.cid,
                    record.clock_time,
                    author,
                    member.hex() if member is not None else "",
                    record.device_pk.hex(),
                    record.sent_date,
                    record.body,
                    record.device_pk == state.device_pk,
                    unreadable,
                )
            )
        return out

    def pending(self, group_ref: str) -> int:
        """How many messages of a group wait for a chain key (the ratchet queue)."""
        return len(self.resolve(group_ref).ratchet.queued())

    # ---- processing -----------------------------------------------------------------------

    def process(self, now: float) -> ProcessReport:
        """Handle every entry of every group's logs not handled yet (see the module text).

        Nothing is processed while the store must be recovered (store_lost).
        """
        report = ProcessReport()
        if self.store_lost:
            return report
        for group_id in sorted(self.groups):
            state = self.groups[group_id]
            self._process_group(state, now, report)
            self.saved.save(state)
        return report

    def _done(self, state: GroupState, address: str, entry: Entry) -> None:
        state.new_done.setdefault(address, set()).add(entry.cid.digest)

    def _process_group(self, state: GroupState, now: float, report: ProcessReport) -> None:
        retry, state.retry = state.retry, False
        address = state.metadata_address
        for _ in range(MAX_METADATA_PASSES):  # our own chain-key entries show up on the next pass
            fresh = self.saved.fresh(state, address, False)
            if not fresh:
                self.saved.mark_clean(address)
                break
            for entry in fresh:
                self._metadata_entry(state, entry, now, report)
                self._done(state, address, entry)
        address = state.messages_address
        fresh = self.saved.fresh(state, address, retry)
        self._recall(state, fresh)
        for entry in fresh:
            self._message_entry(state, entry, now, report)
        self.saved.mark_clean(address)

    def _recall(self, state: GroupState, entries: list[Entry]) -> None:
        """Load the read keys the ratchet may need for these entries (replays, re-reads)."""
        if not entries:
            return
        pairs = []
        for entry in entries:
            try:
                sealed = env.open_message_headers(
                    self.suite, state.group.secret, parse_op(entry.payload)
                )
            except RemoteProtocolError:
                continue
            pairs.append((sealed.device_pk, sealed.counter))
        self.saved.recall_read_keys(state, [e.cid.to_bytes() for e in entries], pairs)

    def _message_entry(
        self, state: GroupState, entry: Entry, now: float, report: ProcessReport
    ) -> None:
        try:
            sealed = env.open_message_headers(
                self.suite, state.group.secret, parse_op(entry.payload)
            )
            events = state.ratchet.receive(entry.cid.to_bytes(), sealed)
        except RemoteProtocolError as exc:  # IntegrityError included
            self._done(state, state.messages_address, entry)
            report.rejected += 1
            report.unreadable += 1
            self._keep(
                state, entry.cid, entry.clock_time, b"", 0, TYPE_UNREADABLE, now, exc.message
            )
            return
        self._apply(state, events, now, report)

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
            self._recall_queued(state, sender)
            events = state.ratchet.register_chain_key(sender, chain_key, counter)
            self._apply(state, events, now, report)
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
        self,
        state: GroupState,
        events: list[ratchet.RatchetEvent],
        now: float,
        report: ProcessReport,
    ) -> None:
        address = state.messages_address
        for event in events:
            kind = event.kind
            if kind == ratchet.QUEUED:
                report.queued += 1
                continue
            if kind == ratchet.DROPPED:
                state.retry = True  # offered again by the next process()
                report.dropped += 1
                continue
            cid = CID.from_bytes(event.cid)
            state.new_done.setdefault(address, set()).add(cid.digest)
            if kind == ratchet.DECRYPTED and event.plaintext is not None:
                self._record(state, cid, event.device_pk, event.counter, event.plaintext, now)
                report.opened += 1
            elif kind == ratchet.REJECTED:
                report.rejected += 1
                report.unreadable += 1
                self._keep(
                    state,
                    cid,
                    None,
                    event.device_pk,
                    event.counter,
                    TYPE_UNREADABLE,
                    now,
                    event.reason,
                )
            elif kind == ratchet.UNREADABLE:
                report.rejected += 1

    def _record(
        self, state: GroupState, cid: CID, device_pk: bytes, counter: int, plain: bytes, now: float
    ) -> None:
        try:
            message = appmessage.decode(plain)
        except RemoteProtocolError as exc:
            self._keep(state, cid, None, device_pk, counter, TYPE_UNREADABLE, now, exc.message)
            return
        self._keep(
            state, cid, None, device_pk, counter, message.type, message.sent_date, message.body
        )

    def _keep(
        self,
        state: GroupState,
        cid: CID,
        clock_time: int | None,
        device_pk: bytes,
        counter: int,
        kind: int,
        sent: float | int,
        body: str,
    ) -> None:
        """Queue one message row (an unreadable one is dated `sent` = now, when it was found)."""
        if clock_time is None:
            block = self.store.get_block(cid)
            clock_time = decode_entry(block).clock_time if block is not None else 0
        sent_ms = _millis(sent) if kind == TYPE_UNREADABLE else int(sent)
        state.new_messages.append(
            MessageRecord(str(cid), clock_time, device_pk, counter, kind, sent_ms, body)
        )

    def _recall_queued(self, state: GroupState, device_pk: bytes) -> None:
        """Before a chain key drains a device's queue: the read keys its messages may need."""
        queued = state.ratchet.queued(device_pk)
        self.saved.recall_read_keys(
            state, [cid for cid, _pk, _n in queued], [(pk, n) for _cid, pk, n in queued]
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


def _millis(now: float) -> int:
    return int(now * 1000)


def wall_clock() -> float:
    """Seconds since the epoch (the CLI's `now`)."""
    return time.time()
