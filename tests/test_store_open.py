"""Opening the SQLite store reads no entry, and logs' keys are held within a byte budget (issue 14).

What opening reads is pinned by SQLite itself: every statement the store's connection runs is
traced (sqlite3's set_trace_callback) and its plan asked for (EXPLAIN QUERY PLAN), not timed.
"""

from __future__ import annotations

import gc
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.store.cidindex import BUFFER
from node.store.keycache import KEY_BYTES, SKETCH_BYTES
from node.store.sqlite import SQLiteStore
from node.sync.entry import Entry
from node.sync.keyset import SKETCH_CACHE_MIN
from node.sync.store import Limits
from tests.store_helpers import SUITE, Writer

WRITERS = [Writer(10 + i, "/orbitdb/bafy-%d/log%d_berty_group_messages" % (i, i)) for i in range(3)]
BIG_TABLES = re.compile(r"\bSCAN (entries|blocks|links|unresolved|cids)\b")


def chain(writer: Writer, count: int) -> list[Entry]:
    entries: list[Entry] = []
    for time in range(1, count + 1):
        entries.append(writer.entry(time, entries[-1:]))
    return entries


def filled(tmp_path: Path, per_log: int, cid_buffer: int = BUFFER) -> dict[str, list[Entry]]:
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, Limits())
    store._cids.buffer = cid_buffer
    logs = {}
    for writer in WRITERS:
        store.add_log(writer.log_id, writer.sign_pub)
        logs[writer.log_id] = chain(writer, per_log)
        store.put_entries(logs[writer.log_id], 1)
    store.commit()
    store.close()
    return logs


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement run by connections opened from now on (parameters expanded)."""
    statements: list[str] = []
    connect = sqlite3.connect

    def tracing(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", tracing)
    yield statements


def plans(conn: sqlite3.Connection, statements: list[str]) -> list[tuple[str, str]]:
    """(statement, its query plan's details joined) for every SELECT among `statements`."""
    found = []
    for statement in statements:
        if statement.lstrip().upper().startswith("SELECT"):
            rows = conn.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
            found.append((statement, "; ".join(str(row[-1]) for row in rows)))
    return found


def test_open_reads_no_entry(tmp_path: Path, traced: list[str]) -> None:
    """Opening reads `logs`, `stats` and the entries after the last CID merge (a rowid range,
    here empty): no scan of a table that grows with the entries."""
    logs = filled(tmp_path, 30, cid_buffer=80)  # 90 entries: merged at the commit
    del traced[:]
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, Limits())
    opening = list(traced)
    conn = store._db()
    conn.set_trace_callback(None)
    reads = [s for s in opening if re.search(r"\b(entries|blocks|links|cids)\b", s)]
    assert reads == ["SELECT id, digest FROM entries WHERE id > 90 ORDER BY id"]
    for statement, plan in plans(conn, opening):
        assert not BIG_TABLES.search(plan), (statement, plan)
        if statement in reads:
            assert "USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
    assert len(store._cids) == 0
    # what the relay knows right after opening comes from the logs table
    for log_id, entries in logs.items():
        info = store.log_info(log_id)
        assert (info.entry_count, info.byte_count) == (30, sum(len(e.block) for e in entries))
    assert store.stats()["bytes"] == sum(len(e.block) for es in logs.values() for e in es)
    assert store.keys.loads == 0
    store.close()


def test_reads_by_key_and_cid_use_indexes(tmp_path: Path, traced: list[str]) -> None:
    """A log's keys come from the key index alone; a CID is found through `cids`."""
    logs = filled(tmp_path, 5, cid_buffer=4)
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, Limits())
    log_id, entries = next(iter(logs.items()))
    del traced[:]
    assert list(store.keyset(log_id)) == [(e.clock_time, e.cid.digest) for e in entries]
    assert store.has(entries[2].cid) and store.get_block(entries[2].cid) == entries[2].block
    assert store.heads(log_id) == [entries[-1].cid]
    used = list(traced)
    conn = store._db()
    conn.set_trace_callback(None)
    found = plans(conn, used)
    assert len(found) >= 3
    for statement, plan in found:
        assert not BIG_TABLES.search(plan), (statement, plan)
        if "ORDER BY clock_time" in statement:
            assert "COVERING INDEX entries_by_key" in plan, plan
        if "FROM cids" in statement:
            assert "SEARCH cids USING PRIMARY KEY (prefix=?)" in plan, plan
    store.close()


