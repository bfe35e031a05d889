# Portable tests for node.proto.fragment (CPython and MicroPython).

from harness import TestCase

from node.errors import LocalProtocolError, RemoteProtocolError
from node.proto import fragment as fr
from node.proto.fragment import (
    FIRST,
    LAST,
    MAX_FRAGMENT_SIZE,
    MIN_FRAGMENT_SIZE,
    Fragmenter,
    Reassembler,
    fragment_size_for_mtu,
    max_fragments_for,
)

FRAMES = [b"", b"a", b"hello world", bytes(range(256)), b"\x80" * 41, b"\xc0" * 600]


def roundtrip(frames, fragment_size, max_frame_size=1000):
    fragmenter = Fragmenter()
    reassembler = Reassembler(max_frame_size)
    out = []
    for frame in frames:
        for fragment in fragmenter.fragment(frame, fragment_size):
            if len(fragment) > fragment_size:
                raise AssertionError("fragment of %d > %d" % (len(fragment), fragment_size))
            done = reassembler.receive_fragment(fragment, 0)
            if done is not None:
                out.append(done)
    if reassembler.in_frame:
        raise AssertionError("reassembler left mid-frame")
    if reassembler.frames_dropped or reassembler.gaps or reassembler.duplicates:
        raise AssertionError("a clean stream reported a drop: %s" % reassembler.last_drop)
    return out


def fragments_of(frames, fragment_size=20):
    fragmenter = Fragmenter()
    out = []
    for frame in frames:
        out.extend(fragmenter.fragment(frame, fragment_size))
    return out


def feed(reassembler, fragments, now=0):
    out = []
    for fragment in fragments:
        done = reassembler.receive_fragment(fragment, now)
        if done is not None:
            out.append(done)
    return out


A = b"A" * 50  # three fragments at size 20: 19 + 19 + 12 bytes
B = b"B" * 50
C = b"c"  # one fragment


class FragmentTests(TestCase):
    def test_layout(self):
        frame = bytes(range(45))
        self.assertEqual(
            Fragmenter().fragment(frame, 20),
            [b"\x80" + frame[:19], b"\x01" + frame[19:38], b"\x42" + frame[38:]],
        )
        self.assertEqual(Fragmenter().fragment(b"", 20), [b"\xc0"])
        self.assertEqual(Fragmenter().fragment(b"ab", 20), [b"\xc0ab"])
        self.assertEqual(Fragmenter().fragment(b"x" * 19, 20), [b"\xc0" + b"x" * 19])
        self.assertEqual(len(Fragmenter().fragment(b"x" * 20, 20)), 2)

    def test_counter_runs_across_frames_and_wraps(self):
        fragments = fragments_of([b"x"] * 70)
        expected = list(range(64))
        expected.extend([0, 1])
        self.assertEqual([f[0] & 0x3F for f in fragments][:66], expected)
        self.assertEqual(fragments[0][0] & (FIRST | LAST), FIRST | LAST)

    def test_roundtrip_every_size(self):
        for size in range(MIN_FRAGMENT_SIZE, MAX_FRAGMENT_SIZE + 1):
            self.assertEqual(roundtrip(FRAMES, size), FRAMES)

    def test_roundtrip_many_frames_wrap(self):
        frames = [bytes([i & 0xFF]) * (i % 50) for i in range(300)]
        self.assertEqual(roundtrip(frames, 20), frames)

    def test_frame_at_limit(self):
        self.assertEqual(roundtrip([b"q" * 100], 20, max_frame_size=100), [b"q" * 100])

    def test_bad_fragment_size(self):
        for size in (0, 1, 2, MIN_FRAGMENT_SIZE - 1, MAX_FRAGMENT_SIZE + 1, "20", None, True):
            self.assertRaises(LocalProtocolError, Fragmenter().fragment, b"abc", size)

    def test_mtu(self):
        self.assertEqual(fragment_size_for_mtu(23), 20)
        self.assertEqual(fragment_size_for_mtu(185), 182)
        self.assertEqual(fragment_size_for_mtu(517), 514)
        for mtu in (22, 518, 0, "185", None, True):
            self.assertRaises(LocalProtocolError, fragment_size_for_mtu, mtu)

    def test_header_overhead_at_least_97_percent_from_mtu_185(self):
        # Every fragment of a long frame, counted byte by byte at each MTU >= 185.
        frame = bytes(70000)
        for mtu in range(185, 518):
            size = fragment_size_for_mtu(mtu)
            fragments = Fragmenter().fragment(frame, size)
            for fragment in fragments[:-1]:
                self.assertEqual(len(fragment), size)
                self.assertGreaterEqual((len(fragment) - 1) * 100, 97 * size)
            self.assertEqual(sum(len(f) - 1 for f in fragments), len(frame))
        # The figure the docs quote: 181 of 182 bytes at MTU 185.
        self.assertEqual(len(Fragmenter().fragment(bytes(181), 182)), 1)

    def test_default_max_fragments(self):
        self.assertEqual(max_fragments_for(0), 1)
        self.assertEqual(max_fragments_for(18), 1)
        self.assertEqual(max_fragments_for(19), 2)
        self.assertEqual(max_fragments_for(65535), 3641)
        # A largest frame at the smallest fragment size (MTU 23 behind a link tag) fits exactly.
        fragments = fragments_of([b"m" * 4096], MIN_FRAGMENT_SIZE)
        self.assertEqual(len(fragments), max_fragments_for(4096))
        self.assertEqual(feed(Reassembler(4096), fragments), [b"m" * 4096])

    def test_bad_reassembler_arguments(self):
        self.assertRaises(LocalProtocolError, Reassembler, -1)
        self.assertRaises(LocalProtocolError, Reassembler, "10")
        self.assertRaises(LocalProtocolError, Reassembler, 10, 0)
        self.assertRaises(LocalProtocolError, Reassembler, 10, None, 0)
        self.assertRaises(LocalProtocolError, Reassembler, 10, None, "1")


