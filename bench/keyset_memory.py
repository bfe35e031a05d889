"""KeySet memory per key (tracemalloc) and operation timings.

Usage:
    .venv/bin/python bench/keyset_memory.py [--sizes 10000,100000] [--ref GITREF]

--ref loads node/sync/keyset.py as it was at GITREF (e.g. the commit before a change) instead of
the working tree's, so before/after runs compare the same script. Prints JSON lines:

    case "memory"   bytes_per_key of a KeySet bulk-loaded with from_sorted (the input list freed),
                    after_queries_bytes_per_key the same set after fingerprint/key_at at every
                    chunk (caches built lazily by queries included), grown_bytes_per_key a set
                    built by add() in random order
    case "ops"      microseconds per call on a set of that size: add + discard of a new key, rank,
                    key_at, fingerprint (random ranges), from_sorted per key, iteration per key

Keys are (lamport time, sha256 digest) with about three keys per time, as in a busy log.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import platform
import random
import subprocess
import sys
import time
import tracemalloc
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.sync import keyset as current_keyset  # noqa: E402


def load_keyset(ref: str | None) -> types.ModuleType:
    if ref is None:
        return current_keyset
    source = subprocess.run(
        ["git", "show", "%s:node/sync/keyset.py" % ref],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("keyset_at_" + ref)
    exec(compile(source, "keyset@%s" % ref, "exec"), module.__dict__)
    return module


def make_keys(count: int, seed: int = 1) -> list[tuple[int, bytes]]:
    return sorted(
        (1000 + i // 3, hashlib.sha256(b"%d-%d" % (seed, i)).digest()) for i in range(count)
    )


def traced(build: Callable[[], Any]) -> tuple[Any, int]:
    """(result, bytes still allocated by build() once its inputs are gone)."""
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    result = build()
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    return result, used


def touch_everything(ks: Any, step: int) -> None:
    n = len(ks)
    for i in range(0, n, step):
        ks.fingerprint(0, i + 1)
        ks.key_at(i)


def memory_case(mod: types.ModuleType, size: int) -> dict[str, object]:
    def bulk() -> Any:
        return mod.KeySet.from_sorted(make_keys(size))

    ks, bulk_bytes = traced(bulk)
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    touch_everything(ks, 32)
    gc.collect()
    touched = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    del ks

    def grown() -> Any:
        keys = make_keys(size, seed=2)
        random.Random(5).shuffle(keys)
        out = mod.KeySet()
        for key in keys:
            out.add(key)
        return out

    ks, grown_bytes = traced(grown)
    del ks
    return {
        "case": "memory",
        "keys": size,
        "bytes_per_key": round(bulk_bytes / size, 1),
        "after_queries_bytes_per_key": round((bulk_bytes + touched) / size, 1),
        "grown_bytes_per_key": round(grown_bytes / size, 1),
    }


def per_call_us(calls: int, fn: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return round((time.perf_counter() - start) / calls * 1e6, 2)


def ops_case(mod: types.ModuleType, size: int) -> dict[str, object]:
    keys = make_keys(size)
    start = time.perf_counter()
    ks = mod.KeySet.from_sorted(keys)
    load_us = (time.perf_counter() - start) / size * 1e6
    rnd = random.Random(9)
    calls = 20000
    fresh = [(1000 + rnd.randrange(size // 3), hashlib.sha256(b"new%d" % i).digest())
             for i in range(calls)]  # fmt: skip
    probes = [keys[rnd.randrange(size)] for _ in range(calls)]
    indexes = [rnd.randrange(size) for _ in range(calls)]
    ranges = [tuple(sorted((rnd.randrange(size + 1), rnd.randrange(size + 1))))
              for _ in range(calls)]  # fmt: skip
    add_us = per_call_us(calls, lambda i: ks.add(fresh[i]))
    discard_us = per_call_us(calls, lambda i: ks.discard(fresh[i]))
    rank_us = per_call_us(calls, lambda i: ks.rank(probes[i]))
    contains_us = per_call_us(calls, lambda i: probes[i] in ks)
    key_at_us = per_call_us(calls, lambda i: ks.key_at(indexes[i]))
    fp_us = per_call_us(calls, lambda i: ks.fingerprint(ranges[i][0], ranges[i][1]))
    start = time.perf_counter()
    count = sum(1 for _ in ks)
    iter_us = (time.perf_counter() - start) / count * 1e6
    return {
        "case": "ops",
        "keys": size,
        "from_sorted_us_per_key": round(load_us, 2),
        "add_us": add_us,
        "discard_us": discard_us,
        "rank_us": rank_us,
        "contains_us": contains_us,
        "key_at_us": key_at_us,
        "fingerprint_us": fp_us,
        "iterate_us_per_key": round(iter_us, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--ref", default=None, help="git ref of node/sync/keyset.py to measure")
    args = parser.parse_args()
    mod = load_keyset(args.ref)
    common = {"bench": "keyset", "ref": args.ref or "worktree", "python": platform.python_version()}
    for size in [int(s) for s in args.sizes.split(",")]:
        print(json.dumps({**common, **memory_case(mod, size)}), flush=True)
        print(json.dumps({**common, **ops_case(mod, size)}), flush=True)


if __name__ == "__main__":
    main()
