# Reconciliation by sketch (L0, sans-IO, portable): the SKETCH and DIFF half of
# node.sync.reconcile.Reconciler, as functions of the reconciler (they read and move its per-log
# state; the state table is node/sync/_reconcile_states.py).
#
# Theory of operation: when the difference estimator says the differences in a long tail are
# sparse, the initiator sends its IBLT (node/sync/sketch.py) folded to about two cells per
# estimated difference, in sections that fit a frame. The receiver subtracts its own table and
# peels it: decoded -> DIFF (terminal: how many entries it pushes, and the (time, 16-byte ID
# prefix) of each key the peer must push); not decoded -> its own sketch at least twice as big,
# or RANGES over the whole log once the full size failed.

import math

from node._compat import TYPE_CHECKING
from node.sync import _reconcile_states as S  # noqa: N812 - the table reads best short
from node.sync import sketch
from node.sync.reconcile_wire import (
    OP_DIFF,
    OP_SKETCH,
    ZERO32,
    _bad,
    _RangeOut,
)
from node.varint import encode_uvarint

if TYPE_CHECKING:
    from node.sync.keyset import Key, KeySet
    from node.sync.reconcile import Reconciler
    from node.sync.reconcile_wire import _Reader

CELL_MAX = 1 + 10 + sketch.ID_BYTES + sketch.CHECK_BYTES


