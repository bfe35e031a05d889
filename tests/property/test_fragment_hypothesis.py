"""Hypothesis properties of node.proto.fragment (BLE fragments).

- Fragmentation then reassembly gives back every frame at every ATT MTU (23..517), across
  counter wraps, with nothing reported.
- Any pattern of lost, repeated and moved fragments fails only the frames it touches: every
  untouched frame is delivered, in order; whatever is delivered is a frame that was sent whole;
  something is reported; the reassembler never holds more than one frame.
- Any fragments from a hostile peer give frames, None or RemoteProtocolError, nothing else, and
  never make the reassembler hold more than `max_frame_size` bytes.

A frame is *touched* when an operation lost, repeated or moved one of its fragments, or when its
fragments do not arrive as one contiguous run (another fragment was moved into it).
The perturbed window holds fewer than 64 fragments (the counter's period), after a clean prefix of
any length, so that fragments of different frames never share a counter: beyond that, loss is
detected only modulo 64 (node/proto/fragment.py, "Known blind spot").
"""

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import LocalProtocolError, RemoteProtocolError
from node.proto.fragment import (
    MAX_FRAGMENT_SIZE,
    MAX_MTU,
    MIN_MTU,
    Fragmenter,
    Reassembler,
    fragment_size_for_mtu,
)

NO_DEADLINE = settings(deadline=None)
SENTINEL = b"sentinel: always untouched"


@NO_DEADLINE
@given(
    st.lists(st.binary(max_size=3000), max_size=12),
    st.integers(min_value=MIN_MTU, max_value=MAX_MTU),
    st.integers(min_value=0, max_value=70),
)
def test_roundtrip_at_every_mtu(frames: list[bytes], mtu: int, warmup: int) -> None:
    fragmenter = Fragmenter()
    reassembler = Reassembler(3000)
    size = fragment_size_for_mtu(mtu)
    out = []
    for frame in [b""] * warmup + frames:
        for fragment in fragmenter.fragment(frame, size):
            assert len(fragment) <= size
            done = reassembler.receive_fragment(fragment, 0)
            if done is not None:
                out.append(done)
    assert out == [b""] * warmup + frames
    assert not reassembler.in_frame
    assert (reassembler.frames_dropped, reassembler.gaps, reassembler.duplicates) == (0, 0, 0)


Tag = tuple[int, int]  # (frame index, fragment index)


@st.composite
def perturbations(draw: st.DrawFn) -> tuple[int, list[bytes], int, list[tuple[str, int, int]]]:
    warmup = draw(st.integers(min_value=0, max_value=130))
    frames = draw(st.lists(st.binary(max_size=90), min_size=1, max_size=12))
    mtu = draw(st.integers(min_value=MIN_MTU, max_value=45))
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["drop", "dup", "move"]),
                st.integers(min_value=0, max_value=10_000),
                st.integers(min_value=0, max_value=10_000),
            ),
            max_size=6,
        )
    )
    return warmup, frames, mtu, ops


def apply(tagged: list[tuple[Tag, bytes]], ops: list[tuple[str, int, int]]) -> set[int]:
    """Apply `ops` to `tagged` in place; return the frames whose fragments they moved."""
    moved = set()
    for op, i, j in ops:
        if not tagged:
            break
        i %= len(tagged)
        moved.add(tagged[i][0][0])
        if op == "drop":
            del tagged[i]
        elif op == "dup":
            tagged.insert(i, tagged[i])
        else:
            item = tagged.pop(i)
            tagged.insert(j % (len(tagged) + 1), item)
    return moved


def contiguous(tags: list[Tag], frame: int, count: int) -> bool:
    positions = [p for p, tag in enumerate(tags) if tag[0] == frame]
    if len(positions) != count:
        return False
    return [tags[p] for p in positions] == [(frame, k) for k in range(count)] and (
        positions[-1] - positions[0] == count - 1
    )


def is_subsequence(needles: list[bytes], haystack: list[bytes]) -> bool:
    it = iter(haystack)
    return all(any(x == y for y in it) for x in needles)


