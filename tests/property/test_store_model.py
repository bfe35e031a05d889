"""The store contract: SQLiteStore against MemoryStore as the model (Hypothesis state machine).

Both stores get the same operations (batches of puts drawn from a fixed pool of real, Ed25519-signed
entries and of bad ones, commits, expiry, pin/quota changes, reopening the database) and must give
the same observable results: every PutResult (hence every refusal and eviction decision), the
acknowledgements, heads, keys, blocks, log metadata and counters. Limits are small so that eviction
and expiry happen constantly.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from node.store.sqlite import SQLiteStore
from node.sync.entry import Entry, create_entry
from node.sync.store import Limits, MemoryStore, Store
from tests.store_helpers import SUITE, Writer, tampered_cid

LOGS = [
    Writer(seed, "/orbitdb/bafy-%d/%02x_berty_group_messages" % (seed, seed)) for seed in (1, 2, 3)
]
STRANGER = Writer(9, "/orbitdb/bafy-9/09_berty_group_messages")  # never registered
LIMITS = {
    "max_entry_bytes": 1500,
    "max_log_bytes": 5000,
    "max_total_bytes": 9000,
    "expiry_seconds": 900,
}


def _log_entries(writer: Writer, count: int) -> list[Entry]:
    """A DAG with forks and merges; payload sizes vary so that weights differ."""
    entries: list[Entry] = []
    for i in range(count):
        parents: list[Entry] = []
        if i >= 1:
            parents.append(entries[i - 1])
        if i >= 3 and i % 3 == 0:
            parents.append(entries[i - 3])  # merge with an older branch
        if i % 4 == 2:
            parents = [entries[i - 2]]  # a fork: a sibling of entry i - 1
        time = 1 + max((p.clock_time for p in parents), default=0)
        entries.append(writer.entry(time, parents, payload="p%d" % i + "x" * ((i * 97) % 400)))
    return entries


GOOD = [entry for writer in LOGS for entry in _log_entries(writer, 10)]
BAD = [
    LOGS[0].entry(50, signer=LOGS[1]),  # A's log, B's key: key mismatch
    create_entry(LOGS[0].log_id, "forged", [], [], 51, LOGS[0].sign_pub, LOGS[1].sign),
    tampered_cid(GOOD[0], GOOD[1]),
    LOGS[1].entry(52, payload="y" * 1500),  # too large
    STRANGER.entry(1),  # unknown log
]
POOL = GOOD + BAD
CIDS = sorted({entry.cid for entry in POOL})


class StoreContract(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="store-model-"))
        self.limits = Limits(**LIMITS)
        self.model: Store = MemoryStore(SUITE.ed25519_verify, self.limits)
        self.real = SQLiteStore.open_in(self.directory, SUITE.ed25519_verify, self.limits)
        self.now = 10_000
        for writer in LOGS:
            for store in (self.model, self.real):
                store.add_log(writer.log_id, writer.sign_pub)

    def teardown(self) -> None:
        self.real.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(
        batch=st.lists(st.integers(0, len(POOL) - 1), max_size=8),
        dt=st.sampled_from([0, 0, 0, 1, 7, 60, 200]),  # often 0: equal weights, tie-breaks
    )
    def put(self, batch: list[int], dt: int) -> None:
        self.now += dt
        entries = [POOL[i] for i in batch]
        expected = self.model.put_entries(entries, self.now)
        actual = self.real.put_entries(entries, self.now)
        assert actual == expected
        for want, got in zip(expected, actual, strict=True):
            assert got.detail == want.detail

    @rule()
    def commit(self) -> None:
        assert self.real.commit() == self.model.commit()

    @rule(dt=st.integers(0, 600))
    def expire(self, dt: int) -> None:
        self.now += dt
        assert self.real.expire(self.now) == self.model.expire(self.now)

    @rule(
        log=st.sampled_from(LOGS),
        pinned=st.booleans(),
        quota=st.none() | st.integers(1000, 6000),
    )
    def configure(self, log: Writer, pinned: bool, quota: int | None) -> None:
        for store in (self.model, self.real):
            store.add_log(log.log_id, log.sign_pub, pinned, quota)

    @rule()
    def reopen(self) -> None:
        self.commit()
        self.real.close()
        self.real = SQLiteStore.open_in(self.directory, SUITE.ed25519_verify, self.limits)

    @invariant()
    def same_observable_state(self) -> None:
        real, model = self.real, self.model
        assert real.logs() == model.logs()
        for log_id in model.logs():
            assert real.log_info(log_id) == model.log_info(log_id)
            keys = list(model.keyset(log_id))
            assert list(real.keyset(log_id)) == keys
            assert len(real.keyset(log_id)) == len(keys)
            assert [e.cid for e in real.entries_by_keys(log_id, keys)] == [
                e.cid for e in model.entries_by_keys(log_id, keys)
            ]
            assert real.missing_parents(log_id) == model.missing_parents(log_id)
            assert real.hole(log_id) == model.hole(log_id)
        for cid in CIDS:
            assert real.get_block(cid) == model.get_block(cid)
            assert real.has(cid) == model.has(cid)
        assert real.stats() == model.stats()
        assert real.pending() == model.pending()
        stats = model.stats()
        assert stats["bytes"] <= self.limits.max_total_bytes


StoreContract.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreContract = StoreContract.TestCase


def test_committed_state_survives_a_crash_identically() -> None:
    """Without a commit, SQLite forgets the pending work and equals a model fed only the
    committed part."""
    directory = Path(tempfile.mkdtemp(prefix="store-crash-"))
    try:
        limits = Limits(**LIMITS)
        model = MemoryStore(SUITE.ed25519_verify, limits)
        real = SQLiteStore.open_in(directory, SUITE.ed25519_verify, limits)
        for store in (model, real):
            for writer in LOGS:
                store.add_log(writer.log_id, writer.sign_pub)
        committed, lost = GOOD[:14], GOOD[14:]
        model.put_entries(committed, 100)
        real.put_entries(committed, 100)
        assert real.commit() == model.commit()
        real.put_entries(lost, 200)
        real.close()  # the "crash": the open transaction is rolled back
        real = SQLiteStore.open_in(directory, SUITE.ed25519_verify, limits)
        for log_id in model.logs():
            assert real.log_info(log_id) == model.log_info(log_id)
            assert list(real.keyset(log_id)) == list(model.keyset(log_id))
        assert real.stats() == model.stats()
        real.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