class HostileFragmentTests(TestCase):
    """Rules no loss can explain: the link ends (RemoteProtocolError) and the reassembler dies."""

    def expect(self, fragments, reason, text, max_frame_size=1000, max_fragments=None):
        reassembler = Reassembler(max_frame_size, max_fragments)
        with self.assertRaisesRegex(RemoteProtocolError, text) as ctx:
            for fragment in fragments:
                reassembler.receive_fragment(fragment, 0)
                self.assertLessEqual(reassembler.buffered, max_frame_size)
        self.assertEqual(ctx.exception.reason, reason)
        self.assertEqual(reassembler.buffered, 0)
        self.assertRaises(LocalProtocolError, reassembler.receive_fragment, b"\xc0", 0)
        self.assertRaises(LocalProtocolError, reassembler.expire, 0)

    def test_empty_fragment(self):
        self.expect([b""], "malformed", "empty fragment")

    def test_fragment_longer_than_any_att_payload(self):
        self.expect([b"\xc0" + bytes(MAX_FRAGMENT_SIZE)], "malformed", "longer than any ATT")

    def test_header_only_continuations(self):
        # Finding 4 (issue 16): "80", then "01", "02", ... used to be held forever.
        self.expect([b"\x80", b"\x01", b"\x02"], "malformed", "carries no frame bytes")
        self.expect([b"\x80a", b"\x01"], "malformed", "0x01 carries no frame bytes")
        self.expect([b"\x80a", b"\x41"], "malformed", "0x41 carries no frame bytes")
        self.expect([b"\x00"], "malformed", "carries no frame bytes")

    def test_one_byte_continuations_stop_at_max_fragments(self):
        # The cheapest way left to make one frame long: one frame byte per fragment.
        reassembler = Reassembler(4096)
        self.assertEqual(reassembler.max_fragments, 228)
        reassembler.receive_fragment(b"\x80x", 0)
        with self.assertRaisesRegex(RemoteProtocolError, "more than 228 fragments"):
            for i in range(1, 1000000):
                reassembler.receive_fragment(bytes((i & 0x3F,)) + b"x", 0)
                self.assertLessEqual(reassembler.buffered, 228)
        self.assertEqual(i, 228)

    def test_too_many_fragments(self):
        fragments = fragments_of([b"z" * 77])  # 5 fragments
        self.expect(fragments, "malformed", "more than 4 fragments", max_fragments=4)
        self.assertEqual(feed(Reassembler(1000, 5), fragments), [b"z" * 77])

    def test_too_large(self):
        self.expect(fragments_of([b"z" * 41]), "too-large", "maximum is 40", max_frame_size=40)

    def test_too_large_single(self):
        self.expect([b"\xc0" + b"z" * 11], "too-large", "grows to 11", max_frame_size=10)

    def test_garbage(self):
        # Every header byte as the first fragment: a frame, None, or a drop; never an error.
        for header in range(256):
            reassembler = Reassembler(1000)
            result = reassembler.receive_fragment(bytes([header]) + b"junk", 0)
            if header & FIRST and header & LAST:
                self.assertEqual(result, b"junk")
            else:
                self.assertIsNone(result)
            if header & FIRST:
                self.assertEqual(reassembler.gaps, 1 if header & 0x3F else 0)
            else:
                self.assertEqual(reassembler.gaps, 1)


