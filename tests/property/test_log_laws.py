"""Hypothesis: join is commutative, associative and idempotent; heads and order are right."""

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from node._compat import hmac_sha256, sha256
from node.sync.cid import CID
from node.sync.entry import Entry, create_entry
from node.sync.log import Log, heads, join, sorted_entries, traverse, values

LOG = "/orbitdb/bafyreiproperty/00_berty_group_messages"
PUB = sha256(b"property key")


def sign(message: bytes) -> bytes:
    return hmac_sha256(PUB, message) + hmac_sha256(PUB, b"2" + message)


@st.composite
def dags(draw: st.DrawFn) -> list[Entry]:
    """A random DAG of entries: each names a random subset of earlier ones as next.

    Times follow the Lamport rule or repeat a time on purpose, so ties (concurrent entries with
    equal time) are common.
    """
    size = draw(st.integers(min_value=0, max_value=14))
    pool: list[Entry] = []
    for i in range(size):
        parents = draw(st.lists(st.sampled_from(pool), max_size=3, unique_by=id)) if pool else []
        base = max([0] + [p.clock_time for p in parents])
        time = base + draw(st.sampled_from([0, 1, 1, 2])) if parents else draw(st.integers(0, 3))
        if parents and time <= base:
            time = base + 1
        payload = draw(st.sampled_from(["a", "b", "<&>", "é"])) + str(i)
        pool.append(create_entry(LOG, payload, [p.cid for p in parents], [], time, PUB, sign))
    return pool


@st.composite
def logs_from(draw: st.DrawFn, pool: list[Entry]) -> Log:
    chosen = draw(st.lists(st.sampled_from(pool), unique_by=id)) if pool else []
    clock = draw(st.integers(0, 20))
    return Log(LOG, {e.cid: e for e in chosen}, clock)


@st.composite
def three_logs(draw: st.DrawFn) -> tuple[Log, Log, Log]:
    pool = draw(dags())
    return draw(logs_from(pool)), draw(logs_from(pool)), draw(logs_from(pool))


@settings(max_examples=150, deadline=None)
@given(three_logs())
def test_join_commutative(logs: tuple[Log, Log, Log]) -> None:
    a, b, _ = logs
    assert join(a, b) == join(b, a)
    assert join(a, b).heads == join(b, a).heads


@settings(max_examples=150, deadline=None)
@given(three_logs())
def test_join_associative(logs: tuple[Log, Log, Log]) -> None:
    a, b, c = logs
    left = join(join(a, b), c)
    right = join(a, join(b, c))
    assert left == right
    assert left.heads == right.heads


@settings(max_examples=150, deadline=None)
@given(three_logs())
def test_join_idempotent(logs: tuple[Log, Log, Log]) -> None:
    a, b, _ = logs
    assert join(a, a) == a
    ab = join(a, b)
    assert join(ab, b) == ab
    assert join(ab, a) == ab


@settings(max_examples=150, deadline=None)
@given(three_logs())
def test_join_is_union_with_max_clock(logs: tuple[Log, Log, Log]) -> None:
    a, b, _ = logs
    joined = join(a, b)
    assert set(joined.entries) == set(a.entries) | set(b.entries)
    assert joined.clock_time == max(a.clock_time, b.clock_time)
    for entry in joined.entries.values():
        assert joined.clock_time >= entry.clock_time


def _check_heads(view: dict[CID, Entry], found: list[Entry]) -> None:
    referenced = {c for e in view.values() for c in e.next}
    expected = {c for c in view if c not in referenced}
    assert {e.cid for e in found} == expected
    assert found == sorted_entries(found)


@settings(max_examples=150, deadline=None)
@given(three_logs())
def test_heads_correct(logs: tuple[Log, Log, Log]) -> None:
    for log in logs:
        _check_heads(log.entries, log.heads)
    joined = join(logs[0], logs[1])
    _check_heads(joined.entries, joined.heads)


@settings(max_examples=100, deadline=None)
@given(dags(), st.randoms(use_true_random=False))
def test_order_total_and_deterministic(pool: list[Entry], rnd: random.Random) -> None:
    keys = [e.sort_key() for e in pool]
    assert len(set(keys)) == len(keys)  # total: no two distinct entries compare equal
    expected = sorted_entries(pool)
    shuffled = list(pool)
    rnd.shuffle(shuffled)
    assert sorted_entries(shuffled) == expected
    for earlier, later in itertools.pairwise(expected):
        assert earlier.clock_time <= later.clock_time


@settings(max_examples=100, deadline=None)
@given(dags(), st.randoms(use_true_random=False))
def test_traversal_independent_of_view_order(pool: list[Entry], rnd: random.Random) -> None:
    view = {e.cid: e for e in pool}
    shuffled = list(pool)
    rnd.shuffle(shuffled)
    other = {e.cid: e for e in shuffled}
    assert values(view) == values(other)
    assert traverse(view, heads(view), 5) == traverse(other, heads(other), 5)
    # a full traversal from the heads reaches every entry exactly once
    assert sorted(e.cid for e in values(view)) == sorted(view)
