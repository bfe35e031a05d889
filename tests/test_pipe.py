"""The in-memory pipe link (node/pipe.py): order, EOF, cut, backpressure, fragments, depth."""

from __future__ import annotations

import asyncio

import pytest

from node.errors import LinkError
from node.link import Link
from node.pipe import Pipe


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_ends_are_links_with_label_kind_and_hint() -> None:
    pipe = Pipe("t", frame_hint=185, frame_hint_b=512)
    ends: list[Link] = [pipe.a, pipe.b]
    assert [e.kind for e in ends] == ["pipe", "pipe"]
    assert [e.label for e in ends] == ["pipe:t/a", "pipe:t/b"]
    assert [e.frame_hint for e in ends] == [185, 512]


@pytest.mark.parametrize("hint", [0, 22, 65536])
def test_a_hint_out_of_range_is_refused(hint: int) -> None:
    with pytest.raises(LinkError, match="frame hint"):
        Pipe(frame_hint=hint)


@pytest.mark.parametrize(
    ("latency", "rate", "fragment_size"),
    [(0.0, None, None), (0.001, None, None), (0.0, 1e6, None), (0.001, 1e6, 20), (0.0, None, 514)],
)
def test_frames_arrive_whole_and_in_order_then_eof(
    latency: float, rate: float | None, fragment_size: int | None
) -> None:
    frames = [bytes([i]) * (i * 37 % 300) for i in range(40)]

    async def scenario() -> list[bytes | None]:
        pipe = Pipe(latency=latency, rate=rate, fragment_size=fragment_size)
        await pipe.a.send(frames[:25])
        await pipe.a.send(frames[25:])
        await pipe.a.close()
        got: list[bytes | None] = []
        while (frame := await pipe.b.recv()) is not None:
            got.append(frame)
        got.append(await pipe.b.recv())  # EOF stays EOF
        return got

    assert run(scenario()) == [*frames, None]


def test_fragmenting_counts_fragments_and_headers() -> None:
    async def scenario() -> dict[str, int]:
        pipe = Pipe(fragment_size=20)
        await pipe.a.send([b"x" * 100, b""])
        assert await pipe.b.recv() == b"x" * 100
        assert await pipe.b.recv() == b""
        return pipe.stats()

    stats = run(scenario())
    assert isinstance(stats, dict)
    # 100 bytes in fragments of 19 bytes of frame each: 6 fragments, plus 1 for the empty frame.
    assert stats["frames"] == 2 and stats["frame_bytes"] == 100
    assert stats["units"] == 7 and stats["unit_bytes"] == 100 + 7


def test_a_cut_fails_both_ends_and_drops_what_was_on_its_way() -> None:
    async def scenario() -> None:
        pipe = Pipe(latency=5.0)  # nothing arrives before the cut
        await pipe.a.send([b"lost"])
        reader = asyncio.create_task(pipe.b.recv())
        await asyncio.sleep(0)  # the reader is waiting now
        pipe.cut("radio out of range")
        with pytest.raises(LinkError, match="radio out of range"):
            await reader
        with pytest.raises(LinkError, match="link lost"):
            await pipe.a.send([b"more"])
        with pytest.raises(LinkError):
            await pipe.a.recv()

    run(scenario())


def test_cut_after_bytes() -> None:
    async def scenario() -> int:
        pipe = Pipe(cut_after=250)
        await pipe.a.send([b"a" * 100, b"b" * 100])
        assert await pipe.b.recv() == b"a" * 100
        with pytest.raises(LinkError, match="cut after 250 bytes"):
            await pipe.a.send([b"c" * 100])
        with pytest.raises(LinkError):
            await pipe.b.recv()  # the second frame was dropped with the cut
        return pipe.sent_bytes

    assert run(scenario()) == 300


def test_send_waits_while_the_reader_leaves_no_room() -> None:
    async def scenario() -> list[str]:
        pipe = Pipe(buffer_bytes=100)
        events: list[str] = []

        async def writer() -> None:
            await pipe.a.send([b"1" * 100, b"2" * 100])
            events.append("sent")

        task = asyncio.create_task(writer())
        for _ in range(5):
            await asyncio.sleep(0)
        events.append("reading")  # the writer is stuck on the second frame
        assert await pipe.b.recv() == b"1" * 100
        assert await pipe.b.recv() == b"2" * 100
        await task
        return events

    assert run(scenario()) == ["reading", "sent"]


def test_a_closed_reader_drops_what_is_sent_to_it() -> None:
    async def scenario() -> None:
        pipe = Pipe(buffer_bytes=10)
        await pipe.b.close()
        await pipe.a.send([b"z" * 100] * 5)  # never blocks: nobody will read
        with pytest.raises(LinkError, match="closed"):
            await pipe.b.recv()
        await pipe.b.close()  # idempotent

    run(scenario())


def test_a_lost_fragment_drops_only_its_frame() -> None:
    async def scenario() -> None:
        pipe = Pipe(fragment_size=20)
        out = pipe._directions[0]
        assert out.fragmenter is not None and out.reassembler is not None
        out.fragmenter.fragment(b"skipped", 20)  # the counter moves on: a whole frame "lost"
        await pipe.a.send([b"hello", b"x" * 50])
        assert await pipe.b.recv() == b"hello"  # delivered; the gap before it is counted
        assert out.reassembler.gaps == 1 and "lost before fragment 1" in out.reassembler.last_drop
        assert await pipe.b.recv() == b"x" * 50
        # A fragment lost inside a frame costs that frame only.
        fragments = out.fragmenter.fragment(b"y" * 50, 20)
        await pipe.a.send([b"after"])
        for fragment in fragments[1:]:
            assert out.reassembler.receive_fragment(fragment, 0) is None
        assert await pipe.b.recv() == b"after"
        assert out.reassembler.frames == 3

    run(scenario())


def test_depth_counts_one_way_trips_on_the_critical_path() -> None:
    async def scenario() -> int:
        pipe = Pipe()
        await pipe.a.send([b"q1", b"q2"])  # depth 1 (two frames, one flight)
        await pipe.b.recv()
        await pipe.b.recv()
        await pipe.b.send([b"r"])  # depth 2
        await pipe.a.recv()
        await pipe.a.send([b"q3"])  # depth 3
        await pipe.b.send([b"unprompted"])  # b read nothing new: still depth 2
        return pipe.half_rounds

    assert run(scenario()) == 3