def test_keys_are_held_within_the_budget(tmp_path: Path) -> None:
    logs = filled(tmp_path, 20)
    budget = 45 * KEY_BYTES  # two logs of 20 keys fit, three do not
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, Limits(), key_budget=budget)
    a, b, c = logs
    store.keyset(a)
    store.keyset(b)
    assert store.keys.loads == 2 and len(store.keys) == 2
    store.keyset(c)  # a, the least recently used, is dropped
    assert store.keys.loads == 3 and len(store.keys) == 2 and store.keys.total <= budget
    store.keyset(c)
    store.keyset(b)
    assert store.keys.loads == 3  # held: no reload
    again = store.keyset(a)  # read again from the key index, equal
    assert store.keys.loads == 4
    assert list(again) == [(e.clock_time, e.cid.digest) for e in logs[a]]
    store.close()


def test_a_set_a_link_holds_is_taken_back_not_loaded_twice(tmp_path: Path) -> None:
    logs = filled(tmp_path, 20)
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, Limits(), key_budget=25 * KEY_BYTES)
    a, b, _c = logs
    held = store.keyset(a)  # a link reconciling against log a keeps this object
    store.keyset(b)  # over the budget: a is dropped from the cache, the link still has it
    assert store.keys.loads == 2 and len(store.keys) == 1
    writer = WRITERS[0]
    late = writer.entry(21, logs[a][-1:])
    store.put_entries([late], 2)  # the write goes to the very set the link holds
    assert (late.clock_time, late.cid.digest) in held
    assert store.keyset(a) is held and store.keys.loads == 2
    store.commit()
    del held
    store.keyset(b)  # drops a again; nothing else holds it now
    gc.collect()
    assert len(store.keyset(a)) == 21 and store.keys.loads == 4  # a loaded, then b again
    store.close()


def test_sketches_go_before_keys(tmp_path: Path) -> None:
    per_log = SKETCH_CACHE_MIN  # large enough that a set keeps its IBLT (node/sync/keyset.py)
    store = SQLiteStore.open_in(tmp_path, lambda _k, _m, _s: True, Limits())
    a, b = WRITERS[:2]
    for writer in (a, b):
        store.add_log(writer.log_id, writer.sign_pub)
        store.put_entries(chain(writer, per_log), 1)
    store.commit()
    store.keys.budget = 2 * per_log * KEY_BYTES + SKETCH_BYTES + 1000  # room for one IBLT
    keys_a = store.keyset(a.log_id)
    keys_a.sketch(8)  # builds and keeps the full IBLT
    store.keyset(a.log_id)
    store.keyset(b.log_id).sketch(8)
    store.keyset(b.log_id)  # two IBLTs: over the budget
    assert not keys_a.sketch_built() and store.keyset(b.log_id).sketch_built()
    assert len(store.keys) == 2 and store.keys.total <= store.keys.budget  # a kept its keys
    store.close()


def test_cids_merge_in_bulk_and_survive_reopen_and_rowid_reuse(tmp_path: Path) -> None:
    writer = WRITERS[0]
    e1, e2, e3 = (writer.entry(t) for t in (1, 2, 3))
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, Limits())
    store._cids.buffer = 2
    store.add_log(writer.log_id, writer.sign_pub)
    store.put_entries([e1], 1)
    store.commit()
    assert store._cids.merges == 0 and len(store._cids) == 1  # below the buffer: in memory
    store.put_entries([e2], 1)
    store.commit()
    assert store._cids.merges == 1 and len(store._cids) == 0 and store._cids.upto == 2
    with store._guard("test", write=True):
        store._delete(e2.cid)  # the largest rowid goes ...
    store.put_entries([e3], 1)  # ... and SQLite gives e3 the same rowid, at or below upto
    store.commit()
    rows = sorted(store._db().execute("SELECT prefix, row FROM cids"))
    assert rows == sorted([(e1.cid.digest[:8], 1), (e3.cid.digest[:8], 2)])  # e2's row deleted
    store.close()
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, Limits())
    assert len(store._cids) == 0  # nothing after upto: e3 is found on disk
    assert store.has(e1.cid) and store.has(e3.cid) and not store.has(e2.cid)
    assert store.get_block(e3.cid) == e3.block
    store.close()
