# Portable tests for node.proto.framing (CPython and MicroPython).

from harness import TestCase

from node.errors import LocalProtocolError, RemoteProtocolError
from node.proto.framing import HEADER_SIZE, FrameDecoder, encode_frame

PAYLOADS = [b"", b"a", b"hello", bytes(range(256)), b"\x00" * 300, b"\xff\xfe"]


def stream_of(payloads):
    return b"".join(encode_frame(p) for p in payloads)


def decode_in_chunks(data, cuts, max_frame_size=1000):
    # Feed `data` cut at the offsets in `cuts`, draining after each chunk.
    decoder = FrameDecoder(max_frame_size)
    frames = []
    start = 0
    cuts = list(cuts)
    cuts.append(len(data))
    for cut in cuts:
        decoder.receive_data(data[start:cut])
        start = cut
        while True:
            frame = decoder.next_frame()
            if frame is None:
                break
            frames.append(frame)
    decoder.receive_eof()
    if decoder.next_frame() is not None:
        raise AssertionError("frame after eof")
    return frames


class EncodeTests(TestCase):
    def test_layout(self):
        self.assertEqual(encode_frame(b"abc"), b"\x00\x00\x00\x03abc")
        self.assertEqual(encode_frame(b""), b"\x00\x00\x00\x00")
        self.assertEqual(encode_frame(b"x" * 0x10203)[:HEADER_SIZE], b"\x00\x01\x02\x03")

    def test_encode_refuses_oversize(self):
        self.assertRaises(LocalProtocolError, encode_frame, b"12345", 4)
        self.assertEqual(encode_frame(b"1234", 4), b"\x00\x00\x00\x041234")


class DecodeTests(TestCase):
    def test_one_chunk_many_frames(self):
        self.assertEqual(decode_in_chunks(stream_of(PAYLOADS), []), PAYLOADS)

    def test_split_at_every_boundary(self):
        data = stream_of(PAYLOADS[:4])
        for cut in range(len(data) + 1):
            self.assertEqual(decode_in_chunks(data, [cut]), PAYLOADS[:4])

    def test_split_at_every_pair_of_boundaries(self):
        payloads = [b"ab", b"", b"cde"]
        data = stream_of(payloads)
        for a in range(len(data) + 1):
            for b in range(a, len(data) + 1):
                self.assertEqual(decode_in_chunks(data, [a, b]), payloads)

    def test_byte_by_byte(self):
        data = stream_of(PAYLOADS)
        self.assertEqual(decode_in_chunks(data, range(1, len(data))), PAYLOADS)

    def test_frame_at_exact_limit(self):
        self.assertEqual(decode_in_chunks(encode_frame(b"z" * 1000), [3, 500]), [b"z" * 1000])

    def test_no_frame_until_complete(self):
        decoder = FrameDecoder(100)
        decoder.receive_data(b"\x00\x00\x00\x05abcd")
        self.assertIsNone(decoder.next_frame())
        self.assertEqual(decoder.buffered, 8)
        decoder.receive_data(b"e")
        self.assertEqual(decoder.next_frame(), b"abcde")
        self.assertIsNone(decoder.next_frame())
        self.assertEqual(decoder.buffered, 0)


class HostileTests(TestCase):
    def test_oversize_header_fails_before_body(self):
        decoder = FrameDecoder(1000)
        with self.assertRaisesRegex(RemoteProtocolError, "announces 1001 bytes") as ctx:
            decoder.receive_data(b"\x00\x00\x03\xe9")
        self.assertEqual(ctx.exception.reason, "too-large")

    def test_huge_header_split(self):
        decoder = FrameDecoder(1 << 20)
        decoder.receive_data(b"\xff\xff")
        with self.assertRaises(RemoteProtocolError) as ctx:
            decoder.receive_data(b"\xff\xff")
        self.assertEqual(ctx.exception.reason, "too-large")

    def test_oversize_later_in_the_chunk(self):
        decoder = FrameDecoder(10)
        data = encode_frame(b"ok") + encode_frame(b"fine") + b"\x00\x00\x00\x0b"
        with self.assertRaisesRegex(RemoteProtocolError, "stream offset 14") as ctx:
            decoder.receive_data(data)
        self.assertEqual(ctx.exception.reason, "too-large")

    def test_offset_counts_the_whole_stream(self):
        decoder = FrameDecoder(10)
        decoder.receive_data(encode_frame(b"0123456789"))
        self.assertEqual(decoder.next_frame(), b"0123456789")
        with self.assertRaisesRegex(RemoteProtocolError, "stream offset 14"):
            decoder.receive_data(b"\x01\x00\x00\x00")

    def test_truncated_body(self):
        decoder = FrameDecoder(100)
        decoder.receive_data(b"\x00\x00\x00\x05abc")
        self.assertIsNone(decoder.next_frame())
        decoder.receive_eof()
        with self.assertRaisesRegex(RemoteProtocolError, "ended inside") as ctx:
            decoder.next_frame()
        self.assertEqual(ctx.exception.reason, "malformed")

    def test_truncated_header(self):
        decoder = FrameDecoder(100)
        decoder.receive_data(encode_frame(b"x") + b"\x00\x00")
        self.assertEqual(decoder.next_frame(), b"x")
        decoder.receive_eof()
        self.assertRaises(RemoteProtocolError, decoder.next_frame)

    def test_clean_eof(self):
        decoder = FrameDecoder(100)
        decoder.receive_data(encode_frame(b"x"))
        decoder.receive_eof()
        self.assertEqual(decoder.next_frame(), b"x")
        self.assertIsNone(decoder.next_frame())

    def test_garbage(self):
        # ASCII text read as a length prefix announces ~1.2 GB.
        decoder = FrameDecoder(65535)
        self.assertRaises(RemoteProtocolError, decoder.receive_data, b"GET / HTTP/1.1\r\n")

    def test_dead_after_error(self):
        decoder = FrameDecoder(4)
        self.assertRaises(RemoteProtocolError, decoder.receive_data, b"\x00\x00\x00\x05")
        self.assertRaises(LocalProtocolError, decoder.receive_data, b"")
        self.assertRaises(LocalProtocolError, decoder.next_frame)


class MisuseTests(TestCase):
    def test_must_drain_before_feeding(self):
        decoder = FrameDecoder(100)
        decoder.receive_data(encode_frame(b"a") + encode_frame(b"b"))
        self.assertEqual(decoder.next_frame(), b"a")
        self.assertRaises(LocalProtocolError, decoder.receive_data, b"\x00")
        self.assertEqual(decoder.next_frame(), b"b")
        decoder.receive_data(b"\x00")

    def test_no_data_after_eof(self):
        decoder = FrameDecoder(100)
        decoder.receive_eof()
        self.assertRaises(LocalProtocolError, decoder.receive_data, b"\x00")

    def test_bad_bound(self):
        self.assertRaises(LocalProtocolError, FrameDecoder, -1)
        self.assertRaises(LocalProtocolError, FrameDecoder, 1 << 32)
