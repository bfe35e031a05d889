"""Reconciliation passes over a session's agreed logs (sans-IO, L2).

Theory of operation
-------------------
Reconciliation runs in passes started by the initiator. The first Reconcile message of a pass
(ref = pass number, flag PASS_START) names the agreed logs it covers, in order; both sides build a
Reconciler (node.sync.reconcile) over those logs' KeySets and exchange its frames, each in a
Reconcile message with flags 0. Each side learns which entries the other lacks (`results`) and
pushes them (node.app.outbound). The responder says PASS_SENT once its reconciler is done and
everything it decided to send was sent. A pass is *settled* when its reconciler is done, nothing
is queued, unacknowledged or waiting for a commit, and (initiator) the responder said PASS_SENT.

The initiator then decides (`decide`), in this order:

    the last pass found every log in sync (or exact, below) and
    nothing changed since                                             -> IN_SYNC
    no change and no pass asked for                                   -> WAIT
    MAX_PASSES passes in a row neither matched nor moved an entry     -> UNSETTLED (Bye)
    otherwise                                                         -> START another pass

"Nothing changed" is measured, not assumed: each log keeps the (count, ID sum) of its KeySet at
the pass's OPEN plus the entries the peer is known to hold since (it sent them to us, or
acknowledged them from us); another pass starts only when a KeySet differs from that sum. So an
online member's long-lived session costs no pass per delivered message. A log that differed
counts as in sync without a second pass when its reconciliation was exact (one set a prefix of the
other, LogResult.exact) and exactly the announced entries moved (sent and acknowledged, or
received and stored): the common "I am just behind" case ends in one pass.

`Passes` does no I/O and needs no event loop: it returns the Reconcile payloads to send and the
keys to queue; KeySets come from the caller's `keyset_of`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.errors import REASON_UNEXPECTED, RemoteProtocolError
from node.proto.messages import SUMMARY_KNOWN, SUMMARY_UNKNOWN
from node.sync.keyset import MASK256
from node.sync.reconcile import Reconciler
from node.varint import decode_uvarint, encode_uvarint

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from node.app.interest import SessionLog
    from node.sync.keyset import Key, KeySet

    KeySetOf = Callable[[str], KeySet]

PASS_START = 0x01  # Reconcile data flag: this message starts a pass and names its logs
PASS_SENT = 0x02  # Reconcile data flag (responder only): every entry this pass decided was sent
MAX_PASSES = 8  # passes in a row that found differences and moved nothing: "unsettled"
FOLD_LOGS = 4  # a Summary offer carries pass 1 for at most this many logs
FOLD_FRAME = 128  # and only if its first reconciler frame is at most this long

# What the initiator does next (`Passes.decide`).
WAIT = "wait"
IN_SYNC = "in-sync"
UNSETTLED = "unsettled"
START = "start"


class Passes:
    """The passes of one session.

    Args:
        initiator: True on the side that starts passes.
        max_frame: bytes per reconciler frame we send (inside one Reconcile message).
        max_receive_frame: bytes per reconciler frame we accept (the peer's link may be larger).
    """

    def __init__(self, initiator: bool, max_frame: int, max_receive_frame: int) -> None:
        self.initiator = initiator
        self.max_frame = max_frame
        self.max_receive_frame = max_receive_frame
        self.number = 0  # the current pass
        self.need_pass = False  # something asks for another pass (new logs, a full queue)
        self.folded = False  # initiator: pass 1 rides in our Summary offer, unanswered yet
        self.reconciler: Reconciler | None = None
        self.logs: list[SessionLog] = []  # the logs of the current pass, in its order
        self.peer_sent_all = False  # initiator: the responder said PASS_SENT for this pass
        self._sent_all_said = False  # responder: we said PASS_SENT for this pass
        self._reported: list[int] = []  # per log, results already handed out
        self._stored: dict[int, int] = {}  # log ref -> entries stored from the peer this pass
        self._unsettled = 0  # passes in a row that neither matched nor moved entries
        self._mark: tuple[int, int] = (0, 0)  # progress when the current pass began

    # -- initiator --------------------------------------------------------------------------

    def start(
        self, logs: list[SessionLog], keyset_of: KeySetOf, progress: tuple[int, int]
    ) -> list[bytes]:
        """Start the next pass over `logs`; the Reconcile payloads to send (ref = `number`).

        Args:
            logs: the agreed logs, in the order both sides use.
            keyset_of: a log's KeySet by address.
            progress: (entries sent, entries stored) so far on this link.
        """
        self.need_pass = False
        self.number += 1
        self._unsettled += 1
        self._mark = progress
        for slog in logs:
            keyset = keyset_of(slog.address)
            slog.opened = (len(keyset), keyset.sum_between(0, len(keyset)))
            slog.moved_count = slog.moved_sum = 0
            slog.handed.clear()
        self._begin(logs, keyset_of)
        assert self.reconciler is not None
        frames = self.reconciler.start()
        # The log list travels alone (LogPolicy.max_session_logs refs of <= 3 bytes fit one
        # Reconcile message), then the reconciler's frames, each in its own message.
        header = bytes((PASS_START,)) + encode_uvarint(len(logs))
        header += b"".join(encode_uvarint(s.ref) for s in logs)
        return [header] + [b"\x00" + frame for frame in frames]

    def fold(self, logs: list[SessionLog], keyset_of: KeySetOf, progress: tuple[int, int]) -> bytes:
        """Initiator: start pass 1 inside our Summary offer if it is small (at most FOLD_LOGS
        logs, one reconciler frame of at most FOLD_FRAME bytes); that frame, or b"" (no pass)."""
        if not 0 < len(logs) <= FOLD_LOGS:
            return b""
        payloads = self.start(logs, keyset_of, progress)
        if len(payloads) == 2 and len(payloads[1]) <= FOLD_FRAME:
            self.folded = True
            return payloads[1][1:]
        self.number = self._unsettled = 0  # not folded: as if never started
        self.reconciler, self.logs = None, []
        return b""

    def folded_answer(self, kind: int) -> None:
        """Initiator: the answer to an offer that carried pass 1 (`fold`): KNOWN continues it;
        IN_SYNC used its number, nothing to reconcile; UNKNOWN: it never happened. Nothing if
        the offer carried no pass."""
        if not self.folded:
            return
        self.folded = False
        if kind == SUMMARY_KNOWN:
            return
        self.reconciler, self.logs = None, []
        if kind == SUMMARY_UNKNOWN:
            self.number = self._unsettled = 0

    def open_folded(self, logs: list[SessionLog], keyset_of: KeySetOf, frame: bytes) -> list[bytes]:
        """Responder: pass 1 came inside the initiator's Summary offer: reconcile `logs` from its
        `frame`; the Reconcile payloads to answer with, or [] if every log was in sync (the pass
        ends there: we answer IN_SYNC, and its number is used)."""
        if self.initiator or self.number != 0:
            raise RemoteProtocolError("reconcile: a folded pass out of turn", REASON_UNEXPECTED)
        self.number = 1
        self._begin(logs, keyset_of)
        reconciler = self.reconciler
        assert reconciler is not None
        replies = [b"\x00" + reply for reply in reconciler.receive(frame)]
        if all(r.in_sync for r in reconciler.results):
            self.reconciler, self.logs = None, []
            return []
        return replies

    def settled(self) -> bool:
        """The current pass's exchange is over: its reconciler is done and (initiator) the
        responder said PASS_SENT. The caller also waits until the entries it moved are sent,
        acknowledged and committed."""
        if self.reconciler is not None and not self.reconciler.done:
            return False
        # Entries the peer decided to send may still be on their way until it says so. (Its
        # announced count is not enough: an entry evicted meanwhile is never sent.)
        return self.peer_sent_all or not self.logs

    def decide(self, keyset_of: KeySetOf, progress: tuple[int, int]) -> str:
        """What to do once the current pass is settled: WAIT, IN_SYNC, UNSETTLED or START."""
        reconciler = self.reconciler
        in_sync = reconciler is not None and self._still_in_sync(reconciler, keyset_of)
        if in_sync and not self.need_pass:
            return IN_SYNC
        if reconciler is not None and not in_sync:
            self.need_pass = True
        if not self.need_pass:
            return WAIT
        if reconciler is not None and (
            all(r.in_sync for r in reconciler.results) or progress != self._mark
        ):
            # That pass matched or moved entries: another one is for entries stored or pushed
            # since (an online member's long-lived session), not a failure to converge.
            self._unsettled = 0
        if self._unsettled >= MAX_PASSES:
            return UNSETTLED
        return START

    def _still_in_sync(self, reconciler: Reconciler, keyset_of: KeySetOf) -> bool:
        """The last pass found every log in sync, and since its OPEN our KeySets changed only by
        entries the peer holds (it sent them, or acknowledged them from us)."""
        if not reconciler.done:
            return False
        for slog, result in zip(self.logs, reconciler.results, strict=True):
            if slog.opened is None:
                return False
            count, total = slog.opened
            keyset = keyset_of(slog.address)
            now_sum = keyset.sum_between(0, len(keyset))
            if len(keyset) != count + slog.moved_count:
                return False
            if now_sum != (total + slog.moved_sum) & MASK256:
                return False
            if not result.in_sync:
                # exact (AHEAD), and exactly the announced entries moved: the peer holds what we
                # hold. From here on the log counts as one that matched, from this state.
                if not result.exact or slog.moved_count != len(result.send) + result.expect:
                    return False
                result.in_sync = True
                slog.opened = (len(keyset), now_sum)
                slog.moved_count = slog.moved_sum = 0
        return True

    # -- both sides -------------------------------------------------------------------------

    def _begin(self, logs: list[SessionLog], keyset_of: KeySetOf) -> None:
        keysets = [keyset_of(s.address) for s in logs]
        self.reconciler = Reconciler(
            keysets,
            self.initiator,
            max_frame=self.max_frame,
            max_receive_frame=self.max_receive_frame,
        )
        self.logs = logs
        self._reported = [0] * len(logs)
        self._stored = {}
        self.peer_sent_all = False
        self._sent_all_said = False

    def receive(
        self,
        number: int,
        data: bytes,
        logs: Mapping[int, SessionLog],
        keyset_of: KeySetOf,
    ) -> list[bytes]:
        """Take a Reconcile message of pass `number`; the Reconcile payloads to answer with.

        Args:
            number: the message's ref (the pass number).
            data: its data (flags byte, then a log list or a reconciler frame).
            logs: the session's logs by ref.
            keyset_of: a log's KeySet by address.

        Raises:
            RemoteProtocolError: anything out of order or malformed.
        """
        if not data:
            raise RemoteProtocolError("empty reconcile message")
        flags = data[0]
        if flags == PASS_SENT:
            if not self.initiator or number != self.number or len(data) != 1:
                raise RemoteProtocolError(
                    "reconcile: unexpected end of pass %d" % number, REASON_UNEXPECTED
                )
            self.peer_sent_all = True
            return []
        if flags & ~PASS_START:
            raise RemoteProtocolError("reconcile: unknown flags 0x%02x" % flags)
        if flags & PASS_START:
            self._open(number, data, logs, keyset_of)
            return []
        if number != self.number or self.reconciler is None:
            raise RemoteProtocolError("reconcile: message for pass %d" % number, REASON_UNEXPECTED)
        return [b"\x00" + frame for frame in self.reconciler.receive(data[1:])]

    def _open(
        self, number: int, data: bytes, logs: Mapping[int, SessionLog], keyset_of: KeySetOf
    ) -> None:
        """Responder: the initiator's PASS_START message naming the logs of pass `number`."""
        if self.initiator or number != self.number + 1:
            raise RemoteProtocolError("reconcile: unexpected pass %d" % number, REASON_UNEXPECTED)
        if self.reconciler is not None and not self.reconciler.done:
            raise RemoteProtocolError(
                "reconcile: new pass before the last ended", REASON_UNEXPECTED
            )
        count, pos = decode_uvarint(data, 1)
        if count > len(logs):
            raise RemoteProtocolError("reconcile: pass names %d logs" % count)
        named = []
        for _ in range(count):
            ref, pos = decode_uvarint(data, pos)
            slog = logs.get(ref)
            if slog is None or not slog.agreed:
                raise RemoteProtocolError(
                    "reconcile: log ref %d is not agreed" % ref, REASON_UNEXPECTED
                )
            named.append(slog)
        if pos != len(data):
            raise RemoteProtocolError("reconcile: bytes after the log list of a pass")
        self.number = number
        if not named:  # neither side carries a log yet: nothing to reconcile
            self.reconciler = None
            self.logs = []
            return
        self._begin(named, keyset_of)

    def note_stored(self, slog: SessionLog, count: int) -> None:
        """`count` entries of `slog` from the peer were stored during this pass."""
        self._stored[slog.ref] = self._stored.get(slog.ref, 0) + count

    def still_to_come(self, slog: SessionLog) -> int:
        """Entries of `slog` the peer announced in this pass and has not had stored yet."""
        if self.reconciler is None or slog not in self.logs:
            return 0
        expect = self.reconciler.results[self.logs.index(slog)].expect
        return max(0, expect - self._stored.get(slog.ref, 0))

    def results(self) -> list[tuple[SessionLog, list[Key]]]:
        """Keys the peer lacks that the reconciler found since the last call, per log, newest
        first (a relay short of quota keeps the newest and refuses the rest unwritten:
        docs/store.md, "A log larger than its quota")."""
        reconciler = self.reconciler
        if reconciler is None:
            return []
        found: list[tuple[SessionLog, list[Key]]] = []
        for index, result in enumerate(reconciler.results):
            new = result.send[self._reported[index] :]
            if new:
                self._reported[index] = len(result.send)
                found.append((self.logs[index], sorted(new, reverse=True)))
        return found

    # -- responder --------------------------------------------------------------------------

    def sent_all_due(self) -> bool:
        """Responder: this pass's reconciler is done and PASS_SENT was not said yet; the caller
        says it (`bytes((PASS_SENT,))` under ref `number`, then `said_sent_all`) once nothing of
        the pass waits to be sent."""
        reconciler = self.reconciler
        return not (
            self.initiator or self._sent_all_said or reconciler is None or not reconciler.done
        )

    def said_sent_all(self) -> None:
        """Responder: PASS_SENT was said for this pass (once per pass)."""
        self._sent_all_said = True
