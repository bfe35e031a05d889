# Range-based set reconciliation of many logs in one session (L0, sans-IO, portable).
#
# Theory of operation (wire format byte by byte: docs/protocol.md, "Reconciliation")
# ------------------------------------------------------------------------
# Each log is a KeySet of keys (lamport time, 32-byte digest), in the same order on both sides.
# Both sides build a Reconciler over the SAME ordered list of logs (the session agrees on it, e.g.
# the sorted addresses both declared interest in); a log is named on the wire by its index there.
# The initiator speaks first; then the sides take turns. A turn is one or more frames of at most
# `max_frame` bytes; the last frame of a turn carries the FINAL flag. Every section in a frame is
# self-contained, so a receiver handles each frame on arrival and keeps no partial input.
#
# Per log (n_A, n_B = sizes of the initiator's and the responder's sets):
#   turn 1  I -> R  OPEN     n_A, fp(A)                      ~20 B; an in-sync log costs only this
#   turn 2  R -> I  nothing  if fp(B) == fp(A): in sync
#                   AHEAD    n_B, if B[0:n_A] == A (fp of R's first n_A keys): I is simply behind;
#                            R sends B[n_A:] at once (entries flow after 1 RTT)
#                   CUTS     n_B, fp(B), and 8-byte fingerprints of B's prefixes B[0:n_B - 2^j],
#                            j = 0, 1, 2, ... (geometric cuts from the newest end), and B's
#                            difference estimator (<= 10 levels x 16 4-bit cells)
#   turn 3  I -> R  AHEAD    n_A, if A[0:n_B] == B: R is simply behind; I sends A[n_B:] now
#                   RANGES   otherwise: the longest cut c with A[0:c] == B[0:c] is the common
#                            prefix (to within a factor 2 of the tail); the tail [c:) is reconciled
#                            range by range: ID list if short, else SPLIT fingerprinted buckets
#   then    RANGES back and forth, Negentropy style. A range [lower, upper) of keys is answered:
#             FP   (fingerprint): equal -> nothing; else own items <= ids_threshold -> IDS,
#                  else split own items into `split` buckets -> FP each
#             IDS  (ID prefixes of `id_prefix` bytes): the receiver now knows both directions:
#                  it sends the entries the peer lacks, and answers NEED (bitmap over the list)
#                  for those it lacks; if it finds no difference at all, a prefix collision (or a
#                  concurrent change) hid it: it answers FULLIDS (full 32-byte digests) instead
#             FULLIDS same with full digests
#             NEED terminal: the bitmap names the entries of our list the peer lacks; we send them
#   SKETCH   instead of RANGES at turn 3 when the tail is longer than ids_threshold and the
#            difference estimator (in CUTS) says the differences are sparse in it (d_est * 4 <=
#            tail, d_est <= 1400): our IBLT (node/sync/sketch.py) folded to ~2 cells per estimated
#            difference. The receiver subtracts its own, peels: decoded -> DIFF (terminal: how many
#            we push, and the (time, 16-byte ID prefix) of each key the peer must push); not decoded
#            -> its own SKETCH at least twice as big (sizes strictly grow), or at the full size
#            RANGES over the whole log.
#   Differences clustered at the newest end are found by the cuts in one round trip and their IDs
#   exchanged in the next (2 RTT); scattered ones by one sketch (2 RTT, ~30-90 B per difference,
#   independent of n), one more half-round per undersized sketch.
#
# Push model. Each side learns exactly which of its keys the peer lacks (LogResult.send) and sends
# those entries; what it lacks arrives from the peer. LogResult.expect never exceeds what the peer
# pushes: it is exact after AHEAD, NEED and DIFF, and lower when an IDS answer pushes keys it does
# not announce. Nobody needs to request by ID.
#
# Ending. A turn that contains no request (OPEN, CUTS, SKETCH, FP, IDS, FULLIDS) ends the exchange;
# a side that received requests always answers (possibly with an empty FINAL frame). `done` is then
# true on both sides. Keys added on either side mid-exchange are handled safely but may be missed
# by this pass; the caller is finished when a pass reports `all_in_sync` (every log matched at
# OPEN), or when every log that differed was `exact` (one side's set was the other's prefix, AHEAD)
# and all its announced entries moved; else it reconciles again (normally the second pass agrees).
#
# Malformed input of any kind raises RemoteProtocolError; nothing else escapes `receive`.

