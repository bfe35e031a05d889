# The bytes an entry's signature covers (L0): Go `encoding/json` of the signed fields, as
# go-ipfs-log writes them (docs/protocol.md, "Log entries"). node/sync/entry.py caches the result
# on each Entry.
#
# Theory of operation: the keys are emitted in Go's sorted order, hex and base58 need no
# escaping, and only the two free strings (log id, payload) go through node.sync.gojson. The
# quoted base58 of CIDs and the quoted log ids are remembered in small bounded caches, because
# every entry of a log repeats its log id and each CID is named by up to eight entries.

from node.sync import gojson
from node.sync.cid import CID


def signed_json(
    log_id: str,
    payload: str,
    next: "list[CID]",
    refs: "list[CID]",
    v: int,
    clock_id: bytes,
    clock_time: int,
) -> bytes:
    """The Go-JSON bytes an entry signature covers, from the signed fields.

    Args:
        log_id: the log address.
        payload: the payload text.
        next: parent CIDs.
        refs: skip-pointer CIDs.
        v: the entry version.
        clock_id: the marshalled key of the clock.
        clock_time: the Lamport time.
    """
    # Byte-identical to gojson.dumps({"clock": {"id": hex, "time": t}, "hash": None, "id": log_id,
    # "next": [b58...], "payload": payload, "refs": [b58...], "v": v}) (tests check it on every
    # vector): the keys are already in Go's sorted order, hex and base58 need no escaping, and
    # only the two free strings go through gojson.
    return b"".join(
        (
            b'{"clock":{"id":"',
            clock_id.hex().encode(),
            b'","time":',
            str(clock_time).encode(),
            b'},"hash":null,"id":',
            _quoted_log_id(log_id),
            b',"next":[',
            b",".join([_quoted_base58(c) for c in next]),
            b'],"payload":',
            gojson.dumps(payload),
            b',"refs":[',
            b",".join([_quoted_base58(c) for c in refs]),
            b'],"v":',
            str(v).encode(),
            b"}",
        )
    )


# Every entry of a log repeats its log id, and each CID is named by up to eight entries (as next
# or ref); base58 is the slowest part of rebuilding signed bytes. Remember recent renderings.
_QUOTED_CACHE_MAX = 4096
_QUOTED_B58: "dict[CID, bytes]" = {}
_QUOTED_LOG_ID: "dict[str, bytes]" = {}


def _quoted_base58(cid: CID) -> bytes:
    text = _QUOTED_B58.get(cid)
    if text is None:
        text = b'"' + cid.to_base58().encode() + b'"'
        if len(_QUOTED_B58) >= _QUOTED_CACHE_MAX:
            _QUOTED_B58.clear()
        _QUOTED_B58[cid] = text
    return text


def _quoted_log_id(log_id: str) -> bytes:
    text = _QUOTED_LOG_ID.get(log_id)
    if text is None:
        text = gojson.dumps(log_id)
        if len(_QUOTED_LOG_ID) >= 64:
            _QUOTED_LOG_ID.clear()
        _QUOTED_LOG_ID[log_id] = text
    return text
