# Issue 16 finding 3: rejecting a hostile block costs memory in proportion to its size, measured
# with tracemalloc (allocated bytes, deterministic; no timing).

import tracemalloc

import pytest

from node.errors import RemoteProtocolError
from node.sync import dagcbor
from node.sync.entry import decode_entry

N = 262_000


def _text(s: str) -> bytes:
    raw = s.encode()
    assert len(raw) < 24
    return bytes((0x60 | len(raw),)) + raw


def _array_head(count: int) -> bytes:
    return b"\x9a" + count.to_bytes(4, "big")


HOSTILE = {
    # the finding itself: an array of 262,000 empty maps, and of empty arrays
    "array of empty maps": bytes.fromhex("9a0003ff70") + b"\xa0" * N,
    "array of empty arrays": bytes.fromhex("9a0003ff70") + b"\x80" * N,
    # a map of many pairs (keys "", values empty maps)
    "map of many pairs": b"\xba" + (N // 2).to_bytes(4, "big") + b"\x60\xa0" * (N // 2),
    # a map that starts like an entry but whose `id` is an array of 262,000 empty maps
    "entry-like map, huge field": b"\xaa\x61v\x02\x62id" + _array_head(N) + b"\xa0" * N,
    # nesting as deep as DAG-CBOR allows, then a huge array
    "deep then wide": b"\x81" * 60 + _array_head(N) + b"\xa0" * N,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_rejecting_a_hostile_block_costs_at_most_twice_its_size(name: str) -> None:
    block = HOSTILE[name]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        with pytest.raises(RemoteProtocolError) as caught:
            decode_entry(block)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert caught.value.reason == "malformed"
    # the block is copied once (bytes(block)); everything else is a small constant
    assert peak <= 2 * len(block) + 64 * 1024, (name, peak, len(block))


def test_the_item_budget_is_refused_from_the_container_head() -> None:
    block = bytes.fromhex("9a0003ff70") + b"\xa0" * N
    with pytest.raises(RemoteProtocolError, match="more items than the 10 allowed at offset 0"):
        dagcbor.decode(block, max_items=10)
    # without a budget the same block decodes (it is valid DAG-CBOR)
    assert len(dagcbor.decode(block)) == N
    # a budget exactly as large as the block announces is enough
    assert dagcbor.decode(b"\x82\xa1\x61a\x80\xa0", max_items=3) == [{"a": []}, {}]
    with pytest.raises(RemoteProtocolError, match="more items than the 2 allowed at offset 1"):
        dagcbor.decode(b"\x82\xa1\x61a\x80\xa0", max_items=2)
