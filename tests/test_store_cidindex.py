"""node.store.cidindex: the in-memory digest-prefix -> rows map, and SQLiteStore's use of it."""

from __future__ import annotations

import random
from pathlib import Path

from node.store import cidindex
from node.store.cidindex import CidIndex, digest_prefix
from node.store.sqlite import SQLiteStore
from node.sync.cid import CID
from tests.store_helpers import SUITE, Writer


def test_prefix_is_the_first_eight_digest_bytes() -> None:
    assert digest_prefix(bytes(range(32))) == 0x0001020304050607
    assert digest_prefix(b"\xff" * 32) == (1 << 64) - 1


def test_index_matches_a_dict_through_adds_removes_and_merges() -> None:
    rng = random.Random(3)
    index = CidIndex([(5, 1), (5, 2), (9, 3)])
    truth: dict[int, set[int]] = {5: {1, 2}, 9: {3}}
    next_row = 4
    for step in range(6000):
        if truth and rng.random() < 0.35:
            prefix = rng.choice(sorted(truth))
            row = rng.choice(sorted(truth[prefix]))
            index.remove(prefix, row)
            truth[prefix].discard(row)
            if not truth[prefix]:
                del truth[prefix]
        else:
            prefix = rng.choice([5, 9, rng.getrandbits(64), rng.getrandbits(8)])
            index.add(prefix, next_row)
            truth.setdefault(prefix, set()).add(next_row)
            next_row += 1
        if step % 97 == 0:
            for prefix, rows in truth.items():
                assert sorted(index.rows(prefix)) == sorted(rows)
            assert index.rows(1 << 63) == [] or (1 << 63) in truth
            assert len(index) == sum(len(rows) for rows in truth.values())
    assert cidindex.MERGE_MIN < 6000  # the arrays were rebuilt along the way
    assert len(index._recent) < cidindex.MERGE_MIN


def test_store_decides_by_the_full_cid_when_prefixes_collide(tmp_path: Path) -> None:
    writer = Writer(1, "/orbitdb/bafy-a/aa_berty_group_messages")
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    store.add_log(writer.log_id, writer.sign_pub)
    e1 = writer.entry(1)
    e2 = writer.entry(2, [e1])
    store.put_entries([e1, e2], 1)
    store.commit()
    rows = dict(store._db().execute("SELECT clock_time, id FROM entries"))
    # Each row also under the other's prefix, as if the digests shared 8 bytes: for e2 the
    # wrong row (e1's, the lower rowid) is tried first.
    p1, p2 = digest_prefix(e1.cid.digest), digest_prefix(e2.cid.digest)
    store._cids = CidIndex([(p1, rows[1]), (p1, rows[2]), (p2, rows[1]), (p2, rows[2])])
    assert store._cids.rows(p2) == [rows[1], rows[2]]
    assert store.get_block(e1.cid) == e1.block and store.get_block(e2.cid) == e2.block
    lookalike = CID(e1.cid.codec, e1.cid.digest[:8] + b"\x00" * 24)
    assert not store.has(lookalike) and store.get_block(lookalike) is None
    raw = CID(0x55, e1.cid.digest)  # same digest, another codec: another CID
    assert not store.has(raw)
    store.close()


def test_from_sorted_matches_the_constructor_and_refuses_disorder() -> None:
    import pytest

    pairs = [(5, 1), (5, 2), (9, 3), (12, 4)]
    built = CidIndex.from_sorted(iter(pairs))
    assert [built.rows(p) for p in (5, 9, 12, 7)] == [[1, 2], [3], [4], []]
    assert len(built) == len(CidIndex(pairs)) == 4
    with pytest.raises(ValueError):
        CidIndex.from_sorted(iter([(9, 1), (5, 2)]))
