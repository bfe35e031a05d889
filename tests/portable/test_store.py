# The L0 store policy on MemoryStore (portable: CPython and MicroPython).
#
# Entries are real ipfs-log v2 entries built with create_entry, signed by a fake "signature"
# (HMAC-SHA256 keyed by the public key, twice) so the test needs no Ed25519 on MicroPython; the
# store's verifier is the matching fake check, so a wrong key, a wrong signature and a wrong CID are
# all caught exactly as with real signatures.

from harness import TestCase

from node._compat import hmac_sha256
from node.errors import LocalProtocolError
from node.sync.entry import create_entry, decode_entry
from node.sync.store import (
    DUPLICATE,
    REFUSED,
    REFUSED_OVER_QUOTA,
    STORED,
    Limits,
    MemoryStore,
)

PUB_A = bytes(range(32))
PUB_B = bytes(range(100, 132))
LOG_A = "/orbitdb/bafy-a/aa_berty_group_messages"
LOG_B = "/orbitdb/bafy-b/bb_berty_group_messages"
LOG_C = "/orbitdb/bafy-c/cc_berty_group_metadata"
DAY = 24 * 3600


def fake_verify(public_key, message, signature):
    return signature == hmac_sha256(public_key, message) * 2


def signer(public_key):
    def sign(message):
        return hmac_sha256(public_key, message) * 2

    return sign


def make(log_id, pub, time, parents=(), payload="x", signer_pub=None):
    return create_entry(
        log_id, payload, [p.cid for p in parents], [], time, pub, signer(signer_pub or pub)
    )


def new_store(**limits):
    store = MemoryStore(fake_verify, Limits(**limits))
    store.add_log(LOG_A, PUB_A)
    store.add_log(LOG_B, PUB_B)
    return store


def statuses(results):
    return [(r.status, r.reason) for r in results]


class TestPut(TestCase):
    def test_store_duplicate_and_heads_out_of_order(self):
        store = new_store()
        e1 = make(LOG_A, PUB_A, 1)
        e2 = make(LOG_A, PUB_A, 2, [e1])
        e3 = make(LOG_A, PUB_A, 2, [e1], payload="fork")
        e4 = make(LOG_A, PUB_A, 3, [e2, e3])
        # The child arrives before its parents: stored anyway, and it is the only head.
        self.assertEqual(statuses(store.put_entries([e4], 10)), [(STORED, "")])
        self.assertEqual(store.heads(LOG_A), [e4.cid])
        results = store.put_entries([e2, e1, e2], 11)
        self.assertEqual(statuses(results), [(STORED, ""), (STORED, ""), (DUPLICATE, "")])
        self.assertEqual(store.heads(LOG_A), [e4.cid])
        store.put_entries([e3], 12)
        self.assertEqual(store.heads(LOG_A), [e4.cid])
        self.assertTrue(store.has(e3.cid))
        self.assertEqual(store.get_block(e3.cid), e3.block)
        self.assertIsNone(store.get_block(make(LOG_A, PUB_A, 9).cid))
        info = store.log_info(LOG_A)
        self.assertEqual(info.entry_count, 4)
        self.assertEqual(info.byte_count, sum(len(e.block) for e in (e1, e2, e3, e4)))
        self.assertEqual(info.address, LOG_A)
        self.assertEqual(info.heads, [e4.cid])
        stats = store.stats()
        self.assertEqual(stats["stored"], 4)
        self.assertEqual(stats["duplicate"], 1)
        self.assertEqual(stats["entries"], 4)
        self.assertEqual(stats["logs"], 2)

    def test_concurrent_heads(self):
        store = new_store()
        root = make(LOG_A, PUB_A, 1)
        left = make(LOG_A, PUB_A, 2, [root], payload="left")
        right = make(LOG_A, PUB_A, 2, [root], payload="right")
        store.put_entries([root, left, right], 5)
        self.assertEqual(store.heads(LOG_A), sorted([left.cid, right.cid]))
        self.assertEqual(store.heads(LOG_B), [])

    def test_links_across_logs_do_not_hide_heads(self):
        store = new_store()
        a1 = make(LOG_A, PUB_A, 1)
        b1 = make(LOG_B, PUB_B, 2, [a1])
        store.put_entries([a1, b1], 5)
        self.assertEqual(store.heads(LOG_A), [a1.cid])
        self.assertEqual(store.heads(LOG_B), [b1.cid])

    def test_keyset_and_entries_by_keys(self):
        store = new_store()
        e1 = make(LOG_A, PUB_A, 1)
        e2 = make(LOG_A, PUB_A, 2, [e1])
        store.put_entries([e2, e1], 5)
        keys = list(store.keyset(LOG_A))
        self.assertEqual(keys, [(1, e1.cid.digest), (2, e2.cid.digest)])
        missing = (7, bytes(32))
        found = store.entries_by_keys(LOG_A, [keys[1], missing, keys[0]])
        self.assertEqual([e.cid for e in found], [e2.cid, e1.cid])
        self.assertEqual(len(store.keyset(LOG_B)), 0)

    def test_commit_acknowledges_stored_and_duplicates_once(self):
        store = new_store()
        e1 = make(LOG_A, PUB_A, 1)
        e2 = make(LOG_A, PUB_A, 2, [e1])
        bad = make(LOG_A, PUB_A, 3, signer_pub=PUB_B)
        store.put_entries([e1, e1, bad], 5)
        store.put_entries([e2, e1], 6)
        self.assertEqual(store.pending(), 2)
        self.assertEqual(store.commit(), [e1.cid, e2.cid])
        self.assertEqual(store.commit(), [])
        store.put_entries([e2], 7)
        self.assertEqual(store.commit(), [e2.cid])


