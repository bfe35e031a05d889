"""Hypothesis properties of node.sync.keyset and node.sync.reconcile."""

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import RemoteProtocolError
from node.sync.keyset import KeySet
from node.sync.reconcile import Reconciler
from tests.portable.reconcile_frames import section_ends

KeyT = tuple[int, bytes]


def make_key(i: int, time: int) -> KeyT:
    # the digest commits to the time, as a CID commits to the entry's clock
    return (time, hashlib.sha256(b"h%d:%d" % (i, time)).digest())


keys_strategy = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 60)), max_size=300).map(
    lambda pairs: sorted({make_key(i, t) for i, t in pairs})
)


def run(a_sets: "list[KeySet]", b_sets: "list[KeySet]", max_frame: int) -> "list[Reconciler]":
    a = Reconciler(a_sets, True, max_frame=max_frame)
    b = Reconciler(b_sets, False, max_frame=max_frame)
    frames = a.start()
    receiver = b
    turns = 0
    while frames:
        turns += 1
        assert turns < 40
        out: list[bytes] = []
        for frame in frames:
            assert len(frame) <= max_frame
            out.extend(receiver.receive(frame))
        frames = out
        receiver = a if receiver is b else b
    assert a.done and b.done
    return [a, b]


@settings(max_examples=150, deadline=None)
@given(
    common=keys_strategy,
    only_a=keys_strategy,
    only_b=keys_strategy,
    logs=st.integers(1, 3),
    max_frame=st.sampled_from([256, 600, 4096]),
)
def test_any_two_sets_converge(
    common: "list[KeyT]", only_a: "list[KeyT]", only_b: "list[KeyT]", logs: int, max_frame: int
) -> None:
    a_keys = set(common) | set(only_a)
    b_keys = set(common) | set(only_b[: len(only_b) // (logs + 1) + 1])
    a_sets = [KeySet(sorted(a_keys)[i:]) for i in range(logs)]
    b_sets = [KeySet(sorted(b_keys)[: len(b_keys) - i]) for i in range(logs)]
    a, b = run(a_sets, b_sets, max_frame)
    for index in range(logs):
        mine, theirs = set(a_sets[index]), set(b_sets[index])
        assert set(a.results[index].send) == mine - theirs
        assert set(b.results[index].send) == theirs - mine
        assert a.results[index].in_sync == (mine == theirs)
        # never more than the peer pushes, or the caller's pass would never settle
        assert a.results[index].expect <= len(b.results[index].send)
        assert b.results[index].expect <= len(a.results[index].send)


@settings(max_examples=60, deadline=None)
@given(a_keys=keys_strategy, b_keys=keys_strategy, added=keys_strategy, when=st.integers(0, 6))
def test_changes_during_exchange_converge_within_passes(
    a_keys: "list[KeyT]", b_keys: "list[KeyT]", added: "list[KeyT]", when: int
) -> None:
    a_set, b_set = KeySet(a_keys), KeySet(b_keys)
    for attempt in range(5):
        a = Reconciler([a_set], True)
        b = Reconciler([b_set], False)
        frames = a.start()
        receiver = b
        half = 0
        while frames:
            if attempt == 0 and half == when:
                for i, k in enumerate(added):
                    (a_set if i % 2 else b_set).add(k)
            half += 1
            out: list[bytes] = []
            for frame in frames:
                out.extend(receiver.receive(frame))
            frames = out
            receiver = a if receiver is b else b
        if a.all_in_sync and b.all_in_sync:
            break
        for k in a.results[0].send:
            b_set.add(k)
        for k in b.results[0].send:
            a_set.add(k)
    assert list(a_set) == list(b_set)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), initiator=st.booleans())
def test_random_bytes_raise_only_remote_protocol_error(data: bytes, initiator: bool) -> None:
    sets = [KeySet([make_key(i, i) for i in range(50)]), KeySet()]
    for frame in (data, b"\x57\x01" + data, b"\x57\x00" + data):
        r = Reconciler(sets, initiator)
        if initiator:
            r.start()
        try:
            section_ends(frame)
        except ValueError:  # not even the section layout of docs/protocol.md: must be refused
            with pytest.raises(RemoteProtocolError):
                r.receive(frame)
            continue
        with contextlib.suppress(RemoteProtocolError):  # well laid out: may still be refused
            r.receive(frame)


@settings(max_examples=100, deadline=None)
@given(keys=keys_strategy, extra=keys_strategy, lo=st.integers(0, 320), hi=st.integers(0, 320))
def test_keyset_matches_brute_force(
    keys: "list[KeyT]", extra: "list[KeyT]", lo: int, hi: int
) -> None:
    ks = KeySet.from_sorted(keys)
    for k in extra:
        ks.add(k)
    for k in extra[::3]:
        ks.discard(k)
    reference = sorted((set(keys) | set(extra)) - set(extra[::3]))
    assert list(ks) == reference
    assert len(ks) == len(reference)
    for index in (0, len(reference) // 2, len(reference) - 1):
        if 0 <= index < len(reference):
            assert ks.key_at(index) == reference[index]
            assert ks.rank(reference[index]) == index
    lo, hi = min(lo, len(reference)), min(max(lo, hi), len(reference))
    total = sum(int.from_bytes(k[1], "little") for k in reference[lo:hi]) % (1 << 256)
    count = hi - lo
    varint = bytearray()
    while count >= 0x80:
        varint.append(count & 0x7F | 0x80)
        count >>= 7
    varint.append(count)
    expected = hashlib.sha256(total.to_bytes(32, "little") + bytes(varint)).digest()[:16]
    assert ks.fingerprint(lo, hi) == expected
    assert ks.keys_between(lo, hi) == reference[lo:hi]
