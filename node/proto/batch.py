# Batches (L0, version 2): several session messages in one Noise transport payload.
#
# Theory of operation
# -------------------
# Each Noise message costs a 16-byte tag and the link's framing, so the messages a session queues
# during one step of its caller travel together: consecutive messages share one payload,
#
#     00 || (uv len || message)*        (at least two messages; 0x00 is no message type)
#
# while it stays within a limit (the link's message target, the peer's max_message). One message
# alone is sent as it is, without the 00, as is a message larger than the limit. The receiver
# reads the messages of a batch in order, as if each had come in its own frame.
# docs/protocol.md, "Session messages", has the rule.

from node.errors import RemoteProtocolError
from node.varint import decode_uvarint, encode_uvarint

BATCH = 0x00  # not a message type: a payload carrying several


def pack_messages(encoded: "list[bytes]", limit: int) -> "list[bytes]":
    """Noise payloads for encoded session messages, in order: consecutive messages share a
    batch while it stays within `limit` bytes; one message alone goes as it is."""
    payloads: "list[bytes]" = []
    group: "list[bytes]" = []
    size = 1
    for message in encoded:
        cost = len(encode_uvarint(len(message))) + len(message)
        if group and size + cost > limit:
            payloads.append(_payload(group))
            group, size = [], 1
        group.append(message)
        size += cost
    if group:
        payloads.append(_payload(group))
    return payloads


def _payload(group: "list[bytes]") -> bytes:
    if len(group) == 1:
        return group[0]
    return bytes((BATCH,)) + b"".join(encode_uvarint(len(m)) + m for m in group)


def unpack_messages(payload: bytes) -> "list[bytes]":
    """The session messages of one Noise payload: itself, or the messages of a batch.

    Raises:
        RemoteProtocolError: a batch of fewer than two messages, an empty or nested message, a
            length that runs past the end (naming the offset).
    """
    if not payload or payload[0] != BATCH:
        return [payload]
    parts = []
    pos = 1
    while pos < len(payload):
        start = pos
        try:
            length, pos = decode_uvarint(payload, pos)
        except RemoteProtocolError as exc:
            message = "batch: bad length at offset %d: %s" % (start, exc.message)
            raise RemoteProtocolError(message) from None
        if length == 0 or pos + length > len(payload) or payload[pos] == BATCH:
            raise RemoteProtocolError(
                "batch: empty, nested or truncated message at offset %d" % start
            )
        parts.append(payload[pos : pos + length])
        pos += length
    if len(parts) < 2:
        raise RemoteProtocolError("batch: %d message at offset 1" % len(parts))
    return parts