class TestRefusals(TestCase):
    def test_unknown_log(self):
        store = new_store()
        result = store.put_entries([make(LOG_C, PUB_A, 1)], 5)[0]
        self.assertEqual((result.status, result.reason), (REFUSED, "unknown-log"))
        self.assertEqual(store.stats()["refused.unknown-log"], 1)

    def test_too_large(self):
        small = make(LOG_A, PUB_A, 1)
        big = make(LOG_A, PUB_A, 2, payload="y" * 600)
        limit = len(big.block) - 1
        store = new_store(max_entry_bytes=limit)
        results = store.put_entries([small, big], 5)
        self.assertEqual(statuses(results), [(STORED, ""), (REFUSED, "too-large")])
        self.assertFalse(store.has(big.cid))
        self.assertIn("limit %d" % limit, results[1].detail)

    def test_bad_signature_wrong_key_wrong_cid_are_refused_and_counted(self):
        store = new_store()
        good = make(LOG_A, PUB_A, 1)
        bad_sig = make(LOG_A, PUB_A, 2, signer_pub=PUB_B)
        wrong_key = make(LOG_A, PUB_B, 3)  # validly signed, by another log's key
        wrong_cid = decode_entry(good.block, bad_sig.cid)
        results = store.put_entries([bad_sig, wrong_key, wrong_cid, good], 5)
        self.assertEqual(
            statuses(results),
            [
                (REFUSED, "integrity"),
                (REFUSED, "integrity"),
                (REFUSED, "integrity"),
                (STORED, ""),
            ],
        )
        self.assertIn("sig", results[0].detail)
        self.assertIn("key", results[1].detail)
        self.assertIn("hashes to", results[2].detail)
        for entry in (bad_sig, wrong_key):
            self.assertFalse(store.has(entry.cid))
        self.assertEqual(store.stats()["refused.integrity"], 3)
        self.assertEqual(store.log_info(LOG_A).entry_count, 1)

    def test_add_log_rules(self):
        store = new_store()
        self.assertRaises(LocalProtocolError, store.add_log, LOG_A, PUB_B)
        self.assertRaises(LocalProtocolError, store.add_log, "", PUB_A)
        self.assertRaises(LocalProtocolError, store.add_log, LOG_C, PUB_A[:31])
        self.assertRaises(LocalProtocolError, store.add_log, LOG_C, PUB_A, 1)
        self.assertRaises(LocalProtocolError, store.add_log, LOG_C, PUB_A, False, 0)
        self.assertRaises(LocalProtocolError, store.log_info, LOG_C)
        store.add_log(LOG_A, PUB_A, True, 5000)
        info = store.log_info(LOG_A)
        self.assertEqual((info.pinned, info.quota), (True, 5000))
        self.assertEqual(store.logs(), sorted([LOG_A, LOG_B]))

    def test_limits_validated(self):
        self.assertRaises(LocalProtocolError, Limits, 0)
        self.assertRaises(LocalProtocolError, Limits, 10, True)
        self.assertRaises(LocalProtocolError, Limits, 10, 10, 10, -1)
        self.assertRaises(LocalProtocolError, new_store().put_entries, [], -1)


