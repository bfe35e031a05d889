"""Reconciliation benchmark: two in-process peers over a byte- and round-trip-counting link.

Usage: python bench/sync.py [--quick]

One JSON line per case with n, d, layout ("clustered": the differences are the newest keys;
"scattered": uniformly random keys), sides (1: the initiator lacks d keys; 2: each side lacks about
half of the d), rtt (request/response exchanges, i.e. half-rounds / 2 rounded up), overhead_bytes
(every reconciliation byte in both directions; entry bodies are not counted and not sent here),
cpu_ms (process CPU time of both sides' reconciliation, with each KeySet's IBLT already built, as
a store keeps it: sketch_build_ms is the one-off O(n) build of both sides' IBLTs, measured apart),
and beside them:
  lower_bound_bytes  d x 32 (the IDs of the differences, once)
  idlist_bytes       a full ID-list exchange: the initiator sends all its IDs (varint count +
                     32 B each), the responder answers a bitmap of the ones it lacks
                     (varint count + ceil(n/8) B) and pushes the rest
  orbitdb_rtt        the ipfs-log/orbit-db model (sync-perf.md section 2.1): 1 round for the
                     heads exchange, then rounds of at most 32 parallel block fetches, each fetched
                     entry revealing its next and refs (go-orbit-db pointer rule: refs to the
                     entries 1, 2, 4, ..., 64 back, at most 7); present entries are not followed.
                     Two-sided: both directions run in parallel, the larger count is reported.
The last lines are many-logs cases (100 logs in one session).
"""

import hashlib
import json
import random
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 2)[0] if "/" in __file__ else "..")

from node.sync.keyset import KeySet
from node.sync.reconcile import Reconciler

KeyT = tuple[int, bytes]


def make_keys(n: int, seed: int) -> "list[KeyT]":
    return [(i, hashlib.sha256(b"%d:%d" % (seed, i)).digest()) for i in range(n)]


def run_exchange(a_sets: "list[KeySet]", b_sets: "list[KeySet]") -> "tuple[int, int, float]":
    """Returns (half_rounds, bytes, cpu_ms) of one reconciliation."""
    cpu0 = time.process_time()
    initiator = Reconciler(a_sets, True)
    responder = Reconciler(b_sets, False)
    frames = initiator.start()
    half_rounds = 1 if frames else 0
    total = sum(len(f) for f in frames)
    receiver = responder
    while frames:
        out: list[bytes] = []
        for frame in frames:
            out.extend(receiver.receive(frame))
        frames = out
        if out:
            half_rounds += 1
            total += sum(len(f) for f in out)
        receiver = initiator if receiver is responder else responder
    cpu_ms = (time.process_time() - cpu0) * 1000.0
    assert initiator.done and responder.done
    return half_rounds, total, cpu_ms


def orbitdb_rounds(n: int, missing: "set[int]") -> int:
    """Rounds for a peer lacking `missing` (indexes of a linear log of n) to fetch them."""
    if not missing:
        return 1  # heads exchange only
    known = [n - 1] if (n - 1) in missing else []
    seen = set(known)
    fetched = 0
    rounds = 1
    while known:
        rounds += 1
        known.sort(reverse=True)
        batch, known = known[:32], known[32:]
        for index in batch:
            fetched += 1
            step = 1
            while step <= 64 and index - step >= 0:
                link = index - step
                if link in missing and link not in seen:
                    seen.add(link)
                    known.append(link)
                step *= 2
    return rounds


def idlist_bytes(n_initiator: int) -> int:
    varint = 1 if n_initiator < 128 else 2 if n_initiator < 16384 else 3
    return varint + 32 * n_initiator + varint + (n_initiator + 7) // 8


def case(n: int, d: int, layout: str, sides: int, seed: int) -> "dict[str, object]":
    keys = make_keys(n, seed)
    rng = random.Random(seed)
    if layout == "clustered":
        diff = list(range(n - d, n))
    else:
        diff = sorted(rng.sample(range(n), d))
    if sides == 1:
        lacks_a = set(diff)
        lacks_b: set[int] = set()
    else:
        lacks_a = set(diff[0::2])
        lacks_b = set(diff[1::2])
    a = KeySet.from_sorted([k for i, k in enumerate(keys) if i not in lacks_a])
    b = KeySet.from_sorted([k for i, k in enumerate(keys) if i not in lacks_b])
    cpu0 = time.process_time()
    a.build_sketch()
    b.build_sketch()
    build_ms = (time.process_time() - cpu0) * 1000.0
    half_rounds, total, cpu_ms = run_exchange([a], [b])
    orbit = orbitdb_rounds(n, lacks_a)
    if lacks_b:
        orbit = max(orbit, orbitdb_rounds(n, lacks_b))
    return {
        "n": n,
        "d": d,
        "layout": layout,
        "sides": sides,
        "rtt": (half_rounds + 1) // 2,
        "half_rounds": half_rounds,
        "overhead_bytes": total,
        "cpu_ms": round(cpu_ms, 2),
        "bytes_per_diff": round(total / d, 1) if d else None,
        "sketch_build_ms": round(build_ms, 1),
        "lower_bound_bytes": 32 * d,
        "idlist_bytes": idlist_bytes(len(a)),
        "orbitdb_rtt": orbit,
    }


def many_logs(logs: int, n: int, changed: int) -> "dict[str, object]":
    a_sets = []
    b_sets = []
    for i in range(logs):
        keys = make_keys(n, 1000 + i)
        a_sets.append(KeySet.from_sorted(keys[:-5] if i < changed else keys))
        b_sets.append(KeySet.from_sorted(keys))
    half_rounds, total, cpu_ms = run_exchange(a_sets, b_sets)
    return {
        "case": "many_logs",
        "logs": logs,
        "n": n,
        "changed_logs": changed,
        "rtt": (half_rounds + 1) // 2,
        "overhead_bytes": total,
        "bytes_per_log": round(total / logs, 1),
        "cpu_ms": round(cpu_ms, 2),
    }


def main() -> None:
    quick = "--quick" in sys.argv
    ns = (1000, 10000) if quick else (1000, 10000, 100000)
    ds = (0, 1, 10, 100) if quick else (0, 1, 10, 100, 1000)
    for n in ns:
        for d in ds:
            for layout in ("clustered", "scattered"):
                for sides in (1, 2):
                    if d == 0 and (layout, sides) != ("clustered", 1):
                        continue
                    print(json.dumps(case(n, d, layout, sides, seed=n + d)), flush=True)
    if quick:
        for d in (0, 100):
            print(json.dumps(case(100000, d, "clustered", 2, seed=7)), flush=True)
    print(json.dumps(many_logs(100, 1000, 0)), flush=True)
    one = many_logs(1, 1000, 1)
    hundred = many_logs(100, 1000, 1)
    extra = hundred["overhead_bytes"] - one["overhead_bytes"]  # type: ignore[operator]
    hundred["marginal_bytes_per_in_sync_log"] = round(extra / 99, 1)
    print(json.dumps(hundred), flush=True)


if __name__ == "__main__":
    main()