@NO_DEADLINE
@given(perturbations())
def test_loss_repetition_and_reordering_fail_only_touched_frames(
    case: tuple[int, list[bytes], int, list[tuple[str, int, int]]],
) -> None:
    warmup, frames, mtu, ops = case
    size = fragment_size_for_mtu(mtu)
    fragmenter = Fragmenter()
    reassembler = Reassembler(1000)
    for _ in range(warmup):  # a clean prefix: the window starts at any counter
        assert reassembler.receive_fragment(fragmenter.fragment(b"", size)[0], 0) == b""
    cut = [fragmenter.fragment(frame, size) for frame in frames]
    while sum(map(len, cut)) > 62:  # the window, with the sentinel, stays under 64 fragments
        cut.pop()
    frames = frames[: len(cut)]
    tagged = [((k, i), fragment) for k, parts in enumerate(cut) for i, fragment in enumerate(parts)]
    original = list(tagged)
    moved = apply(tagged, ops)
    sentinel = len(frames)
    tagged.extend(((sentinel, i), f) for i, f in enumerate(fragmenter.fragment(SENTINEL, size)))
    frames.append(SENTINEL)
    cut.append([f for tag, f in tagged if tag[0] == sentinel])

    delivered = []
    for _, fragment in tagged:
        done = reassembler.receive_fragment(fragment, 0)
        assert reassembler.buffered <= max(map(len, frames))
        if done is not None:
            delivered.append(done)

    tags = [tag for tag, _ in tagged]
    present = set(tags)
    intact = [k for k in range(len(frames)) if k not in moved and contiguous(tags, k, len(cut[k]))]
    # Every untouched frame is delivered, in order (touched ones may be delivered too).
    assert is_subsequence([frames[k] for k in intact], delivered)
    # Whatever is delivered is a frame that was sent and whose fragments all arrived.
    for frame in delivered:
        assert any(
            frames[k] == frame and all((k, i) in present for i in range(len(cut[k])))
            for k in range(len(frames))
        )
    assert delivered[-1] == SENTINEL and not reassembler.in_frame
    if tagged[: -len(cut[-1])] != original:
        assert reassembler.frames_dropped + reassembler.gaps + reassembler.duplicates > 0
        assert reassembler.last_drop
    else:
        assert delivered == frames


@NO_DEADLINE
@given(
    st.lists(st.binary(max_size=MAX_FRAGMENT_SIZE + 2), max_size=60),
    st.integers(min_value=0, max_value=600),
)
def test_hostile_fragments_only_remote_errors_and_bounded(
    fragments: list[bytes], max_frame_size: int
) -> None:
    reassembler = Reassembler(max_frame_size)
    now = 0.0
    for fragment in fragments:
        now += 1.0
        try:
            frame = reassembler.receive_fragment(fragment, now)
        except RemoteProtocolError as exc:
            assert exc.reason in ("malformed", "too-large")
            assert reassembler.buffered == 0
            try:
                reassembler.receive_fragment(b"\xc0", now)
            except LocalProtocolError:
                return
            raise AssertionError("a dead reassembler took a fragment") from None
        assert frame is None or len(frame) <= max_frame_size
        assert reassembler.buffered <= max_frame_size


@NO_DEADLINE
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=255), st.integers(min_value=0, max_value=40)),
        min_size=1,
        max_size=3000,
    )
)
def test_memory_stays_bounded_whatever_the_stream(headers: list[tuple[int, int]]) -> None:
    """Any number of fragments (any header, 0..40 frame bytes) never holds more than one frame."""
    max_frame_size = 1024
    reassembler = Reassembler(max_frame_size)
    tracemalloc.start()
    try:
        for header, size in headers:
            try:
                reassembler.receive_fragment(bytes((header,)) + bytes(size), 0)
            except RemoteProtocolError:
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One open frame (bytearray growth slack included), one previous fragment, the frame returned.
    assert peak < 4 * max_frame_size + 4096, peak
