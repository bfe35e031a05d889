# Re-export of node.varint, so that node.sync code reads `from node.sync.varint import ...`.
# The implementation lives in node/varint.py because node.proto needs it too and node.sync and
# node.proto may not import each other.

from node.varint import MAX_UVARINT, MAX_UVARINT_BYTES, decode_uvarint, encode_uvarint

__all__ = ["MAX_UVARINT", "MAX_UVARINT_BYTES", "decode_uvarint", "encode_uvarint"]
