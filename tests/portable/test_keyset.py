# Portable tests for node.sync.keyset: order, rank/key_at, fingerprints against brute force.

import hashlib

from harness import TestCase

from node.errors import LocalProtocolError
from node.sync.keyset import CHUNK, KeySet, fingerprint_of, id_int
from node.varint import encode_uvarint


def make_key(i, time=None):
    digest = hashlib.sha256(b"k%d" % i).digest()
    return (i // 3 if time is None else time, digest)


def brute_fingerprint(keys, lo, hi):
    total = 0
    for key in keys[lo:hi]:
        total += int.from_bytes(key[1], "little")
    total %= 1 << 256
    data = total.to_bytes(32, "little") + encode_uvarint(hi - lo)
    return hashlib.sha256(data).digest()[:16]


def pseudo_random(seed):
    state = seed
    while True:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        yield state


class KeySetTests(TestCase):
    def test_empty(self):
        ks = KeySet()
        self.assertEqual(len(ks), 0)
        self.assertEqual(ks.rank(make_key(1)), 0)
        self.assertEqual(ks.fingerprint(0, 0), brute_fingerprint([], 0, 0))
        self.assertEqual(ks.keys_between(0, 5), [])
        self.assertRaises(IndexError, ks.key_at, 0)
        self.assertFalse(make_key(1) in ks)

    def test_fingerprint_known_answer(self):
        # sum of one ID is the ID itself; count 1.
        key = (5, bytes(range(32)))
        ks = KeySet([key])
        expected = hashlib.sha256(bytes(range(32)) + b"\x01").digest()[:16]
        self.assertEqual(ks.fingerprint(0, 1), expected)
        self.assertEqual(fingerprint_of(id_int(key[1]), 1), expected)
        # the sum wraps mod 2**256
        ones = (1, b"\xff" * 32)
        two = KeySet([ones, (2, b"\x01" + bytes(31))])
        self.assertEqual(two.fingerprint(0, 2), fingerprint_of(0, 2))

    def test_insert_remove_rank_and_fingerprints(self):
        rnd = pseudo_random(7)
        reference = []
        ks = KeySet()
        for _step in range(3 * CHUNK + 50):
            i = next(rnd) % 1000
            key = make_key(i)
            if next(rnd) % 4 == 0 and reference:
                victim = reference[next(rnd) % len(reference)]
                self.assertTrue(ks.discard(victim))
                reference.remove(victim)
                self.assertFalse(ks.discard(victim))
            added = ks.add(key)
            self.assertEqual(added, key not in reference)
            if added:
                reference.append(key)
                reference.sort()
        self.assertEqual(len(ks), len(reference))
        self.assertEqual(list(ks), reference)
        for index, key in enumerate(reference):
            self.assertEqual(ks.key_at(index), key)
            self.assertEqual(ks.rank(key), index)
            self.assertTrue(key in ks)
        n = len(reference)
        for lo, hi in ((0, n), (0, 1), (3, 4), (5, n - 7), (n // 2, n), (n, n), (7, 3)):
            self.assertEqual(ks.fingerprint(lo, hi), brute_fingerprint(reference, lo, max(lo, hi)))
            self.assertEqual(ks.keys_between(lo, hi), reference[lo : max(lo, hi)])

    def test_bulk_load_equals_incremental(self):
        keys = sorted(make_key(i) for i in range(5 * CHUNK + 3))
        bulk = KeySet.from_sorted(keys)
        incremental = KeySet()
        for key in reversed(keys):
            incremental.add(key)
        n = len(keys)
        for lo, hi in ((0, n), (1, n - 1), (CHUNK, 2 * CHUNK), (CHUNK - 1, CHUNK + 1)):
            self.assertEqual(bulk.fingerprint(lo, hi), incremental.fingerprint(lo, hi))
            self.assertEqual(bulk.fingerprint(lo, hi), brute_fingerprint(keys, lo, hi))
        self.assertEqual(bulk.rank((10**9, bytes(32))), n)
        self.assertEqual(bulk.rank((0, bytes(32))), 0)

    def test_remove_everything(self):
        keys = sorted(make_key(i) for i in range(2 * CHUNK + 5))
        ks = KeySet.from_sorted(keys)
        for key in keys:
            ks.remove(key)
        self.assertEqual(len(ks), 0)
        self.assertRaises(KeyError, ks.remove, keys[0])
        ks.add(keys[3])
        self.assertEqual(ks.key_at(0), keys[3])

    def test_rejects_bad_keys(self):
        ks = KeySet()
        self.assertRaises(LocalProtocolError, ks.add, (1, b"short"))
        self.assertRaises(LocalProtocolError, ks.add, (-1, bytes(32)))
        self.assertRaises(LocalProtocolError, KeySet.from_sorted, [make_key(5), make_key(1)])


class SketchMaintenanceTests(TestCase):
    def test_sketch_and_estimator_follow_add_and_discard(self):
        keys = [make_key(i) for i in range(700)]
        grown = KeySet.from_sorted(sorted(keys[:400]))
        grown.build_sketch()
        for k in keys[400:]:
            grown.add(k)
        for k in keys[::5]:
            grown.discard(k)
        fresh = KeySet.from_sorted(sorted(set(keys) - set(keys[::5])))
        self.assertEqual(grown.estimator_bytes(10), fresh.estimator_bytes(10))
        for m in (1, 16, 720):
            a, b = grown.sketch(m), fresh.sketch(m)
            self.assertEqual((a.count, a.txor, a.pxor, a.cxor), (b.count, b.txor, b.pxor, b.cxor))
        self.assertRaises(LocalProtocolError, grown.sketch, 7)

    def test_find_item(self):
        keys = sorted(make_key(i) for i in range(300))
        ks = KeySet.from_sorted(keys)
        for k in keys[::17]:
            self.assertEqual(ks.find_item(k[0], k[1][:16]), k)
            self.assertEqual(ks.find_item(k[0] + 1000, k[1][:16]), None)


class SmallSketchTests(TestCase):
    def test_small_sets_build_the_same_sketch_without_caching_it(self):
        keys = sorted(make_key(i) for i in range(150))
        direct = KeySet.from_sorted(keys)
        cached = KeySet.from_sorted(keys)
        cached.build_sketch()
        for m in (1, 8, 90, 720):
            a = direct.sketch(m)
            b = cached.sketch(m)
            self.assertEqual((a.count, a.txor, a.pxor, a.cxor), (b.count, b.txor, b.pxor, b.cxor))
        self.assertIsNone(direct._table)  # nothing kept for a small set


class PackedStorageTests(TestCase):
    """The keys are kept as packed records; these pin the edges of that representation."""

    def test_rank_of_probes_matches_tuple_order(self):
        keys = sorted(make_key(i, time=i % 5) for i in range(3 * CHUNK))
        ks = KeySet.from_sorted(keys)
        top = (1 << 64) - 1
        probes = [
            (-1, bytes(32)),
            (0, b""),
            (2, b"\x80"),
            (2, keys[100][1][:3]),
            (keys[100][0], keys[100][1]),
            (keys[100][0], keys[100][1] + b"\x00"),
            (3, b"\xff" * 32),
            (top, b"\xff" * 32),
            (top + 1, bytes(32)),
            (10**30, b""),
        ]
        for probe in probes:
            expected = sum(1 for key in keys if key < probe)
            self.assertEqual(ks.rank(probe), expected)

    def test_full_chunk_of_largest_ids_sums_exactly(self):
        # 2 * CHUNK - 1 keys in one chunk (the most a chunk holds), IDs and times near their
        # maxima: the worst case for the in-chunk sums.
        top = (1 << 64) - 1
        keys = [(top - (i & 1), b"\xff" * 31 + bytes((i,))) for i in range(2 * CHUNK - 1)]
        ks = KeySet()
        for key in keys:
            ks.add(key)
        keys.sort()
        n = len(keys)
        for lo in range(0, n, 37):
            for hi in range(lo, n + 1, 11):
                self.assertEqual(ks.fingerprint(lo, hi), brute_fingerprint(keys, lo, hi))
        self.assertEqual(ks.fingerprint(0, n), brute_fingerprint(keys, 0, n))
        self.assertEqual(list(ks), keys)

    def test_from_sorted_reads_any_iterable(self):
        keys = sorted(make_key(i) for i in range(CHUNK + 9))
        streamed = KeySet.from_sorted(key for key in keys)
        self.assertEqual(list(streamed), keys)
        self.assertEqual(streamed.fingerprint(0, len(keys)), brute_fingerprint(keys, 0, len(keys)))
        self.assertEqual(len(KeySet.from_sorted(iter([]))), 0)

    def test_keys_come_back_as_int_and_bytes(self):
        ks = KeySet([make_key(i) for i in range(10)])
        for time, digest in list(ks) + ks.keys_between(0, 10) + [ks.key_at(3)]:
            self.assertTrue(type(time) is int)
            self.assertTrue(type(digest) is bytes)
            self.assertEqual(len(digest), 32)

    def test_times_must_fit_64_bits_and_odd_lookups_are_absent(self):
        ks = KeySet([make_key(1)])
        self.assertRaises(LocalProtocolError, ks.add, (1 << 64, bytes(32)))
        self.assertTrue(ks.add(((1 << 64) - 1, bytes(32))))
        for odd in ((1 << 64, bytes(32)), (-1, bytes(32)), (0, b"x"), "key", (1, 2, 3), (1, None)):
            self.assertFalse(odd in ks)
            self.assertFalse(ks.discard(odd))
        self.assertEqual(len(ks), 2)
