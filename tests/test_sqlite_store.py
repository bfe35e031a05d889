"""SQLiteStore on real database files: durability, schema, refusals, space, corruption."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from node.errors import StoreError
from node.store import sqlite as sqlite_store
from node.store.sqlite import APPLICATION_ID, FILENAME, SQLiteStore
from node.sync.entry import create_entry
from node.sync.store import DUPLICATE, REFUSED, STORED, Limits
from tests.store_helpers import SUITE, Writer, tampered_cid

ROOT = Path(__file__).resolve().parent.parent
DAY = 24 * 3600
A = Writer(1, "/orbitdb/bafy-a/aa_berty_group_messages")
B = Writer(2, "/orbitdb/bafy-b/bb_berty_group_messages")


def open_store(directory: Path, journal: str = "wal", **limits: int) -> SQLiteStore:
    store = SQLiteStore.open_in(directory, SUITE.ed25519_verify, Limits(**limits), journal=journal)
    if not store.logs():
        store.add_log(A.log_id, A.sign_pub)
        store.add_log(B.log_id, B.sign_pub)
        store.commit()
    return store


def test_store_commit_reopen(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    e1 = A.entry(1)
    e2 = A.entry(2, [e1])
    e3 = A.entry(2, [e1], payload="fork")
    results = store.put_entries([e2, e1, e3, e1], 100)
    assert [r.status for r in results] == [STORED, STORED, STORED, DUPLICATE]
    assert store.commit() == [e2.cid, e1.cid, e3.cid]
    store.add_log(A.log_id, A.sign_pub, pinned=True, quota=10_000)
    store.commit()
    info = store.log_info(A.log_id)
    store.close()

    again = open_store(tmp_path)
    assert again.log_info(A.log_id) == info
    assert info.pinned and info.quota == 10_000 and info.entry_count == 3
    assert again.heads(A.log_id) == sorted([e2.cid, e3.cid])
    assert list(again.keyset(A.log_id)) == sorted(
        (e.clock_time, e.cid.digest) for e in (e1, e2, e3)
    )
    assert again.get_block(e2.cid) == e2.block
    assert again.has(e3.cid) and not again.has(B.entry(1).cid)
    found = again.entries_by_keys(A.log_id, [(2, e3.cid.digest), (1, e1.cid.digest)])
    assert [e.cid for e in found] == [e3.cid, e1.cid]
    stats = again.stats()
    assert (stats["stored"], stats["duplicate"], stats["entries"]) == (3, 1, 3)
    assert stats["bytes"] == sum(len(e.block) for e in (e1, e2, e3))
    assert (tmp_path / FILENAME).exists()
    again.close()


def test_journal_modes_full_sync_and_conversion(tmp_path: Path) -> None:
    """store.journal: "wal" (the default) or "rollback" (PERSIST, 2 KiB pages for a new store);
    always synchronous=FULL. A store opened in the other mode converts and keeps its entries (a
    WAL left by a process that died converts too); a clean close leaves no journal or WAL."""
    e1, e2 = A.entry(1), A.entry(2)
    store = open_store(tmp_path)
    conn = store._db()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    script = (  # dies with its WAL beside the file (no checkpoint, no close)
        "import os, sys\nfrom pathlib import Path\n"
        "from tests.test_sqlite_store import A, open_store\n"
        "store = open_store(Path(sys.argv[1]))\n"
        "store.put_entries([A.entry(1)], 10)\nstore.commit()\nos._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, cwd=ROOT)
    assert (tmp_path / (FILENAME + "-wal")).exists()
    store = open_store(tmp_path, "rollback")
    conn = store._db()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "persist"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert not (tmp_path / (FILENAME + "-wal")).exists()
    assert store.has(e1.cid)
    store.put_entries([e2], 11)
    store.commit()
    assert (tmp_path / (FILENAME + "-journal")).exists()
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILENAME]
    again = open_store(tmp_path)
    assert again._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert again.has(e1.cid) and again.has(e2.cid)
    again.close()
    (tmp_path / "new").mkdir()
    fresh = open_store(tmp_path / "new", "rollback")
    assert fresh._db().execute("PRAGMA page_size").fetchone()[0] == 2048
    fresh.close()
    with pytest.raises(StoreError, match="unknown store journal"):
        open_store(tmp_path, "memory")


def test_uncommitted_work_is_lost_on_close_and_never_acknowledged(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    e1 = A.entry(1)
    e2 = A.entry(2, [e1])
    store.put_entries([e1], 10)
    store.commit()
    store.put_entries([e2], 11)
    assert store.has(e2.cid) and store.pending() == 1
    store.close()
    again = open_store(tmp_path)
    assert again.has(e1.cid) and not again.has(e2.cid)
    assert again.heads(A.log_id) == [e1.cid]
    assert again.stats()["stored"] == 1
    again.close()


@pytest.mark.parametrize("journal", ["wal", "rollback"])
@pytest.mark.parametrize("spill", [False, True], ids=["in-cache", "spilled"])
def test_killed_process_keeps_exactly_the_committed_entries(
    tmp_path: Path, spill: bool, journal: str
) -> None:
    # A child process commits e1, puts more without committing and dies by SIGKILL-equivalent
    # os._exit in the middle of the open transaction. "spilled": a 2-page cache makes SQLite
    # write the open transaction's pages out (to the WAL, uncommitted; or into the database
    # file, with the old pages in the hot journal) before the death, so reopening must leave
    # them out.
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from tests.test_sqlite_store import A, open_store
        store = open_store(Path({str(tmp_path)!r}), {journal!r})
        e1 = A.entry(1)
        store.put_entries([e1], 10)
        assert store.commit() == [e1.cid]
        if {spill!r}:
            store._db().execute("PRAGMA cache_size = 2")
        more = [A.entry(2 + i, [e1], payload="p%d " % i + "x" * 1500) for i in range(40)]
        store.put_entries(more, 11)
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    if spill and journal == "rollback":  # the hot journal is there to roll them back
        assert (tmp_path / (FILENAME + "-journal")).stat().st_size > 0
    store = open_store(tmp_path, journal)
    assert store.left_open
    e1 = A.entry(1)
    assert store.has(e1.cid)
    assert not store.has(A.entry(2, [e1], payload="p0 " + "x" * 1500).cid)
    assert store.log_info(A.log_id).entry_count == 1
    store.quick_check()
    store.close()


def test_refusals_are_counted_and_never_stored(tmp_path: Path) -> None:
    store = open_store(tmp_path, max_entry_bytes=2000)
    good = A.entry(1)
    bad_sig = A.entry(2, signer=B)  # keyed to B, in A's log: key mismatch
    results = store.put_entries(
        [
            bad_sig,
            tampered_cid(good, A.entry(9)),
            Writer(3, "/orbitdb/unknown").entry(1),
            A.entry(3, payload="y" * 2000),
            good,
        ],
        5,
    )
    assert [(r.status, r.reason) for r in results] == [
        (REFUSED, "integrity"),
        (REFUSED, "integrity"),
        (REFUSED, "unknown-log"),
        (REFUSED, "too-large"),
        (STORED, ""),
    ]
    assert "key" in results[0].detail and "hashes to" in results[1].detail
    assert store.commit() == [good.cid]
    store.close()
    raw = sqlite3.connect(tmp_path / FILENAME)
    assert raw.execute("SELECT count(*) FROM entries").fetchone()[0] == 1
    assert raw.execute("SELECT count(*) FROM blocks").fetchone()[0] == 1
    counters = dict(raw.execute("SELECT name, value FROM stats"))
    raw.close()
    assert counters["refused.integrity"] == 2
    assert counters["refused.unknown-log"] == 1
    assert counters["refused.too-large"] == 1
    assert counters["stored"] == 1


def test_forged_signature_is_refused(tmp_path: Path) -> None:
    # Keyed to A but signed by B's secret key: the signature check itself fails.
    store = open_store(tmp_path)
    forged = create_entry(A.log_id, "x", [], [], 1, A.sign_pub, B.sign)
    result = store.put_entries([forged], 5)[0]
    assert (result.status, result.reason) == (REFUSED, "integrity")
    assert "sig" in result.detail
    assert not store.has(forged.cid)
    store.close()


def test_eviction_order_and_pinned_heads_survive_reopen(tmp_path: Path) -> None:
    p1 = A.entry(1, payload="p" * 400)
    p2 = A.entry(2, [p1], payload="left")
    p3 = A.entry(2, [p1], payload="right")
    u1 = B.entry(1, payload="u" * 300)
    u2 = B.entry(2, [u1], payload="v" * 300)
    sizes = {e.cid: len(e.block) for e in (p1, p2, p3, u1, u2)}
    total = sum(sizes.values())
    store = open_store(tmp_path, max_total_bytes=total - 1)
    store.add_log(A.log_id, A.sign_pub, pinned=True)
    store.put_entries([p1, p2, p3], 0)
    store.put_entries([u1], 10)
    store.commit()
    store.close()
    store = open_store(tmp_path, max_total_bytes=total - 1)
    # u2 does not fit: the unpinned u1 goes, although pinned p1 is older and bigger.
    assert store.put_entries([u2], 1000)[0].status == STORED
    assert not store.has(u1.cid) and store.has(p1.cid)
    # A pinned newcomer evicts u2 (unpinned first), then p1 (pinned, not a head); never p2/p3.
    p4 = A.entry(3, [], payload="n" * (sizes[u2.cid] + sizes[u1.cid]))
    assert store.put_entries([p4], 2000)[0].status == STORED
    assert not store.has(u2.cid) and not store.has(p1.cid)
    assert store.heads(A.log_id) == sorted([p2.cid, p3.cid, p4.cid])
    assert store.stats()["evicted"] == 3
    # Only pinned heads are left: no room is made for anything.
    p5 = A.entry(4, [], payload="z" * 900)
    assert store.put_entries([p5], 3000)[0].reason == "quota"
    store.commit()
    store.close()
    store = open_store(tmp_path, max_total_bytes=total - 1)
    assert store.heads(A.log_id) == sorted([p2.cid, p3.cid, p4.cid])
    assert store.stats()["refused.quota"] == 1
    store.close()


def test_expiry(tmp_path: Path) -> None:
    store = open_store(tmp_path, expiry_seconds=30 * DAY)
    store.add_log(A.log_id, A.sign_pub, pinned=True)
    e1 = A.entry(1)
    e2 = A.entry(2, [e1])
    store.put_entries([e1], 0)
    store.put_entries([e2], DAY)
    assert store.expire(30 * DAY - 1) == 0
    assert store.expire(30 * DAY) == 1
    assert store.heads(A.log_id) == [e2.cid]
    assert store.expire(31 * DAY) == 1
    assert store.heads(A.log_id) == [] and len(store.keyset(A.log_id)) == 0
    store.commit()
    assert store.stats()["expired"] == 2
    store.close()


def test_sqlite_error_rolls_back_pending_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    e1 = A.entry(1)
    e2 = A.entry(2, [e1])
    e3 = A.entry(3, [e2])
    store.put_entries([e1], 1)
    store.commit()
    store.put_entries([e2], 2)
    original = SQLiteStore._insert

    def failing(self: SQLiteStore, *args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SQLiteStore, "_insert", failing)
    with pytest.raises(StoreError, match="disk I/O error"):
        store.put_entries([e3], 3)
    monkeypatch.setattr(SQLiteStore, "_insert", original)
    # e2 was pending in the same transaction: rolled back with it, and never acknowledged.
    assert not store.has(e2.cid) and store.has(e1.cid)
    assert list(store.keyset(A.log_id)) == [(1, e1.cid.digest)]
    assert store.heads(A.log_id) == [e1.cid]
    assert store.commit() == []
    assert store.put_entries([e2], 4)[0].status == STORED
    assert store.commit() == [e2.cid]
    store.close()


# ---- schema and hostile files ------------------------------------------------------------------


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    raw = sqlite3.connect(tmp_path / FILENAME)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(tmp_path)


def test_foreign_databases_are_refused(tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / FILENAME)
    raw.execute("CREATE TABLE t (x)")
    raw.close()
    with pytest.raises(StoreError, match="not a Waystation store"):
        open_store(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    raw = sqlite3.connect(other / FILENAME)
    raw.execute("PRAGMA application_id = 1234")
    raw.close()
    with pytest.raises(StoreError, match="application_id"):
        open_store(other)


def test_migrations_run_in_order_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(tmp_path).close()
    current = len(sqlite_store.MIGRATIONS)
    calls: list[int] = []

    def to_v2(conn: sqlite3.Connection) -> None:
        calls.append(2)
        conn.execute("ALTER TABLE logs ADD COLUMN note TEXT")

    def to_v3(conn: sqlite3.Connection) -> None:
        calls.append(3)
        conn.execute("UPDATE logs SET note = 'v3'")

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, to_v2, to_v3])
    store = open_store(tmp_path)
    store.close()
    assert calls == [2, 3]
    open_store(tmp_path).close()
    assert calls == [2, 3]
    raw = sqlite3.connect(tmp_path / FILENAME)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == current + 2
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert {n for (n,) in raw.execute("SELECT note FROM logs")} == {"v3"}
    raw.close()


def test_failed_migration_leaves_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(tmp_path).close()
    current = len(sqlite_store.MIGRATIONS)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE logs ADD COLUMN note TEXT")
        conn.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, broken])
    with pytest.raises(StoreError, match="no_such_table"):
        open_store(tmp_path)
    raw = sqlite3.connect(tmp_path / FILENAME)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == current
    columns = [row[1] for row in raw.execute("PRAGMA table_info(logs)")]
    raw.close()
    assert "note" not in columns


@pytest.mark.parametrize(
    "content",
    [b"not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000, b"\x00" * 8192],
)
def test_garbage_file_is_store_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / FILENAME).write_bytes(content)
    with pytest.raises(StoreError):
        open_store(tmp_path)


def test_truncated_database_is_store_error(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    entries = [A.entry(1, payload="t" * 3000)]
    for time in range(2, 40):
        entries.append(A.entry(time, [entries[-1]], payload="t" * 3000))
    store.put_entries(entries, 1)
    store.commit()
    store.close()
    path = tmp_path / FILENAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError):
        store = open_store(tmp_path)
        for entry in entries:
            store.get_block(entry.cid)


@pytest.mark.parametrize(
    ("statement", "match"),
    [
        ("UPDATE logs SET sign_pub = x'01'", "sign_pub"),
        ("UPDATE logs SET pinned = 7", "pinned"),
        ("UPDATE logs SET entry_count = -1", "entry count"),
        ("INSERT INTO stats VALUES ('x', 'y')", "counter"),
        ("UPDATE entries SET digest = x'00'", "bad digest"),
        ("UPDATE entries SET clock_time = -5", "clock_time"),
        ("UPDATE entries SET clock_time = 'soon'", "clock_time"),
        ("UPDATE entries SET log = 77", "counts 1 entries and holds 0"),
        ("UPDATE logs SET entry_count = 2", "counts 2 entries and holds 1"),
        ("UPDATE entries SET size = -1", "size"),
    ],
)
def test_hostile_rows_are_store_error_when_read(tmp_path: Path, statement: str, match: str) -> None:
    """Rows of `logs` and `stats` are checked at open. Opening scans no table of entries, so an
    entry row is checked when it is read: the newest rows (the CID buffer,
    node/store/cidindex.py) at open, a log's keys as they load, an entry's size when it is read
    for expiry or eviction."""
    store = open_store(tmp_path)
    store.put_entries([A.entry(1)], 1)
    store.commit()
    store.close()
    raw = sqlite3.connect(tmp_path / FILENAME)
    raw.execute(statement)
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match=match):
        store = open_store(tmp_path)
        try:
            store.keyset(A.log_id)
            store.expire(10**9)
        finally:
            store.close()


def test_tampered_block_is_caught_on_read(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    e1 = A.entry(1)
    store.put_entries([e1], 1)
    store.commit()
    store.close()
    raw = sqlite3.connect(tmp_path / FILENAME)
    raw.execute("UPDATE blocks SET data = ?", (e1.block[:-1] + b"!",))
    raw.execute("UPDATE entries SET cid = x'0001'")
    raw.commit()
    raw.close()
    store = open_store(tmp_path)
    with pytest.raises(StoreError, match="bad CID"):
        store.heads(A.log_id)
    store.close()
    raw = sqlite3.connect(tmp_path / FILENAME)
    raw.execute("UPDATE entries SET cid = ?", (e1.cid.to_bytes(),))
    raw.commit()
    raw.close()
    store = open_store(tmp_path)
    with pytest.raises(StoreError, match="does not hash"):
        store.get_block(e1.cid)
    with pytest.raises(StoreError, match="corrupt"):
        store.entries_by_keys(A.log_id, [(1, e1.cid.digest)])
    store.close()


def test_second_opener_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(StoreError, match="locked"):
        open_store(tmp_path)
    store.close()
    open_store(tmp_path).close()


def test_closed_store_raises(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.has(A.entry(1).cid)


def test_unwritable_directory_is_store_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        missing = tmp_path / "no" / "such" / "dir"
        with pytest.raises(StoreError):
            SQLiteStore.open_in(missing, SUITE.ed25519_verify)
        return
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StoreError):
            SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    finally:
        tmp_path.chmod(0o700)