class TestSpace(TestCase):
    def test_eviction_by_age_times_size(self):
        old_small = make(LOG_A, PUB_A, 1, payload="s")
        young_big = make(LOG_A, PUB_A, 2, payload="b" * 1500)
        newcomer = make(LOG_A, PUB_A, 3, payload="n")
        a, b, c = len(old_small.block), len(young_big.block), len(newcomer.block)
        store = new_store(max_total_bytes=a + b + c - 1)
        store.put_entries([old_small], 0)
        store.put_entries([young_big], 50)
        # At t=100 weights are 100*a for the old small one and 50*b for the young big one.
        self.assertGreater(50 * b, 100 * a)
        self.assertEqual(statuses(store.put_entries([newcomer], 100)), [(STORED, "")])
        self.assertFalse(store.has(young_big.cid))
        self.assertTrue(store.has(old_small.cid))
        stats = store.stats()
        self.assertEqual((stats["evicted"], stats["evicted_bytes"]), (1, b))
        self.assertEqual(stats["bytes"], a + c)

    def test_per_log_quota_evicts_only_that_log(self):
        a1 = make(LOG_A, PUB_A, 1)
        a2 = make(LOG_A, PUB_A, 2, [a1])
        b1 = make(LOG_B, PUB_B, 1, payload="older and bigger" * 10)
        store = new_store()
        store.add_log(LOG_A, PUB_A, False, len(a1.block) + len(a2.block) - 1)
        store.put_entries([b1], 0)
        store.put_entries([a1], 10)
        store.put_entries([a2], 20)
        self.assertFalse(store.has(a1.cid))
        self.assertTrue(store.has(a2.cid))
        self.assertTrue(store.has(b1.cid))
        self.assertEqual(store.heads(LOG_A), [a2.cid])

    def test_full_unpinned_log_is_evicted_to_a_low_water_mark(self):
        entries = [make(LOG_A, PUB_A, 1, payload="e" * 200)]
        for t in range(2, 41):
            entries.append(make(LOG_A, PUB_A, t, [entries[-1]], payload="e" * 200))
        quota = sum(len(e.block) for e in entries[:32])  # exactly 32 entries fit
        store = new_store()
        store.add_log(LOG_A, PUB_A, False, quota)
        for i, entry in enumerate(entries[:32]):
            store.put_entries([entry], i)
        self.assertEqual(store.stats().get("evicted", 0), 0)
        store.put_entries([entries[32]], 100)  # overflows: evicts what is needed + 1/16 quota
        evicted = store.stats()["evicted"]
        self.assertGreaterEqual(evicted, 3)
        store.put_entries([entries[33]], 101)  # fits in the headroom: nothing more evicted
        self.assertEqual(store.stats()["evicted"], evicted)
        bound = quota - quota // 16 + len(entries[33].block)  # low-water mark, then one more
        self.assertLessEqual(store.log_info(LOG_A).byte_count, bound)
        self.assertEqual(store.log_info(LOG_A).entry_count, 34 - evicted)
        self.assertTrue(store.has(entries[33].cid))

    def test_pinned_log_over_quota_evicts_only_what_is_needed(self):
        entries = [make(LOG_A, PUB_A, 1, payload="e" * 200)]
        for t in range(2, 12):
            entries.append(make(LOG_A, PUB_A, t, [entries[-1]], payload="e" * 200))
        quota = sum(len(e.block) for e in entries[:10])
        store = new_store()
        store.add_log(LOG_A, PUB_A, True, quota)
        for i, entry in enumerate(entries):
            store.put_entries([entry], i)
        need = len(entries[10].block)
        minimal, freed = 0, 0
        while freed < need:  # the oldest entries go first (same size class, oldest weigh most)
            freed += len(entries[minimal].block)
            minimal += 1
        self.assertEqual(store.stats()["evicted"], minimal)

    def test_unpinned_never_evicts_pinned_and_pinned_goes_last(self):
        p1 = make(LOG_A, PUB_A, 1, payload="p" * 300)
        p2 = make(LOG_A, PUB_A, 2, [p1], payload="p" * 300)
        u1 = make(LOG_B, PUB_B, 1, payload="u" * 100)
        u2 = make(LOG_B, PUB_B, 2, [u1])
        u3 = make(LOG_B, PUB_B, 3, [u2])
        size = len(p1.block) + len(p2.block) + len(u1.block)
        store = new_store(max_total_bytes=size)
        store.add_log(LOG_A, PUB_A, True)
        store.put_entries([p1, p2], 0)
        store.put_entries([u1], 10)
        # u2 may evict u1 (its own unpinned log) but not the older, bigger pinned p1.
        self.assertEqual(statuses(store.put_entries([u2], 1000)), [(STORED, "")])
        self.assertFalse(store.has(u1.cid))
        self.assertTrue(store.has(p1.cid))
        # A pinned entry evicts unpinned ones first, even when the pinned p1 weighs more.
        p3 = make(LOG_A, PUB_A, 3, [p2], payload="q")
        self.assertEqual(statuses(store.put_entries([p3], 2000)), [(STORED, "")])
        self.assertFalse(store.has(u2.cid))
        self.assertTrue(store.has(p1.cid))
        # With only pinned entries left, an unpinned entry finds no room.
        result = store.put_entries([u3], 3000)[0]
        self.assertEqual((result.status, result.reason), (REFUSED, "quota"))
        self.assertEqual(store.stats()["refused.quota"], 1)

    def test_pinned_heads_are_never_evicted(self):
        p1 = make(LOG_A, PUB_A, 1, payload="p" * 400)
        h1 = make(LOG_A, PUB_A, 2, [p1], payload="left")
        h2 = make(LOG_A, PUB_A, 2, [p1], payload="right")
        more = make(LOG_A, PUB_A, 3, [], payload="z" * 400)
        total = len(p1.block) + len(h1.block) + len(h2.block)
        store = new_store(max_total_bytes=total + len(more.block) - 1)
        store.add_log(LOG_A, PUB_A, True)
        store.put_entries([p1, h1, h2], 0)
        # Room for `more` needs one eviction: p1 (not a head) goes, h1 and h2 stay.
        self.assertEqual(statuses(store.put_entries([more], 100)), [(STORED, "")])
        self.assertFalse(store.has(p1.cid))
        heads = store.heads(LOG_A)
        self.assertEqual(heads, sorted([h1.cid, h2.cid, more.cid]))
        # Now every stored entry is a head of a pinned log: nothing may be evicted for space.
        last = make(LOG_A, PUB_A, 4, [], payload="w" * 600)
        result = store.put_entries([last], 10 * DAY)[0]
        self.assertEqual(result.reason, "quota")
        self.assertEqual(store.heads(LOG_A), heads)

    def test_all_or_nothing_eviction(self):
        e1 = make(LOG_B, PUB_B, 1)
        p1 = make(LOG_A, PUB_A, 1, payload="p" * 500)
        big = make(LOG_B, PUB_B, 2, [e1], payload="b" * 900)
        store = new_store(max_total_bytes=len(e1.block) + len(p1.block) + 10)
        store.add_log(LOG_A, PUB_A, True)
        store.put_entries([e1, p1], 0)
        # Evicting e1 would not free enough, and p1 is off limits: nothing is evicted.
        self.assertEqual(store.put_entries([big], 100)[0].reason, "quota")
        self.assertTrue(store.has(e1.cid))
        self.assertNotIn("evicted", store.stats())

    def test_expiry_removes_old_entries_even_pinned_heads(self):
        store = new_store(expiry_seconds=30 * DAY)
        store.add_log(LOG_A, PUB_A, True)
        e1 = make(LOG_A, PUB_A, 1)
        e2 = make(LOG_A, PUB_A, 2, [e1])
        e3 = make(LOG_A, PUB_A, 3, [e2])
        store.put_entries([e1, e2], 0)
        store.put_entries([e3], 5 * DAY)
        self.assertEqual(store.expire(30 * DAY - 1), 0)
        self.assertEqual(store.expire(30 * DAY), 2)
        self.assertEqual(store.heads(LOG_A), [e3.cid])
        self.assertEqual(list(store.keyset(LOG_A)), [(3, e3.cid.digest)])
        self.assertEqual(store.expire(35 * DAY), 1)
        self.assertEqual(store.heads(LOG_A), [])
        stats = store.stats()
        self.assertEqual((stats["expired"], stats["entries"], stats["bytes"]), (3, 0, 0))

    def test_eviction_surfaces_parents_as_heads(self):
        e1 = make(LOG_B, PUB_B, 1)
        e2 = make(LOG_B, PUB_B, 2, [e1], payload="m" * 800)
        e3 = make(LOG_B, PUB_B, 3, [e2])
        store = new_store(max_total_bytes=len(e1.block) + len(e2.block) + len(e3.block))
        store.put_entries([e1, e2, e3], 0)
        self.assertEqual(store.heads(LOG_B), [e3.cid])
        e4 = make(LOG_B, PUB_B, 4, [e3])
        store.put_entries([e4], 100)  # evicts e2, the heaviest
        self.assertFalse(store.has(e2.cid))
        self.assertEqual(store.heads(LOG_B), sorted([e1.cid, e4.cid]))


