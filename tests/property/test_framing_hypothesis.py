"""Hypothesis properties of node.proto.framing (fragments: test_fragment_hypothesis.py).

- Any list of frames, encoded and cut into any chunks, decodes back to the same list.
- Any bytes, fed whole or in any chunks, give frames or raise RemoteProtocolError, nothing else,
  and never make the decoder hold more than one partial frame plus one chunk.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import RemoteProtocolError
from node.proto.framing import HEADER_SIZE, FrameDecoder, encode_frame

MAX = 512
payloads = st.lists(st.binary(max_size=MAX), max_size=20)
# No per-example deadline: on two loaded cores one example (2000 one-byte feeds) can pass 200 ms.
NO_DEADLINE = settings(deadline=None)


def feed(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    frames: list[bytes] = []
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {len(data)})
    start = 0
    for end in bounds:
        decoder.receive_data(data[start:end])
        assert decoder.buffered <= HEADER_SIZE + decoder.max_frame_size + (end - start)
        start = end
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    decoder.receive_eof()
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames


@NO_DEADLINE
@given(payloads, st.lists(st.integers(min_value=0), max_size=30))
def test_random_chunking_roundtrips(frames: list[bytes], cuts: list[int]) -> None:
    data = b"".join(encode_frame(f) for f in frames)
    assert feed(FrameDecoder(MAX), data, cuts) == frames


@NO_DEADLINE
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0), max_size=30))
def test_random_bytes_give_frames_or_protocol_error(data: bytes, cuts: list[int]) -> None:
    try:
        frames = feed(FrameDecoder(MAX), data, cuts)
    except RemoteProtocolError as exc:
        assert exc.reason in ("too-large", "malformed")
        return
    # Whatever decoded re-encodes to exactly the input.
    assert b"".join(encode_frame(f) for f in frames) == data


@NO_DEADLINE
@given(st.binary(max_size=2000))
def test_whole_and_byte_by_byte_agree(data: bytes) -> None:
    def outcome(cuts: list[int]) -> object:
        try:
            return feed(FrameDecoder(MAX), data, cuts)
        except RemoteProtocolError as exc:
            return exc.reason

    assert outcome([]) == outcome(list(range(len(data))))
