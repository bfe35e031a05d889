# Portable tests for node.sync.log: heads, order, clock, join, traversal and refs selection.
# Entries are signed with a fake HMAC signer (the log never looks at signatures).

from harness import TestCase

from node._compat import hmac_sha256, sha256
from node.errors import LocalProtocolError
from node.sync.entry import create_entry
from node.sync.log import (
    POINTER_COUNT,
    Log,
    append_plan,
    heads,
    join,
    max_clock_time,
    next_clock_time,
    select_refs,
    sorted_entries,
    traverse,
    values,
)

LOG = "/orbitdb/bafyreitest/00ff_berty_group_metadata"
PUB = sha256(b"log test key")


def sign(message):
    return hmac_sha256(PUB, message) + hmac_sha256(PUB, b"2" + message)


def entry(payload, next=(), time=None, refs=(), log=LOG):
    if time is None:
        time = max([0] + [p.clock_time for p in next]) + 1
    return create_entry(log, payload, [p.cid for p in next], list(refs), time, PUB, sign)


def view(*entries):
    return {e.cid: e for e in entries}


def chain(n):
    """A log written by one writer with go-orbit-db's append rules."""
    log = Log(LOG)
    written = []
    for i in range(n):
        next_cids, refs, time = append_plan(log.entries, log.clock_time)
        e = create_entry(LOG, "e%d" % i, next_cids, refs, time, PUB, sign)
        log = log.append(e)
        written.append(e)
    return log, written


class OrderTests(TestCase):
    def test_sort_by_time_then_clock_id_then_cid(self):
        a = entry("a", time=1)
        b = entry("b", time=2)
        c = entry("c", time=2)
        ordered = sorted_entries([c, b, a])
        self.assertEqual(ordered[0], a)
        tie = sorted([b, c], key=lambda e: str(e.cid))
        self.assertEqual(ordered[1:], tie)
        self.assertEqual(sorted_entries([a, b, c], newest_first=True), list(reversed(ordered)))

    def test_order_is_independent_of_input_order(self):
        es = [entry("p%d" % i, time=i % 3) for i in range(12)]
        expected = sorted_entries(es)
        for shift in range(len(es)):
            self.assertEqual(sorted_entries(es[shift:] + es[:shift]), expected)


class HeadsTests(TestCase):
    def test_empty(self):
        self.assertEqual(heads({}), [])
        self.assertEqual(Log(LOG).heads, [])
        self.assertEqual(Log(LOG).clock_time, 0)

    def test_chain_has_one_head(self):
        a = entry("a")
        b = entry("b", [a])
        self.assertEqual(heads(view(a, b)), [b])

    def test_concurrent_heads(self):
        a = entry("a")
        b = entry("b", [a])
        c = entry("c", [a])
        self.assertEqual(heads(view(a, b, c)), sorted_entries([b, c]))
        d = entry("d", [b, c])
        self.assertEqual(heads(view(a, b, c, d)), [d])

    def test_partial_view(self):
        a = entry("a")
        b = entry("b", [a])
        self.assertEqual(heads(view(b)), [b])


class ClockTests(TestCase):
    def test_next_clock_time(self):
        a = entry("a", time=3)
        b = entry("b", time=5)
        self.assertEqual(next_clock_time([]), 1)
        self.assertEqual(next_clock_time([a, b]), 6)
        self.assertEqual(next_clock_time([a, b], 9), 10)
        self.assertEqual(max_clock_time([a, b]), 5)
        self.assertEqual(max_clock_time([], 4), 4)

    def test_log_clock(self):
        a = entry("a", time=3)
        self.assertEqual(Log(LOG, view(a)).clock_time, 3)
        self.assertEqual(Log(LOG, view(a), 7).clock_time, 7)

    def test_join_clock_is_max(self):
        a = entry("a", time=3)
        b = entry("b", time=8)
        self.assertEqual(join(Log(LOG, view(a), 4), Log(LOG, view(b))).clock_time, 8)
        self.assertEqual(join(Log(LOG, view(a), 10), Log(LOG, view(b))).clock_time, 10)
        self.assertEqual(join(Log(LOG, view(b)), Log(LOG, view(a), 10)).clock_time, 10)


