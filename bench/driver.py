"""Per-link driver benchmark: CPU per trickled entry through an in-process relay, tree vs a ref.

Usage: python bench/driver.py [--ref GITREF] [--runs 6] [--entries 400]

One process holds a relay (NodeContext over a MemoryStore, community mode) and two members, each
joined to it by an in-memory pipe link (node/pipe.py, frame hint 65,535) and driven by the real
LinkDriver. After both members are in sync, a writer member offers one entry at a time and waits
until the other member has stored it (the relay pushes it on arrival), as bench/relay.py's latency
case does with a daemon; no sockets, no disk, so what is measured is the drivers' own work plus
the session, codecs and verification they call. `cpu_us_per_entry` is the process CPU time of the
trickle divided by the entries (relay and both members together).

With --ref, the same measurement runs on `git archive GITREF` in a temporary directory, in a fresh
interpreter per run, alternating with this tree, and each side's runs are printed as JSON lines
with their median and minimum (the machine is shared: single runs vary by a few per cent).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = r"""
import asyncio, base64, sys, time
sys.path.insert(0, sys.argv[1])
import node
assert node.__file__.startswith(sys.argv[1]), node.__file__  # the tree asked for, not another
from node.app.context import Committer, LogPolicy, NodeContext
from node.app.peer import LinkDriver
from node.crypto._nacl import NaclSuite
from node.crypto.address import MESSAGES_STORE, store_address
from node.crypto.keys import multi_member_group_from_seeds
from node.pipe import Pipe
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.proto.session import SessionLimits
from node.sync.entry import create_entry
from node.sync.store import MemoryStore

N = int(sys.argv[2])
SUITE = NaclSuite()
group, _ = multi_member_group_from_seeds(SUITE, b"g" * 32, b"s" * 32)
SIGN_PUB, SIGN_SECRET = group.signing_keypair(SUITE)
ADDRESS = store_address(SUITE, group.public_key, SIGN_PUB, MESSAGES_STORE)
ID_SIG = SUITE.ed25519_sign(SIGN_SECRET, SIGN_PUB.hex().encode())
entries = []
for i in range(N):
    payload = '{"op":"ADD","value":"%s"}' % base64.b64encode(b"message %d" % i).decode()
    entries.append(create_entry(ADDRESS, payload, [e.cid for e in entries[-1:]], [], i + 1,
                                SIGN_PUB, lambda m: SUITE.ed25519_sign(SIGN_SECRET, m)))


def context(store, role, own, community):
    policy = LogPolicy(community=community, own=own, declare_all=False)
    static = SUITE.random_bytes(32) if role == ROLE_RELAY else None
    return NodeContext(store, SUITE, Committer(store, 0.0), policy, SessionLimits(),
                       static_private=static, role=role)


def member():
    store = MemoryStore(SUITE.ed25519_verify)
    store.add_log(ADDRESS, SIGN_PUB, pinned=True)
    return context(store, ROLE_MEMBER, {ADDRESS: (SIGN_PUB, ID_SIG)}, False)


async def main():
    relay = context(MemoryStore(SUITE.ed25519_verify), ROLE_RELAY, {}, True)
    writer, reader = member(), member()
    got, count = asyncio.Event(), [0]

    def stored(_address, keys, source):
        if source is not None:
            count[0] += len(keys)
            got.set()

    reader.hub.subscribe(stored)
    async with asyncio.TaskGroup() as tg:
        commits = [tg.create_task(c.committer.run()) for c in (relay, writer, reader)]
        members, runs = [], []
        for name, ctx in (("writer", writer), ("reader", reader)):
            end_member, end_relay = Pipe(name).ends
            runs.append(tg.create_task(LinkDriver(relay, end_relay, initiator=False).run()))
            members.append(LinkDriver(ctx, end_member, initiator=True))
            runs.append(tg.create_task(members[-1].run()))
        async with asyncio.timeout(60):
            for driver in members:
                await driver.wait_in_sync()
            cpu = time.process_time()
            for i, entry in enumerate(entries):
                writer.store.put_entries([entry], time.time())
                writer.store.commit()
                writer.hub.published(ADDRESS, [(entry.clock_time, entry.cid.digest)], None)
                while count[0] <= i:
                    got.clear()
                    await got.wait()
            cpu = time.process_time() - cpu
        for driver in members:
            driver.request_close("ok", "bench done")
        await asyncio.gather(*runs)
        for task in commits:
            task.cancel()
    print(cpu / N * 1e6)


asyncio.run(main())
"""


def measure(tree: Path, entries: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tree), str(entries)],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit("measuring %s failed:\n%s" % (tree, out.stderr[-2000:]))
    return float(out.stdout.strip())


def export(ref: str, into: Path) -> Path:
    archive = into / "ref.tar"
    with archive.open("wb") as sink:
        subprocess.run(["git", "archive", ref], cwd=ROOT, stdout=sink, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default=None, help="git ref to measure side by side")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--entries", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="waystation-bench-driver-") as tmp:
        trees = {"worktree": ROOT}
        if args.ref is not None:
            trees[args.ref] = export(args.ref, Path(tmp))
        results: dict[str, list[float]] = {name: [] for name in trees}
        started = time.monotonic()
        for _ in range(args.runs):
            for name, tree in trees.items():
                results[name].append(round(measure(tree, args.entries), 1))
        for name, values in results.items():
            line = {
                "bench": "driver",
                "case": "trickle",
                "tree": name,
                "entries": args.entries,
                "cpu_us_per_entry_runs": values,
                "median": round(statistics.median(values), 1),
                "min": min(values),
                "python": platform.python_version(),
            }
            print(json.dumps(line))
        print(json.dumps({"bench": "driver", "wall_s": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
