"""Reading and appending a group's logs in a Store, the way go-orbit-db does.

An entry's payload is the orbit-db operation JSON Berty writes (berty-wesh.md §4.1), exactly
    {"op":"ADD","value":"<base64 std, padded, of the envelope bytes>"}
(Go struct order, `key` omitted; base64 needs no JSON escaping). Appending builds the entry with
node.sync.log.append_plan over the whole stored log (next = current heads, refs = go-orbit-db's
skip pointers, clock = max head time + 1) and node.sync.entry.create_entry, signed with the group
signing key (Ed25519 seeded by the group secret); then put_entries + commit, so it is durable when
this returns.
"""

import base64
import binascii
import json

from node.crypto.api import Suite
from node.crypto.keys import Group
from node.errors import REASON_MALFORMED, RemoteProtocolError
from node.member.errors import MemberError
from node.sync.entry import Entry, create_entry
from node.sync.log import append_plan
from node.sync.store import REFUSED, Store

OP_ADD = "ADD"


def op_payload(envelope: bytes) -> str:
    """The orbit-db ADD operation JSON carrying `envelope`."""
    return '{"op":"ADD","value":"' + base64.b64encode(envelope).decode("ascii") + '"}'


def parse_op(payload: str) -> bytes:
    """The envelope bytes of an orbit-db ADD operation.

    Raises:
        RemoteProtocolError: not an ADD operation with a base64 value.
    """
    try:
        op = json.loads(payload)
    except ValueError:
        raise RemoteProtocolError("entry payload is not JSON", REASON_MALFORMED) from None
    if not isinstance(op, dict) or op.get("op") != OP_ADD or not isinstance(op.get("value"), str):
        raise RemoteProtocolError("entry payload is not an orbit-db ADD operation")
    try:
        return base64.b64decode(op["value"], validate=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError("entry payload value is not base64") from None


def log_entries(store: Store, log_id: str) -> list[Entry]:
    """Every stored entry of the log, in the log's total order (time, clock id, CID)."""
    entries = store.entries_by_keys(log_id, list(store.keyset(log_id)))
    entries.sort(key=Entry.sort_key)
    return entries


def append_entry(
    store: Store, suite: Suite, group: Group, log_id: str, envelope: bytes, now: float
) -> Entry:
    """Append one envelope to a log and make it durable.

    Raises:
        MemberError: the store refused the entry (full, or too large).
    """
    view = {entry.cid: entry for entry in log_entries(store, log_id)}
    next_cids, refs, clock_time = append_plan(view)
    sign_pub, sign_sk = group.signing_keypair(suite)

    def sign(message: bytes) -> bytes:
        return suite.ed25519_sign(sign_sk, message)

    entry = create_entry(log_id, op_payload(envelope), next_cids, refs, clock_time, sign_pub, sign)
    result = store.put_entries([entry], now)[0]
    if result.status == REFUSED:
        raise MemberError(
            "the local store refused the entry: %s %s" % (result.reason, result.detail)
        )
    store.commit()
    return entry