def estimate(rec: "Reconciler", keyset: "KeySet", levels: int, theirs: bytes, floor: int) -> int:
    mine = keyset.estimator_bytes(levels)
    mismatched = []
    for level in range(levels):
        hits = 0
        for cell in range(level * sketch.EST_CELLS // 2, (level + 1) * sketch.EST_CELLS // 2):
            diff = mine[cell] ^ theirs[cell]
            hits += (1 if diff & 0x0F else 0) + (1 if diff & 0xF0 else 0)
        mismatched.append(hits)
    return max(sketch.estimate(levels, mismatched), floor, 1)


def send_sketch(rec: "Reconciler", index: int, m: int) -> None:
    """Our IBLT folded to m cells per sub-table, in sections that fit a frame."""
    table = rec.logs[index].sketch(m)
    size = sketch.TABLES * m
    head = encode_uvarint(index) + bytes((OP_SKETCH,)) + encode_uvarint(m)
    per_section = max(1, (rec.max_frame - 2 - len(head) - 6) // CELL_MAX)
    for start in range(0, size, per_section):
        end = min(size, start + per_section)
        body = bytearray(head + encode_uvarint(start) + encode_uvarint(end - start))
        for i in range(start, end):
            body.append(table.count[i] & 0xFF)
            body.extend(encode_uvarint(table.txor[i]))
            body.extend(table.pxor[i].to_bytes(sketch.ID_BYTES, "little"))
            body.extend(table.cxor[i].to_bytes(sketch.CHECK_BYTES, "little"))
        rec._writer.add(bytes(body))
    rec._sketch_m[index] = m
    rec._state[index] = S.AWAIT_DIFF
    rec._request(index)


def on_sketch(rec: "Reconciler", index: int, reader: "_Reader") -> None:
    start_pos = reader.pos
    m = reader.uvarint()
    first = reader.uvarint()
    count = reader.uvarint()
    table = rec._work.get(index)
    if table is None:
        if first != 0:
            raise _bad("SKETCH does not start at cell 0 (offset %d)" % start_pos)
        if m < 1 or sketch.FULL % m or m <= rec._sketch_m[index]:
            raise _bad("SKETCH size %d not allowed at offset %d" % (m, start_pos))
        # the difference table starts as the negation of ours: theirs - ours after adding
        table = rec.logs[index].sketch(m)
        table.count = [-c & 0xFF for c in table.count]
        rec._work[index] = table
        rec._work_next[index] = 0
        rec._peer_requested = True
    size = sketch.TABLES * table.m
    if m != table.m or first != rec._work_next[index] or count < 1 or first + count > size:
        raise _bad("SKETCH cells out of order at offset %d" % start_pos)
    for i in range(first, first + count):
        table.count[i] = (table.count[i] + reader.byte()) & 0xFF
        table.txor[i] ^= reader.uvarint()
        table.pxor[i] ^= int.from_bytes(reader.take(sketch.ID_BYTES), "little")
        table.cxor[i] ^= int.from_bytes(reader.take(sketch.CHECK_BYTES), "little")
    rec._work_next[index] = first + count
    if first + count == size:
        del rec._work[index]
        rec.results[index].in_sync = False
        decode(rec, index, table)


def decode(rec: "Reconciler", index: int, table: "sketch.Table") -> None:
    keyset = rec.logs[index]
    m = table.m
    decoded = sketch.peel(m, table.count, table.txor, table.pxor, table.cxor)
    ours: list[Key] = []
    theirs: list[tuple[int, bytes]] = []
    if decoded is not None:
        for time, p in decoded[0]:  # only the peer has these
            prefix = p.to_bytes(sketch.ID_BYTES, "little")
            if keyset.find_item(time, prefix) is not None:
                decoded = None
                break
            theirs.append((time, prefix))
    if decoded is not None:
        unique: set[Key] = set()
        for time, p in decoded[1]:  # only we have these
            key = keyset.find_item(time, p.to_bytes(sketch.ID_BYTES, "little"))
            if key is None:
                decoded = None
                break
            if key not in unique:
                unique.add(key)
                ours.append(key)
    if decoded is None:
        sketch_failed(rec, index, table)
        return
    rec._state[index] = S.DONE
    result = rec.results[index]
    result.send.extend(ours)
    result.expect += len(theirs)
    head = encode_uvarint(index) + bytes((OP_DIFF,))
    per_section = max(1, (rec.max_frame - 2 - len(head) - 12) // (10 + sketch.ID_BYTES))
    start = 0
    while True:
        part = theirs[start : start + per_section]
        body = bytearray(head + encode_uvarint(len(ours) if start == 0 else 0))
        body.extend(encode_uvarint(len(part)))
        for time, prefix in part:
            body.extend(encode_uvarint(time))
            body.extend(prefix)
        rec._writer.add(bytes(body))
        start += per_section
        if start >= len(theirs):
            return


def sketch_failed(rec: "Reconciler", index: int, table: "sketch.Table") -> None:
    """Answer a sketch that did not decode: a bigger one of ours, or ranges at the limit."""
    m = table.m
    if m >= sketch.FULL:
        keyset = rec.logs[index]
        rec._state[index] = S.AWAIT_RANGES
        out = _RangeOut(rec._writer, rec.max_frame, index, (0, ZERO32))
        rec._split_range(out, index, (0, ZERO32), None, 0, len(keyset))
        out.close()
        return
    # estimate what is left from the cells still non-empty in each sub-table
    busy = 0
    for i in range(sketch.TABLES * m):
        if table.count[i] or table.pxor[i]:
            busy += 1
    share = busy / (sketch.TABLES * m)
    guess = m * 4 if share >= 0.95 else -m * math.log(1.0 - share)
    cells = max(int(guess * rec.cells_per_diff) + 1, sketch.TABLES * m * 2)
    send_sketch(rec, index, sketch.size_for(cells))


def on_diff(rec: "Reconciler", index: int, reader: "_Reader") -> None:
    start = reader.pos
    will_send = reader.uvarint()
    count = reader.uvarint()
    if count * (1 + sketch.ID_BYTES) > len(reader.data) - reader.pos:
        raise _bad("DIFF list longer than the frame at offset %d" % start)
    if will_send > 2 * sketch.TABLES * sketch.FULL:
        raise _bad("DIFF announces %d entries at offset %d" % (will_send, start))
    keyset = rec.logs[index]
    result = rec.results[index]
    result.in_sync = False
    result.expect += will_send
    already = set(result.send)
    for _ in range(count):
        time = reader.uvarint()
        prefix = reader.take(sketch.ID_BYTES)
        key = keyset.find_item(time, prefix)
        if key is not None and key not in already:
            already.add(key)
            result.send.append(key)
