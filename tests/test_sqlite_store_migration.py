"""Schema migrations of the SQLite store (v1 -> v2 -> v3), on databases the old code filled.

The v1 database is created by the v1 DDL (`MIGRATIONS[0]`, kept in the list) and filled with the
v1 store's SQL (`_v1_insert` below is SQLiteStore._insert as it was in schema 1). After opening
it with the current code, every log, entry, block, head, count, key and counter must equal a
MemoryStore fed the same entries, and the migrated store must keep deciding like the model
(parents arriving late, evictions surfacing heads again). A database left at v2 gains the v3
devices tables (node/store/devices.py) and nothing else changes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.store import sqlite as sqlite_store
from node.store.devices import Device, DeviceBook
from node.store.sqlite import APPLICATION_ID, FILENAME, SQLiteStore
from node.sync.entry import Entry
from node.sync.store import Limits, MemoryStore, Store
from tests.store_helpers import SUITE, Writer

A = Writer(1, "/orbitdb/bafy-a/aa_berty_group_messages")
B = Writer(2, "/orbitdb/bafy-b/bb_berty_group_messages")
LIMITS = Limits(max_log_bytes=6000, max_total_bytes=20_000)


def _v1_insert(conn: sqlite3.Connection, entry: Entry, log: int, now: int) -> None:
    """SQLiteStore._insert of schema version 1."""
    cid = entry.cid.to_bytes()
    row = conn.execute(
        "INSERT INTO entries (cid, log, clock_time, digest, size, stored_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (cid, log, entry.clock_time, entry.cid.digest, len(entry.block), now),
    ).lastrowid
    conn.execute("INSERT INTO blocks (id, data) VALUES (?, ?)", (row, entry.block))
    parents = sorted({parent.to_bytes() for parent in entry.next})
    if parents:
        conn.executemany(
            "INSERT OR IGNORE INTO links (log, parent, child) VALUES (?, ?, ?)",
            [(log, parent, row) for parent in parents],
        )
        conn.executemany(
            "DELETE FROM heads WHERE log = ? AND entry = (SELECT id FROM entries WHERE cid = ?)",
            [(log, parent) for parent in parents],
        )
    if (
        conn.execute(
            "SELECT 1 FROM links WHERE log = ? AND parent = ? LIMIT 1", (log, cid)
        ).fetchone()
        is None
    ):
        conn.execute("INSERT INTO heads (log, entry) VALUES (?, ?)", (log, row))


def _entries() -> tuple[list[Entry], dict[str, Entry]]:
    """Out-of-order puts, forks, a merge, a parent never stored, a parent in another log."""
    a1 = A.entry(1, payload="a1" + "x" * 500)
    a2 = A.entry(2, [a1], payload="a2" + "x" * 300)
    a3 = A.entry(2, [a1], payload="a3 fork")
    a4 = A.entry(3, [a2, a3], payload="a4 merge" + "x" * 200)
    missing = A.entry(1, payload="never stored before the migration")
    a5 = A.entry(2, [missing], payload="a5 names a missing parent")
    b1 = B.entry(1, payload="b1")
    b2 = B.entry(5, [b1, a4], payload="b2 names a4 of another log")
    order = [a4, a2, b2, a1, a5, b1, a3]  # children before parents for a4 and b2
    named = {"a1": a1, "a2": a2, "a3": a3, "a4": a4, "a5": a5, "missing": missing, "b1": b1}
    named["b2"] = b2
    return order, named


def _v1_database(path: Path, model: MemoryStore, order: list[Entry]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    sqlite_store.MIGRATIONS[0](conn)  # the v1 DDL
    conn.execute("PRAGMA user_version = 1")
    conn.execute("PRAGMA application_id = %d" % APPLICATION_ID)
    logs = {}
    for writer in (A, B):
        logs[writer.log_id] = conn.execute(
            "INSERT INTO logs (log_id, sign_pub, pinned, quota) VALUES (?, ?, ?, ?)",
            (writer.log_id, writer.sign_pub, int(writer is A), None),
        ).lastrowid
        model.add_log(writer.log_id, writer.sign_pub, pinned=writer is A)
    for now, entry in enumerate(order, start=100):
        _v1_insert(conn, entry, logs[entry.log_id], now)
        assert model.put_entries([entry], now)[0].status == "stored"
    model.commit()
    for log_id in model.logs():
        info = model.log_info(log_id)
        conn.execute(
            "UPDATE logs SET entry_count = ?, byte_count = ? WHERE log_id = ?",
            (info.entry_count, info.byte_count, log_id),
        )
    counters = {k: v for k, v in model.stats().items() if k not in ("logs", "entries", "bytes")}
    conn.executemany("INSERT INTO stats (name, value) VALUES (?, ?)", sorted(counters.items()))
    conn.execute("COMMIT")
    conn.close()


def _assert_same(real: Store, model: Store, cids: list[Entry]) -> None:
    assert real.logs() == model.logs()
    for log_id in model.logs():
        assert real.log_info(log_id) == model.log_info(log_id)
        keys = list(model.keyset(log_id))
        assert list(real.keyset(log_id)) == keys
        assert [e.cid for e in real.entries_by_keys(log_id, keys)] == [
            e.cid for e in model.entries_by_keys(log_id, keys)
        ]
    for entry in cids:
        assert real.has(entry.cid) == model.has(entry.cid)
        assert real.get_block(entry.cid) == model.get_block(entry.cid)
    assert real.stats() == model.stats()


def test_v1_database_is_migrated_in_place(tmp_path: Path) -> None:
    order, named = _entries()
    model = MemoryStore(SUITE.ed25519_verify, LIMITS)
    _v1_database(tmp_path / FILENAME, model, order)
    v1_heads = set(model.heads(A.log_id))
    assert v1_heads == {named["a4"].cid, named["a5"].cid}  # the fixture covers forks and gaps

    real = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, LIMITS)
    everything = list(named.values())
    _assert_same(real, model, everything)

    raw = real._db()
    assert raw.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_store.MIGRATIONS) == 3
    tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master")}
    assert "heads" not in tables and "unresolved" in tables and "entries_heads" in tables
    assert [r[1] for r in raw.execute("PRAGMA table_info(links)")] == ["child", "parent"]
    # a4 is named by b2 of another log only: it stays a head of A and the link waits in B, as
    # does a5's link to the parent that is not stored yet.
    unresolved = {(log, parent): n for log, parent, n in raw.execute("SELECT * FROM unresolved")}
    log_a, log_b = (real._logs[w.log_id].row for w in (A, B))
    assert unresolved == {
        (log_a, named["missing"].cid.to_bytes()): 1,
        (log_b, named["a4"].cid.to_bytes()): 1,
    }

    # The migrated store keeps deciding like the model: a late parent is no head; evicting
    # entries (A is pinned, B is not; the total limit is tight) surfaces parents again.
    big = [B.entry(10 + i, payload="y" * 1400) for i in range(12)]
    for now, batch in ((500, [named["missing"]]), (600, big[:6]), (700, big[6:])):
        assert real.put_entries(batch, now) == model.put_entries(batch, now)
        assert real.commit() == model.commit()
        _assert_same(real, model, everything + big)
    assert model.stats()["evicted"] > 0
    assert named["missing"].cid not in real.heads(A.log_id)
    real.close()

    again = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, LIMITS)
    _assert_same(again, model, everything + big)
    assert again.expire(10**9) == model.expire(10**9)
    _assert_same(again, model, everything + big)
    again.close()


def test_empty_v1_database_is_migrated(tmp_path: Path) -> None:
    model = MemoryStore(SUITE.ed25519_verify, LIMITS)
    _v1_database(tmp_path / FILENAME, model, [])
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, LIMITS)
    _assert_same(store, model, [])
    entry = A.entry(1)
    assert store.put_entries([entry], 1) == model.put_entries([entry], 1)
    assert store.commit() == [entry.cid]
    store.close()


def test_v1_to_v2_to_v3_adds_the_devices_tables_and_keeps_everything(tmp_path: Path) -> None:
    """A store a v2 relay left (v1, then v1 -> v2, closed), opened by this code: v2 -> v3 adds
    the devices tables and touches nothing else; a device paired after it survives a reopen."""
    order, named = _entries()
    model = MemoryStore(SUITE.ed25519_verify, LIMITS)
    _v1_database(tmp_path / FILENAME, model, order)
    conn = sqlite3.connect(tmp_path / FILENAME, isolation_level=None)
    conn.execute("BEGIN")
    sqlite_store.MIGRATIONS[1](conn)  # what the v2 code did on its first start
    conn.execute("PRAGMA user_version = 2")
    conn.execute("COMMIT")
    v2_tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert "devices" not in v2_tables and "unresolved" in v2_tables
    conn.close()

    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, LIMITS)
    raw = store._db()
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 3
    tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master")}
    assert tables == v2_tables | {"devices", "device_logs"}
    everything = list(named.values())
    _assert_same(store, model, everything)
    book = DeviceBook(store)
    assert book.all() == []
    phone = Device(bytes(range(32)), "phone", "device", 1 << 20, 1_700_000_000)
    book.add(phone)
    book.register_log(phone.static_key, A.log_id)
    store.commit()
    store.close()

    again = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, LIMITS)
    book = DeviceBook(again)
    assert book.all() == [phone] and book.logs_of(phone.static_key) == [A.log_id]
    _assert_same(again, model, everything)
    again.close()


def test_v1_database_reaches_v3_with_usable_devices_tables(tmp_path: Path) -> None:
    model = MemoryStore(SUITE.ed25519_verify, LIMITS)
    _v1_database(tmp_path / FILENAME, model, [])
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify, LIMITS)
    book = DeviceBook(store)
    relay = Device(bytes(32), "relay-1", "relay", 1 << 20, 1)
    book.add(relay)
    assert book.get(relay.static_key) == relay and book.remove(relay.static_key) == []
    assert book.all() == []
    store.close()