class LossTests(TestCase):
    """A lost, repeated or reordered fragment fails at most the frame it touches."""

    def run_stream(self, fragments, now=0):
        reassembler = Reassembler(1000)
        return reassembler, feed(reassembler, fragments, now)

    def test_missing_middle_fragment(self):
        f = fragments_of([A, B, C])
        r, out = self.run_stream(f[:1] + f[2:])
        self.assertEqual(out, [B, C])
        self.assertEqual((r.frames_dropped, r.gaps, r.duplicates), (1, 0, 0))
        self.assertIn("counter 2, expected 1", r.last_drop)

    def test_missing_last_fragment(self):
        f = fragments_of([A, B, C])
        r, out = self.run_stream(f[:2] + f[3:])
        self.assertEqual(out, [B, C])
        self.assertEqual((r.frames_dropped, r.gaps), (1, 0))
        self.assertIn("never ended", r.last_drop)

    def test_missing_first_fragment(self):
        f = fragments_of([A, B, C])
        r, out = self.run_stream(f[1:])
        self.assertEqual(out, [B, C])
        self.assertEqual((r.frames_dropped, r.gaps), (0, 1))

    def test_missing_whole_frame(self):
        f = fragments_of([C, C, b"d"])
        r, out = self.run_stream([f[0], f[2]])
        self.assertEqual(out, [C, b"d"])
        self.assertEqual((r.frames_dropped, r.gaps), (0, 1))
        self.assertIn("1 fragment(s) lost before fragment 2", r.last_drop)

    def test_duplicate_fragment_is_discarded(self):
        f = fragments_of([A, B])
        for i in range(len(f)):
            r, out = self.run_stream(f[: i + 1] + f[i:])
            self.assertEqual(out, [A, B])
            self.assertEqual((r.frames_dropped, r.gaps, r.duplicates), (0, 0, 1))
            self.assertIn("repeated", r.last_drop)

    def test_duplicate_one_fragment_frame_delivered_once(self):
        f = fragments_of([C, b"d"])
        r, out = self.run_stream([f[0], f[0], f[0], f[1]])
        self.assertEqual(out, [C, b"d"])
        self.assertEqual(r.duplicates, 2)

    def test_reordered_fragments(self):
        f = fragments_of([A, B])
        r, out = self.run_stream([f[0], f[2], f[1]] + f[3:])  # noqa: RUF005 (MicroPython)
        self.assertEqual(out, [B])
        self.assertEqual(r.frames_dropped, 1)  # A, when its third fragment came second
        self.assertEqual(r.gaps, 2)  # A's second fragment, alone; B's start, after it

    def test_first_inside_frame_restarts(self):
        f = fragments_of([A, C, B])
        r, out = self.run_stream(f[:2] + f[3:])
        self.assertEqual(out, [C, B])
        self.assertEqual(r.frames_dropped, 1)

    def test_resync_after_loss_counts_one_drop(self):
        f = fragments_of([A, B, A, B])
        r, out = self.run_stream(f[:1] + f[4:])  # lose A's tail and B's head
        self.assertEqual(out, [A, B])
        self.assertEqual(r.frames_dropped + r.gaps, 1)
        self.assertEqual(r.frames, 2)

    def test_loss_across_counter_wrap(self):
        frames = [bytes([i]) * 30 for i in range(40)]  # 2 fragments each: wraps at frame 32
        f = fragments_of(frames)
        del f[65]  # the second fragment of frame 32, counter 1 after the wrap
        r, out = self.run_stream(f)
        self.assertEqual(out, frames[:32] + frames[33:])
        self.assertEqual((r.frames_dropped, r.gaps), (1, 0))

    def test_timeout_drops_the_open_frame_on_the_next_fragment(self):
        f = fragments_of([A, B])
        r = Reassembler(1000, frame_timeout=5)
        self.assertIsNone(r.deadline)
        self.assertIsNone(r.receive_fragment(f[0], 100))
        self.assertEqual(r.deadline, 105)
        self.assertIsNone(r.receive_fragment(f[1], 104.9))
        self.assertIsNone(r.receive_fragment(f[2], 105))  # too late: A is dropped, f[2] skipped
        self.assertEqual(r.frames_dropped, 1)
        self.assertIn("incomplete after 2 fragments", r.last_drop)
        self.assertEqual(feed(r, f[3:], 106), [B])

    def test_expire_frees_a_stalled_frame(self):
        f = fragments_of([A])
        r = Reassembler(1000, frame_timeout=5)
        r.receive_fragment(f[0], 0)
        self.assertEqual(r.buffered, 19)
        self.assertFalse(r.expire(4.99))
        self.assertTrue(r.expire(5))
        self.assertEqual((r.buffered, r.state, r.deadline, r.frames_dropped), (0, "SKIP", None, 1))
        self.assertFalse(r.expire(100))