class JoinTests(TestCase):
    def test_union_and_heads(self):
        a = entry("a")
        b = entry("b", [a])
        c = entry("c", [a])
        left = Log(LOG, view(a, b))
        right = Log(LOG, view(a, c))
        joined = join(left, right)
        self.assertEqual(set(joined.entries), {a.cid, b.cid, c.cid})
        self.assertEqual(joined.heads, sorted_entries([b, c]))
        self.assertEqual(joined, join(right, left))
        self.assertEqual(join(joined, left), joined)

    def test_join_other_log_refused(self):
        other = entry("x", log=LOG + "x")
        with self.assertRaises(LocalProtocolError):
            join(Log(LOG), Log(LOG + "x", view(other)))

    def test_log_checks_its_entries(self):
        other = entry("x", log=LOG + "x")
        with self.assertRaisesRegex(LocalProtocolError, "belongs to log"):
            Log(LOG, view(other))
        a = entry("a")
        b = entry("b")
        with self.assertRaisesRegex(LocalProtocolError, "filed under"):
            Log(LOG, {a.cid: b})

    def test_log_value_semantics(self):
        a = entry("a")
        self.assertEqual(Log(LOG, view(a)), Log(LOG).append(a))
        self.assertNotEqual(Log(LOG, view(a)), Log(LOG))
        self.assertEqual(len(Log(LOG, view(a))), 1)
        self.assertIn("entries=1", repr(Log(LOG, view(a))))
        self.assertEqual(hash(Log(LOG, view(a))), hash(Log(LOG).append(a)))


class TraverseTests(TestCase):
    def test_newest_first_following_next(self):
        a = entry("a")
        b = entry("b", [a])
        c = entry("c", [a])
        d = entry("d", [b, c])
        v = view(a, b, c, d)
        bc = sorted_entries([b, c], newest_first=True)
        self.assertEqual(traverse(v, [d]), [d, bc[0], bc[1], a])
        self.assertEqual(traverse(v, [d], 2), [d, bc[0]])
        self.assertEqual(values(v), [a, bc[1], bc[0], d])
        self.assertEqual(Log(LOG, v).values(), values(v))

    def test_follows_next_not_refs(self):
        a = entry("a")
        b = entry("b", refs=[a.cid], time=2)
        self.assertEqual(traverse(view(a, b), [b]), [b])

    def test_missing_parents_skipped(self):
        a = entry("a")
        b = entry("b", [a])
        c = entry("c", [b])
        self.assertEqual(traverse(view(a, c), [c]), [c])

    def test_interleaves_branches_by_order(self):
        # Two branches of different lengths: the stack always pops the newest entry.
        root = entry("root")
        x1 = entry("x1", [root])
        x2 = entry("x2", [x1])
        x3 = entry("x3", [x2])
        y1 = entry("y1", [root])
        top = entry("top", [x3, y1])
        got = traverse(view(root, x1, x2, x3, y1, top), [top])
        self.assertEqual(got[:2], [top, x3])
        self.assertEqual(got[-1], root)
        self.assertEqual(
            [e.clock_time for e in got], sorted([e.clock_time for e in got], reverse=True)
        )

    def test_root_reachable_from_other_root_emitted_once(self):
        a = entry("a")
        b = entry("b", [a])
        self.assertEqual(traverse(view(a, b), [a, b]), [b, a])
        self.assertEqual(traverse(view(a, b), [a, b], 2), [b, a])


class RefsTests(TestCase):
    def test_select_refs_positions(self):
        _, written = chain(10)
        walked = list(reversed(written))  # newest first
        head = walked[0]
        refs = select_refs(walked, [head.cid])
        # positions 0,1,3,7 and the last (9); position 0 is next
        self.assertEqual(refs, [walked[1].cid, walked[3].cid, walked[7].cid, walked[9].cid])

    def test_select_refs_drops_repeats(self):
        _, written = chain(8)
        walked = list(reversed(written))
        refs = select_refs(walked, [walked[0].cid])
        self.assertEqual(refs, [walked[1].cid, walked[3].cid, walked[7].cid])
        self.assertEqual(select_refs([], []), [])

    def test_long_chain_refs(self):
        log, written = chain(70)
        # entry 69 (time 70) was appended on a 69-entry chain: traversal of 64 from entry 68.
        last = written[69]
        expected = [written[68 - k].cid for k in (1, 3, 7, 15, 31, 63)]
        self.assertEqual(last.refs, expected)
        self.assertEqual(last.next, [written[68].cid])
        self.assertEqual(last.clock_time, 70)
        for e in written:
            self.assertLessEqual(len(e.refs), 7)
        self.assertEqual(POINTER_COUNT, 64)
        self.assertEqual(log.heads, [last])

    def test_small_chain_refs_include_last(self):
        _, written = chain(5)
        # entry 4 on a 4-chain: traversal [3,2,1,0]; positions 0,1,3 + last 3 -> refs 2,0
        self.assertEqual(written[4].refs, [written[2].cid, written[0].cid])
        self.assertEqual(written[0].refs, [])
        self.assertEqual(written[1].refs, [])

    def test_append_plan_with_concurrent_heads(self):
        a = entry("a")
        b = entry("b", [a])
        c = entry("c", [a])
        next_cids, refs, time = append_plan(view(a, b, c))
        self.assertEqual(next_cids, [e.cid for e in sorted_entries([b, c])])
        self.assertEqual(time, 3)
        self.assertEqual(refs, [a.cid])