from node._compat import TYPE_CHECKING, bit_length
from node.errors import (
    REASON_TOO_LARGE,
    REASON_UNEXPECTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from node.sync import _reconcile_states as S  # noqa: N812 - the table reads best short
from node.sync import reconcile_sketch, sketch
from node.sync.keyset import FINGERPRINT_BYTES, KeySet
from node.sync.reconcile_wire import (
    CUT_BYTES,
    FLAG_FINAL,
    MAX_CUTS,
    MIN_FRAME,
    MODE_FP,
    MODE_FULLIDS,
    MODE_IDS,
    MODE_NEED,
    MODE_SKIP,
    OP_AHEAD,
    OP_CUTS,
    OP_OPEN,
    VERSION,
    ZERO32,
    _bad,
    _less,
    _RangeOut,
    _Reader,
    _Writer,
    bound_after,
    id_pieces,
    split_range,
)
from node.varint import encode_uvarint

if TYPE_CHECKING:
    from typing import Callable

    from node.sync.keyset import Key

    Bound = Key | None  # None is +infinity

EST_SEND_LEVELS = 10  # estimator levels in CUTS: resolves d up to ~2^10 * 16 / 8
SKETCH_CELLS_PER_DIFF = 2.0  # first sketch: cells per estimated difference
SPARSE = 4  # sketch only if the estimated differences are <= tail / SPARSE
MAX_SKETCH_D = 1400  # above this estimate (full table: 2160 cells), ranges are used


class LogResult:
    """What reconciliation decided for one log.

    Attributes:
        send: keys the peer lacks; we must send these entries (in order found).
        expect: how many entries the peer will send us (it lacks none of them... we lack them).
        in_sync: True if the log matched at the first check (nothing differed).
        exact: one set was the other's prefix: once `send` and `expect` moved, the sets are equal.
    """

    __slots__ = ("exact", "expect", "in_sync", "send")

    def __init__(self) -> None:
        self.send: list[Key] = []
        self.expect = 0
        self.in_sync = True
        self.exact = False

    def __repr__(self) -> str:
        return "LogResult(send=%d, expect=%d, in_sync=%r)" % (
            len(self.send),
            self.expect,
            self.in_sync,
        )


class Reconciler:
    """One side of a reconciliation of many logs.

    Args:
        logs: the KeySets, in the order both sides agreed on (the index is the wire name).
        initiator: True on the side that speaks first.
        max_frame: maximum bytes per frame we send (>= 256; 4096 suits BLE).
        split: buckets per split of a mismatched range.
        ids_threshold: a mismatched range with at most this many own items is answered by IDs.
        tail_ids: after the cuts, a tail of at most this many items is sent as IDs directly.
        id_prefix: bytes of each digest sent in an IDS list (4..32).
        max_turns: a peer that needs more turns than this is cut off (RemoteProtocolError).
        max_receive_frame: maximum bytes per frame we accept (default: `max_frame`); the peer
            sizes its frames from its own link, so this may be larger than `max_frame`.
    """

    def __init__(
        self,
        logs: "list[KeySet]",
        initiator: bool,
        max_frame: int = 4096,
        split: int = 32,
        ids_threshold: int = 32,
        tail_ids: int = 256,
        id_prefix: int = 8,
        max_turns: int = 64,
        max_receive_frame: "int | None" = None,
    ) -> None:
        if max_frame < MIN_FRAME or split < 2 or not 4 <= id_prefix <= 32 or ids_threshold < 1:
            raise LocalProtocolError("reconcile: bad parameters")
        self.logs = logs
        self.initiator = initiator
        self.max_frame = max_frame
        self.max_receive_frame = max_frame if max_receive_frame is None else max_receive_frame
        self.split = split
        self.ids_threshold = ids_threshold
        self.tail_ids = tail_ids
        self.id_prefix = id_prefix
        self.max_turns = max_turns
        self.results = [LogResult() for _ in logs]
        self.done = False
        self.turns = 0  # turns received
        self._started = False
        self._state = [S.AWAIT_OPEN] * len(logs)  # per log; node/sync/_reconcile_states.py
        self._sent_count = [0] * len(logs)
        self._seen: list[bytes | None] = [None] * len(logs)  # whole-log fingerprint at first look
        self._outstanding: set[int] = set()  # logs we sent a request for in our last turn
        self._next_outstanding: set[int] = set()
        self._peer_requested = False
        self._sent_lists: dict[tuple[int, Bound, Bound], list[Key]] = {}
        self._old_lists: dict[tuple[int, Bound, Bound], list[Key]] = {}
        self._writer = _Writer(max_frame)
        self._my_turn = initiator
        self._sketch_m = [0] * len(logs)  # size of the last sketch we sent (0: none)
        self._work: dict[int, sketch.Table] = {}  # log -> difference table being received
        self._work_next: dict[int, int] = {}  # log -> next cell index expected
        self.cells_per_diff = SKETCH_CELLS_PER_DIFF  # first sketch: cells per estimated difference

    # -- public API -----------------------------------------------------------------------------

    def start(self) -> "list[bytes]":
        """Initiator: the frames of the first turn (OPEN per log). Empty if there are no logs.

        Reconciliation keeps no time: deadlines are the session's.
        """
        if not self.initiator or self.turns or self._started:
            raise LocalProtocolError("reconcile: start() is for a fresh initiator")
        self._started = True
        if not self.logs:
            self.done = True
            return []
        for index, keyset in enumerate(self.logs):
            count = len(keyset)
            self._sent_count[index] = count
            self._enter(index, S.START)
            whole = keyset.fingerprint(0, count)
            self._seen[index] = whole
            section = encode_uvarint(index) + bytes((OP_OPEN,)) + encode_uvarint(count) + whole
            self._writer.add(section)
            self._next_outstanding.add(index)
        return self._end_turn()

    def receive(self, frame: bytes) -> "list[bytes]":
        """Handle one frame from the peer; returns our reply frames once the peer's turn ended.

        Args:
            frame: one reconcile frame.

        Raises:
            RemoteProtocolError: the frame is malformed or unexpected.
        """
        if self.done:
            raise RemoteProtocolError("reconcile: frame after the end", REASON_UNEXPECTED)
        if self._my_turn:
            raise RemoteProtocolError("reconcile: frame while it is our turn", REASON_UNEXPECTED)
        try:
            final = self._parse(frame)
        except RemoteProtocolError:
            self.done = True
            raise
        except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:  # defensive
            self.done = True
            raise _bad("bad frame (%s)" % (type(exc).__name__,)) from None
        if not final:
            return []
        self.turns += 1
        self._old_lists = {}
        if not self._peer_requested:
            # the peer's turn asked nothing: the exchange is over
            self.done = True
            for index in self._outstanding:
                self._enter(index, S.TURN_ENDED)
            return []
        if self.turns > self.max_turns:
            self.done = True
            raise RemoteProtocolError("reconcile: too many turns", REASON_UNEXPECTED)
        for index in self._outstanding:
            if index not in self._next_outstanding:
                self._enter(index, S.TURN_ENDED)
        return self._end_turn()

    @property
    def all_in_sync(self) -> bool:
        """True once done, if every log matched at the first check."""
        if not self.done or not all(r.in_sync for r in self.results):
            return False
        # a key added or removed here since we first looked means another pass is needed
        for index, keyset in enumerate(self.logs):
            seen = self._seen[index]
            if seen is not None and keyset.fingerprint(0, len(keyset)) != seen:
                return False
        return True

    # -- turn handling ----------------------------------------------------------------------------

    def _end_turn(self) -> "list[bytes]":
        frames = self._writer.finish()
        self._outstanding = self._next_outstanding
        self._next_outstanding = set()
        self._old_lists = self._sent_lists
        self._sent_lists = {}
        self._peer_requested = False
        self._my_turn = False
        if not self._outstanding:
            # we asked nothing: the peer will not answer; the exchange is over for us
            self.done = True
        return frames

    def _parse(self, frame: bytes) -> bool:
        if len(frame) < 2:
            raise _bad("frame shorter than its 2-byte header")
        if len(frame) > self.max_receive_frame:
            raise RemoteProtocolError("reconcile: frame larger than max_frame", REASON_TOO_LARGE)
        if frame[0] != VERSION:
            raise _bad("unknown version 0x%02x at offset 0" % frame[0])
        flags = frame[1]
        if flags & ~FLAG_FINAL:
            raise _bad("unknown flags 0x%02x at offset 1" % flags)
        reader = _Reader(frame, 2)
        while reader.pos < len(frame):
            start = reader.pos
            index = reader.uvarint()
            if index >= len(self.logs):
                raise _bad("log index %d out of range at offset %d" % (index, start))
            op = reader.byte()
            if not 1 <= op <= len(S.SECTION_INPUTS):
                raise _bad("unknown op %d at offset %d" % (op, reader.pos - 1))
            event = S.SECTION_INPUTS[op - 1]
            state = self._state[index]
            step = S.transition(state, event)
            if step is None or (state != S.AWAIT_OPEN and index not in self._outstanding):
                raise RemoteProtocolError(
                    "reconcile: unexpected %s for log %d (%s)" % (event, index, state),
                    REASON_UNEXPECTED,
                )
            _ACTIONS[step[0]](self, index, reader)
            if self._state[index] not in step[1]:  # pragma: no cover - a bug in an action
                raise LocalProtocolError(
                    "reconcile: %s left log %d in %s" % (step[0], index, self._state[index])
                )
        if flags & FLAG_FINAL:
            if self._work:
                raise _bad("turn ended inside a SKETCH")
            self._my_turn = True
            return True
        return False

    def _enter(self, index: int, event: str) -> None:
        """Apply a START or TURN_ENDED input: the table names exactly one next state."""
        step = S.transition(self._state[index], event)
        if step is None:  # pragma: no cover - our own bookkeeping is wrong
            raise LocalProtocolError("reconcile: %s in %s" % (event, self._state[index]))
        self._state[index] = step[1][0]

    def _request(self, index: int) -> None:
        self._next_outstanding.add(index)

    # -- OPEN / AHEAD / CUTS ----------------------------------------------------------------------

    def _on_open(self, index: int, reader: _Reader) -> None:
        if self.initiator or self.turns != 0:
            raise RemoteProtocolError("reconcile: unexpected OPEN", REASON_UNEXPECTED)
        count = reader.uvarint()
        fp = reader.take(FINGERPRINT_BYTES)
        self._peer_requested = True
        keyset = self.logs[index]
        mine = len(keyset)
        result = self.results[index]
        self._seen[index] = keyset.fingerprint(0, mine)
        if count <= mine and keyset.fingerprint(0, count) == fp:
            self._state[index] = S.DONE
            if count == mine:
                return
            result.in_sync = False
            result.send.extend(keyset.keys_between(count, mine))
            self._emit(index, OP_AHEAD, encode_uvarint(mine))
            return
        result.in_sync = False
        self._state[index] = S.AWAIT_TAIL
        self._sent_count[index] = mine
        cuts = bytearray()
        n_cuts = 0
        step = 1
        while mine - step >= 1 and n_cuts < MAX_CUTS:
            cuts.extend(keyset.fingerprint(0, mine - step)[:CUT_BYTES])
            n_cuts += 1
            step *= 2
        levels = min(EST_SEND_LEVELS, bit_length(mine))
        body = encode_uvarint(mine) + keyset.fingerprint(0, mine) + bytes((n_cuts,)) + cuts
        body += bytes((levels,)) + keyset.estimator_bytes(levels)
        self._emit(index, OP_CUTS, body)
        self._request(index)

    def _on_ahead(self, index: int, reader: _Reader) -> None:
        count = reader.uvarint()
        sent = self._sent_count[index]
        if count <= sent:
            raise _bad("AHEAD count %d not above ours %d" % (count, sent))
        result = self.results[index]
        result.in_sync = False
        result.exact = True
        result.expect += count - sent
        self._state[index] = S.DONE

    def _on_cuts(self, index: int, reader: _Reader) -> None:
        if not self.initiator:
            raise RemoteProtocolError("reconcile: unexpected CUTS", REASON_UNEXPECTED)
        peer_count = reader.uvarint()
        peer_fp = reader.take(FINGERPRINT_BYTES)
        n_cuts = reader.byte()
        if n_cuts > MAX_CUTS:
            raise _bad("too many cuts: %d" % n_cuts)
        cuts = reader.take(n_cuts * CUT_BYTES)
        levels = reader.byte()
        if levels > sketch.EST_LEVELS:
            raise _bad("too many estimator levels: %d" % levels)
        estimator = reader.take(levels * sketch.EST_CELLS // 2)
        self._peer_requested = True
        keyset = self.logs[index]
        mine = len(keyset)
        result = self.results[index]
        result.in_sync = False
        if peer_count <= mine and keyset.fingerprint(0, peer_count) == peer_fp:
            self._state[index] = S.DONE
            result.exact = True
            if peer_count < mine:
                result.send.extend(keyset.keys_between(peer_count, mine))
                self._emit(index, OP_AHEAD, encode_uvarint(mine))
            return
        common = 0
        step = 1
        for j in range(n_cuts):
            cut = peer_count - step
            step *= 2
            if cut < 1:
                break
            if (
                cut <= mine
                and keyset.fingerprint(0, cut)[:CUT_BYTES]
                == cuts[j * CUT_BYTES : (j + 1) * CUT_BYTES]
            ):
                common = cut
                break
        self._state[index] = S.AWAIT_RANGES
        # the tail starts just after the last common key (the peer may hold keys between it and
        # our next key, so a bound between our own neighbours would be wrong here)
        lower: Key = (0, ZERO32) if common == 0 else bound_after(keyset.key_at(common - 1))
        if mine - common > self.ids_threshold:
            # a long tail: if the differences look sparse in it, an IBLT costs O(d), not O(n)
            guess = reconcile_sketch.estimate(
                self, keyset, levels, estimator, abs(peer_count - mine)
            )
            if guess <= MAX_SKETCH_D and guess * SPARSE <= max(mine, peer_count) - common:
                reconcile_sketch.send_sketch(
                    self, index, sketch.size_for(int(guess * SKETCH_CELLS_PER_DIFF) + 1)
                )
                return
        out = _RangeOut(self._writer, self.max_frame, index, lower)
        if mine - common <= self.tail_ids:
            self._ids_ranges(out, index, lower, None, common, mine, MODE_IDS)
        else:
            self._split_range(out, index, lower, None, common, mine)
        out.close()

    # -- RANGES -----------------------------------------------------------------------------------

    def _on_ranges(self, index: int, reader: _Reader) -> None:
        self._state[index] = S.AWAIT_RANGES
        n_ranges = reader.uvarint()
        if n_ranges == 0:
            raise _bad("RANGES with no range at offset %d" % reader.pos)
        lower = reader.bound(0)
        if lower is None:
            raise _bad("RANGES lower bound is infinity")
        keyset = self.logs[index]
        out = _RangeOut(self._writer, self.max_frame, index, lower)
        prev_time = lower[0]
        lo_index = keyset.rank(lower)
        for _ in range(n_ranges):
            if lower is None:
                raise _bad("range after infinity at offset %d" % reader.pos)
            upper = reader.bound(prev_time)
            if not _less(lower, upper):
                raise _bad("range bounds do not increase at offset %d" % reader.pos)
            mode = reader.byte()
            hi_index = len(keyset) if upper is None else keyset.rank(upper)
            if mode == MODE_SKIP:
                pass
            elif mode == MODE_FP:
                fp = reader.take(FINGERPRINT_BYTES)
                self._peer_requested = True
                if keyset.fingerprint(lo_index, hi_index) != fp:
                    if hi_index - lo_index <= self.ids_threshold:
                        self._ids_ranges(out, index, lower, upper, lo_index, hi_index, MODE_IDS)
                    else:
                        self._split_range(out, index, lower, upper, lo_index, hi_index)
            elif mode in (MODE_IDS, MODE_FULLIDS):
                size = 32 if mode == MODE_FULLIDS else reader.byte()
                if size < 4 or size > 32:
                    raise _bad("ID prefix size %d out of range" % size)
                count = reader.uvarint()
                unit = 33 if mode == MODE_FULLIDS else size
                if count * unit > len(reader.data) - reader.pos:
                    raise _bad("ID list longer than the frame at offset %d" % reader.pos)
                items: list[object] = []
                for _ in range(count):
                    if mode == MODE_FULLIDS:
                        items.append((reader.uvarint(), reader.take(32)))
                    else:
                        items.append(reader.take(size))
                self._peer_requested = True
                self._on_ids(out, index, lower, upper, lo_index, hi_index, items, size, mode)
            elif mode == MODE_NEED:
                count = reader.uvarint()
                bitmap = reader.take((count + 7) // 8)
                self._on_need(index, lower, upper, count, bitmap)
            else:
                raise _bad("unknown range mode %d at offset %d" % (mode, reader.pos - 1))
            if upper is not None:
                prev_time = upper[0]
            lower = upper
            lo_index = hi_index
        out.close()

    def _on_ids(
        self,
        out: "_RangeOut",
        index: int,
        lower: "Key",
        upper: "Bound",
        lo_index: int,
        hi_index: int,
        items: "list[object]",
        size: int,
        mode: int,
    ) -> None:
        keyset = self.logs[index]
        mine = keyset.keys_between(lo_index, hi_index)
        full = mode == MODE_FULLIDS
        theirs: dict[object, int] = {}
        for i, item in enumerate(items):
            theirs[item] = i
        own_prefixes: set[object] = set()
        send = []
        for key in mine:
            prefix: object = key if full else key[1][:size]
            own_prefixes.add(prefix)
            if prefix not in theirs:
                send.append(key)
        count = len(items)
        bitmap = bytearray((count + 7) // 8)
        lacking = 0
        for prefix, position in theirs.items():
            if prefix not in own_prefixes:
                bitmap[position >> 3] |= 1 << (position & 7)
                lacking += 1
        result = self.results[index]
        if not send and not lacking:
            if mode == MODE_IDS and size < 32:
                # the peer saw a mismatch we cannot see: a prefix collision or a concurrent change
                self._ids_ranges(out, index, lower, upper, lo_index, hi_index, MODE_FULLIDS)
            return
        result.in_sync = False
        result.send.extend(send)
        if lacking:
            result.expect += lacking
            out.add(lower, upper, bytes((MODE_NEED,)) + encode_uvarint(count) + bytes(bitmap))

    def _on_need(self, index: int, lower: "Key", upper: "Bound", count: int, bitmap: bytes) -> None:
        sent = self._old_lists.pop((index, lower, upper), None)
        if sent is None or len(sent) != count:
            raise RemoteProtocolError(
                "reconcile: NEED for a list we did not send (log %d)" % index, REASON_UNEXPECTED
            )
        result = self.results[index]
        result.in_sync = False
        for i in range(count):
            if bitmap[i >> 3] & (1 << (i & 7)):
                result.send.append(sent[i])

    # -- producing ranges -------------------------------------------------------------------------

    def _ids_ranges(
        self,
        out: "_RangeOut",
        index: int,
        lower: "Key",
        upper: "Bound",
        lo_index: int,
        hi_index: int,
        mode: int,
    ) -> None:
        """Our keys [lo_index, hi_index) as ID lists (remembered for the peer's NEED)."""
        size = 32 if mode == MODE_FULLIDS else self.id_prefix
        for piece_lower, piece_upper, keys in id_pieces(
            out, self.logs[index], lower, upper, lo_index, hi_index, mode, size, self.max_frame
        ):
            self._sent_lists[(index, piece_lower, piece_upper)] = keys
        self._request(index)

    def _split_range(
        self,
        out: "_RangeOut",
        index: int,
        lower: "Key",
        upper: "Bound",
        lo_index: int,
        hi_index: int,
    ) -> None:
        split_range(out, self.logs[index], lower, upper, lo_index, hi_index, self.split)
        self._request(index)

    def _emit(self, index: int, op: int, body: bytes) -> None:
        self._writer.add(encode_uvarint(index) + bytes((op,)) + body)


# The actions named in _reconcile_states.TRANSITIONS for received sections, by name (START and
# TURN_ENDED are applied by Reconciler._enter, which only moves the state).
_ACTIONS: "dict[str, Callable[[Reconciler, int, _Reader], None]]" = {
    "open": Reconciler._on_open,
    "ahead": Reconciler._on_ahead,
    "cuts": Reconciler._on_cuts,
    "ranges": Reconciler._on_ranges,
    "sketch": reconcile_sketch.on_sketch,
    "diff": reconcile_sketch.on_diff,
}