def make_state(state):
    # A reassembler in `state` that has received at least one fragment (so DUP can be built).
    r = Reassembler(1000)
    f = fragments_of([C, A * 2])
    r.receive_fragment(f[0], 0)  # WAIT, after a whole frame
    if state in ("FRAME", "SKIP"):
        r.receive_fragment(f[1], 0)
    if state == "SKIP":
        r.receive_fragment(f[3], 0)  # f[2] lost
    return r, f


def make_input(r, f, kind):
    # A fragment of class `kind` for reassembler `r` (its expected counter, its previous fragment).
    expected = r._expected
    if kind == "DUP":
        return r._previous
    if kind == "WHOLE":
        return bytes((FIRST | LAST | expected,)) + b"w"
    if kind == "START":
        return bytes((FIRST | expected,)) + b"s"
    if kind == "NEXT":
        return bytes((expected,)) + b"n"
    if kind == "END":
        return bytes((LAST | expected,)) + b"e"
    if kind == "ODD":
        return bytes(((expected + 5) & 0x3F,)) + b"o"
    return bytes((LAST | ((expected + 5) & 0x3F),)) + b"o"  # ODD_END


class StateTableTests(TestCase):
    def test_every_state_and_input(self):
        self.assertEqual(len(fr.TRANSITIONS), len(fr.STATES) * len(fr.INPUTS))
        for state in fr.STATES:
            for kind in fr.INPUTS:
                r, f = make_state(state)
                self.assertEqual(r.state, state)
                fragment = make_input(r, f, kind)
                self.assertEqual(r._classify(fragment, fragment[0], fragment[0] & 0x3F), kind)
                before = (r.frames, r.frames_dropped, r.gaps, r.duplicates, r.buffered)
                result = r.receive_fragment(fragment, 0)
                action, next_state = fr.TRANSITIONS[(state, kind)]
                self.assertEqual(r.state, next_state, "%s x %s" % (state, kind))
                after = (r.frames, r.frames_dropped, r.gaps, r.duplicates, r.buffered)
                delivered = 1 if action in ("deliver", "restart-deliver", "complete") else 0
                dropped = 1 if action in ("restart-deliver", "restart-open", "abandon") else 0
                self.assertEqual(after[0] - before[0], delivered, "%s x %s" % (state, kind))
                self.assertEqual(after[1] - before[1], dropped, "%s x %s" % (state, kind))
                self.assertEqual(after[2] - before[2], 1 if action == "orphan" else 0)
                self.assertEqual(after[3] - before[3], 1 if kind == "DUP" else 0)
                self.assertEqual(result is not None, delivered == 1)
                if action == "complete":
                    self.assertEqual(result, A[:19] + b"e")
                if action in ("deliver", "restart-deliver"):
                    self.assertEqual(result, b"w")
                if next_state == "FRAME":
                    self.assertGreater(after[4], 0)
                else:
                    self.assertEqual(after[4], 0)
