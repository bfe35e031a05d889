"""Reading and appending a group's logs in a Store, the way go-orbit-db does.

An entry's payload is the orbit-db operation JSON Berty writes (berty-wesh.md §4.1), exactly
    {"op":"ADD","value":"<base64 std, padded, of the envelope bytes>"}
(Go struct order, `key` omitted; base64 needs no JSON escaping). Appending builds the entry with
node.sync.log.append_plan (next = current heads, refs = go-orbit-db's skip pointers, clock = max
head time + 1) and node.sync.entry.create_entry, signed with the group signing key (Ed25519 seeded
by the group secret); then put_entries + commit, so it is durable when this returns.

append_plan walks at most max(64, heads) entries newest first from the heads, and that walk pops
entries in descending (time, clock id, CID) order (a parent is always older than its child), so
the view it needs is the log's newest entries plus its heads: append_entry fetches only those,
and its cost does not grow with the log.

A payload comes from whoever holds the group key: it is hostile. parse_op bounds its size and
nesting before json.loads (which recurses once per level and raises RecursionError near 1,000).
"""

import base64
import binascii
import json

from node.crypto.api import Suite
from node.crypto.keys import Group
from node.errors import REASON_MALFORMED, RemoteProtocolError
from node.member.errors import MemberError
from node.member.store_files import json_depth_error
from node.sync.cid import CID
from node.sync.entry import Entry, create_entry, decode_entry
from node.sync.log import POINTER_COUNT, next_clock_time, select_refs, traverse
from node.sync.store import REFUSED, Store

OP_ADD = "ADD"
MAX_PAYLOAD_CHARS = 1 << 20  # an entry is at most 256 KiB by default (store.max_entry_bytes)
MAX_PAYLOAD_DEPTH = 4  # {"op":..,"value":..} is one level; a little room for extra fields


def op_payload(envelope: bytes) -> str:
    """The orbit-db ADD operation JSON carrying `envelope`."""
    return '{"op":"ADD","value":"' + base64.b64encode(envelope).decode("ascii") + '"}'


def parse_op(payload: str) -> bytes:
    """The envelope bytes of an orbit-db ADD operation.

    Raises:
        RemoteProtocolError: too large, nested too deeply, not JSON, or not an ADD operation
            with a base64 value.
    """
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise RemoteProtocolError(
            "entry payload has %d characters (at most %d)" % (len(payload), MAX_PAYLOAD_CHARS),
            REASON_MALFORMED,
        )
    problem = json_depth_error(payload, MAX_PAYLOAD_DEPTH)
    if problem is not None:
        raise RemoteProtocolError("entry payload is " + problem, REASON_MALFORMED)
    try:
        op = json.loads(payload)
    except (ValueError, RecursionError):
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


def append_plan_from_store(
    store: Store, log_id: str, min_clock: int = 0
) -> tuple[list[CID], list[CID], int]:
    """node.sync.log.append_plan for a stored log, reading only the entries it looks at: the
    store's heads and the newest max(64, heads) + heads entries (see the module text)."""
    head_cids = store.heads(log_id)
    keyset = store.keyset(log_id)
    count = len(keyset)
    amount = max(POINTER_COUNT, len(head_cids))
    newest = keyset.keys_between(max(0, count - amount - len(head_cids)), count)
    view = {entry.cid: entry for entry in store.entries_by_keys(log_id, newest)}
    for cid in head_cids:
        if cid not in view:
            block = store.get_block(cid)
            if block is not None:
                view[cid] = decode_entry(block)
    head_entries = sorted((view[c] for c in head_cids if c in view), key=Entry.sort_key)
    walked = traverse(view, list(reversed(head_entries)), amount)
    next_cids = [entry.cid for entry in head_entries]
    clock_time = next_clock_time(head_entries, min_clock)
    return next_cids, select_refs(walked, next_cids, POINTER_COUNT), clock_time


def append_entry(
    store: Store,
    suite: Suite,
    group: Group,
    log_id: str,
    envelope: bytes,
    now: float,
    min_clock: int = 0,
) -> Entry:
    """Append one envelope to a log and make it durable.

    Args:
        min_clock: the new entry's Lamport time is above this too (the highest time this device
            has seen in the log, in case its store lost entries).

    Raises:
        MemberError: the store refused the entry (full, or too large).
    """
    next_cids, refs, clock_time = append_plan_from_store(store, log_id, min_clock)
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
