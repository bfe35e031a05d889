# Portable tests for node.proto.fragment (CPython and MicroPython).

from harness import TestCase

from node.errors import LocalProtocolError, RemoteProtocolError
from node.proto.fragment import FIRST, LAST, Fragmenter, Reassembler

FRAMES = [b"", b"a", b"hello world", bytes(range(256)), b"\x80" * 41]


def roundtrip(frames, fragment_size, max_frame_size=1000):
    fragmenter = Fragmenter()
    reassembler = Reassembler(max_frame_size)
    out = []
    for frame in frames:
        for fragment in fragmenter.fragment(frame, fragment_size):
            if len(fragment) > fragment_size:
                raise AssertionError("fragment of %d > %d" % (len(fragment), fragment_size))
            done = reassembler.receive_fragment(fragment)
            if done is not None:
                out.append(done)
    if reassembler.in_frame:
        raise AssertionError("reassembler left mid-frame")
    return out


def fragments_of(frames, fragment_size):
    fragmenter = Fragmenter()
    out = []
    for frame in frames:
        out.extend(fragmenter.fragment(frame, fragment_size))
    return out


class FragmentTests(TestCase):
    def test_layout(self):
        self.assertEqual(Fragmenter().fragment(b"abcde", 3), [b"\x80ab", b"\x01cd", b"\x42e"])
        self.assertEqual(Fragmenter().fragment(b"", 20), [b"\xc0"])
        self.assertEqual(Fragmenter().fragment(b"ab", 3), [b"\xc0ab"])

    def test_counter_runs_across_frames_and_wraps(self):
        fragments = fragments_of([b"x"] * 70, 20)
        expected = list(range(64))
        expected.extend([0, 1])
        self.assertEqual([f[0] & 0x3F for f in fragments][:66], expected)
        self.assertEqual(fragments[0][0] & (FIRST | LAST), FIRST | LAST)

    def test_roundtrip_every_size(self):
        for size in range(2, 300):
            self.assertEqual(roundtrip(FRAMES, size), FRAMES)

    def test_roundtrip_many_frames_wrap(self):
        frames = [bytes([i]) * (i % 7) for i in range(200)]
        self.assertEqual(roundtrip(frames, 4), frames)

    def test_frame_at_limit(self):
        self.assertEqual(roundtrip([b"q" * 100], 9, max_frame_size=100), [b"q" * 100])

    def test_bad_fragment_size(self):
        self.assertRaises(LocalProtocolError, Fragmenter().fragment, b"abc", 1)


class HostileFragmentTests(TestCase):
    def expect(self, fragments, reason, text, max_frame_size=1000):
        reassembler = Reassembler(max_frame_size)
        with self.assertRaisesRegex(RemoteProtocolError, text) as ctx:
            for fragment in fragments:
                reassembler.receive_fragment(fragment)
        self.assertEqual(ctx.exception.reason, reason)
        self.assertRaises(LocalProtocolError, reassembler.receive_fragment, b"\xc0")

    def test_missing_fragment(self):
        fragments = fragments_of([b"abcdefgh"], 3)
        self.expect(fragments[:1] + fragments[2:], "malformed", "expected 1")

    def test_missing_whole_frame(self):
        fragments = fragments_of([b"a", b"b", b"c"], 20)
        self.expect([fragments[0], fragments[2]], "malformed", "lost or out of order")

    def test_out_of_order(self):
        fragments = fragments_of([b"abcdefgh"], 3)
        self.expect([fragments[0], fragments[2], fragments[1]], "malformed", "counter 2")

    def test_duplicate(self):
        fragments = fragments_of([b"abcdefgh"], 3)
        self.expect([fragments[0], fragments[0]], "malformed", "counter 0, expected 1")

    def test_continuation_without_first(self):
        self.expect([b"\x00abc"], "malformed", "no frame started")
        self.expect([b"\x40abc"], "malformed", "no frame started")

    def test_first_inside_frame(self):
        self.expect([b"\x80ab", b"\x81cd"], "malformed", "before the previous one ended")

    def test_empty_fragment(self):
        self.expect([b""], "malformed", "empty fragment")

    def test_too_large(self):
        fragments = fragments_of([b"z" * 11], 4)
        self.expect(fragments, "too-large", "maximum is 10", max_frame_size=10)

    def test_too_large_single(self):
        self.expect([b"\xc0" + b"z" * 11], "too-large", "grows to 11", max_frame_size=10)

    def test_garbage(self):
        # Every single byte as a first fragment: either a frame, None, or RemoteProtocolError.
        for header in range(256):
            reassembler = Reassembler(1000)
            try:
                result = reassembler.receive_fragment(bytes([header]) + b"junk")
            except RemoteProtocolError:
                continue
            if header & LAST:
                self.assertEqual(result, b"junk")
            else:
                self.assertIsNone(result)
