# Every (state, input) pair of reconciliation's per-log state table
# (node/sync/_reconcile_states.py), driven through a real Reconciler (portable: MicroPython too).
#
# For each pair, log 0 of a two-log reconciler is brought into the state by a real exchange (log 1
# always differs, so the side under test keeps waiting for the peer), then the input is applied: a
# section of that op for log 0 in a frame without the FINAL flag (so the turn does not end and the
# state seen is the one the action chose), or START / TURN_ENDED through the table. A pair in the
# table must move to one of its next states AND do what its action says; a section outside it must
# raise RemoteProtocolError with reason "unexpected"; START / TURN_ENDED outside it are our own
# bookkeeping error (LocalProtocolError).

import hashlib

from harness import TestCase

from node.errors import LocalProtocolError, RemoteProtocolError
from node.sync import _reconcile_states as S
from node.sync import sketch
from node.sync.keyset import KeySet
from node.sync.reconcile import Reconciler
from node.varint import encode_uvarint


def key(i):
    return (i, hashlib.sha256(b"s%d" % i).digest())


BASE = [key(i) for i in range(300)]
OTHER_A = [key(1000 + i) for i in range(10)]  # log 1: differs in every scenario
OTHER_B = [key(1000 + i) for i in range(0, 10, 2)]
SCATTERED_A = [k for i, k in enumerate(BASE) if i not in (17, 140, 222)]
SCATTERED_B = [k for i, k in enumerate(BASE) if i not in (60, 261)]


def pair(a_log0, b_log0):
    a = Reconciler([KeySet(a_log0), KeySet(OTHER_A)], True, max_frame=4096)
    b = Reconciler([KeySet(b_log0), KeySet(OTHER_B)], False, max_frame=4096)
    return a, b


def deliver(receiver, frames):
    out = []
    for frame in frames:
        out.extend(receiver.receive(frame))
    return out


def in_state(state):
    """A reconciler waiting for the peer, with log 0 in `state`."""
    if state == S.AWAIT_OPEN:
        return pair(BASE, BASE[:100])[1]
    if state == S.AWAIT_REPLY:
        a, _b = pair(BASE[:100], BASE[:150])
        a.start()
        return a
    if state == S.AWAIT_TAIL:
        a, b = pair(BASE[:100], BASE[:90] + BASE[95:110])
        deliver(b, a.start())
        return b
    if state == S.AWAIT_RANGES:
        a, b = pair(BASE[:100], BASE[:90] + BASE[95:110])
        deliver(a, deliver(b, a.start()))
        return a
    if state == S.AWAIT_DIFF:
        a, b = pair(SCATTERED_A, SCATTERED_B)
        deliver(a, deliver(b, a.start()))
        return a
    if state == S.DONE:
        a, b = pair(BASE[:100], BASE[:100])
        deliver(b, a.start())
        return b
    raise AssertionError(state)


def section(op):
    """A well-formed section for log 0 of each op, valid wherever the table allows the op."""
    fp = bytes(range(16))
    if op == S.OPEN:
        return b"\x00\x01" + encode_uvarint(42) + fp
    if op == S.AHEAD:
        return b"\x00\x02" + encode_uvarint(100_000)
    if op == S.CUTS:
        return b"\x00\x03" + encode_uvarint(42) + fp + b"\x00\x00"  # no cuts, no estimator levels
    if op == S.RANGES:
        return b"\x00\x04\x01\x01\x00\x00\x01" + fp  # [(0, 0...), infinity): FP
    if op == S.SKETCH:
        # the first of the full-size table's cells (more are due: the state waits for them)
        cell = b"\x01" + encode_uvarint(5) + bytes(sketch.ID_BYTES) + bytes(sketch.CHECK_BYTES)
        return b"\x00\x05" + encode_uvarint(sketch.FULL) + b"\x00\x01" + cell
    if op == S.DIFF:
        return b"\x00\x06\x00\x00"  # we push nothing, the peer lacks nothing
    raise AssertionError(op)


class ReconcileStateTableTests(TestCase):
    def check_pair(self, state, event):
        rec = in_state(state)
        self.assertEqual(rec._state[0], state)
        step = S.transition(state, event)
        result = rec.results[0]
        expect_before = result.expect
        if event in (S.START, S.TURN_ENDED):
            if step is None:
                self.assertRaises(LocalProtocolError, rec._enter, 0, event)
                self.assertEqual(rec._state[0], state)
            else:
                rec._enter(0, event)
                self.assertEqual(rec._state[0], step[1][0])
            return
        frame = b"\x57\x00" + section(event)
        if step is None:
            with self.assertRaises(RemoteProtocolError) as caught:
                rec.receive(frame)
            self.assertEqual(caught.exception.reason, "unexpected")
            self.assertIn(event, caught.exception.message)
            return
        action, allowed = step
        self.assertEqual(rec.receive(frame), [])  # not FINAL: no reply yet
        after = rec._state[0]
        self.assertIn(after, allowed)
        written = bytes(rec._writer.current[2:])
        if action == "open":
            # 42 keys with an unrelated fingerprint: not in sync, CUTS answered
            self.assertEqual(after, S.AWAIT_TAIL)
            self.assertFalse(result.in_sync)
            self.assertEqual(written[:2], b"\x00\x03")
        elif action == "ahead":
            self.assertEqual(after, S.DONE)
            self.assertEqual(result.expect - expect_before, 100_000 - rec._sent_count[0])
        elif action == "cuts":
            # no common cut: the whole log is the tail (100 keys <= tail_ids): IDS ranges
            self.assertEqual(after, S.AWAIT_RANGES)
            self.assertEqual(written[:2], b"\x00\x04")
            self.assertIn(0, rec._next_outstanding)
        elif action == "ranges":
            # the fingerprint differs from ours over the whole log: answered (IDs or split)
            self.assertEqual(after, S.AWAIT_RANGES)
            self.assertIn(b"\x00\x04", written)
            self.assertIn(0, rec._next_outstanding)
        elif action == "sketch":
            self.assertEqual(after, state)  # more cells due
            self.assertEqual(rec._work_next[0], 1)
        elif action == "diff":
            self.assertEqual(after, S.AWAIT_DIFF)
            self.assertEqual(result.expect, expect_before)
            self.assertFalse(result.in_sync)
        else:  # pragma: no cover
            raise AssertionError(action)

    def test_every_state_input_pair(self):
        pairs = 0
        for state in S.STATES:
            for event in S.INPUTS:
                try:
                    self.check_pair(state, event)
                except AssertionError as exc:
                    raise AssertionError("%s x %s: %s" % (state, event, exc)) from None
                pairs += 1
        self.assertEqual(pairs, len(S.STATES) * len(S.INPUTS))

    def test_table_names_only_known_states_inputs_and_actions(self):
        from node.sync import reconcile

        section_actions = set()
        for (state, event), (action, nexts) in S.TRANSITIONS.items():
            self.assertIn(state, S.STATES)
            self.assertIn(event, S.INPUTS)
            for nxt in nexts:
                self.assertIn(nxt, S.STATES)
            if event in S.SECTION_INPUTS:
                section_actions.add(action)
            else:
                self.assertEqual(len(nexts), 1)  # START / TURN_ENDED only move the state
        self.assertEqual(section_actions, set(reconcile._ACTIONS))