class TestLogLookups(TestCase):
    def test_has_log_count_and_sign_pub_without_sorting(self):
        store = new_store()
        self.assertTrue(store.has_log(LOG_A))
        self.assertFalse(store.has_log(LOG_C))
        self.assertEqual(store.log_count(), 2)
        self.assertEqual(store.sign_pub_of(LOG_B), PUB_B)
        self.assertIsNone(store.sign_pub_of(LOG_C))


class TestOverQuotaAndHoles(TestCase):
    def test_an_unpinned_log_keeps_its_newest_and_a_reader_is_told_of_the_hole(self):
        chain = [make(LOG_A, PUB_A, 1, payload="p" * 400)]
        for time in range(2, 11):
            chain.append(make(LOG_A, PUB_A, time, [chain[-1]], payload="p" * 400))
        size = len(chain[0].block)
        store = new_store()
        store.add_log(LOG_A, PUB_A, quota=4 * size + size // 2)
        self.assertEqual(store.hole(LOG_A), "")
        # Newest first, as a sender does: four fit, every older one is refused unwritten.
        results = store.put_entries(list(reversed(chain)), 10)
        self.assertEqual(statuses(results[:4]), [(STORED, "")] * 4)
        self.assertEqual([r.reason for r in results[4:]], [REFUSED_OVER_QUOTA] * 6)
        self.assertIn("relay keeps the newest 4 entries", results[4].detail)
        self.assertEqual(store.stats().get("evicted", 0), 0)
        self.assertEqual(store.missing_parents(LOG_A), [chain[5].cid])
        self.assertTrue(
            store.hole(LOG_A).startswith(
                "entries before lamport time 7 are no longer held by any relay you reached"
            )
        )
        # A newer entry evicts the oldest by key (not by age x size), and the hole moves.
        newer = make(LOG_A, PUB_A, 11, [chain[-1]], payload="p" * 400)
        self.assertEqual(statuses(store.put_entries([newer], 20)), [(STORED, "")])
        self.assertFalse(store.has(chain[6].cid))
        self.assertTrue(store.has(chain[7].cid))
        self.assertEqual(store.missing_parents(LOG_A), [chain[6].cid])
