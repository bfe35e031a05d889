"""The member client's cost against the history of a group: send and read at 0, 1,000, 10,000.

Usage:
    python bench/member.py [--sizes 0,1000,10000] [--runs 5] [--dir DIR]

For each history size H a member data directory is built with H messages in one group, half
written by this member and half by another member whose entries arrive as a sync would bring them
(built on /dev/shm when it exists, to be quick, then copied to DIR, by default a temporary
directory on the same disk as the system's temporary files). Then, on that copy, with the same
program the user runs:

    cli_send_ms       median wall time of `waystation peer send` (a new process each: interpreter
                      start, imports, opening both databases, sending, closing) over --runs runs
    cli_send_rss_kb   the largest peak RSS of those processes (ru_maxrss from wait4)
    cli_read_last_ms  the same for `waystation peer read GROUP --last 20` (what a screen shows)
    cli_read_all_ms   the same for `waystation peer read GROUP` (prints all H lines: it must grow)
    cli_read_rss_kb   peak RSS of the read-all processes
    open_ms, send_ms  in this process: PeerSession open (the log store loads its key sets, which
                      grows with H), then one MemberClient send; medians over --runs

The sizes are measured round robin (run 1 of every size, then run 2, ...), so a burst of load on
the shared machine falls on all of them alike. The empty history (H = 0, the first size) is the
reference measured in the same run: `send_ratio` is cli_send_ms
at H over cli_send_ms at 0, and the issue's goal is send_ratio <= 1.5 at 10,000. Before
member.sqlite3 (JSON group files rewritten on every send) one send at 15,000 messages took 3.8 s
and 160 MB (issue 10).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.app.peer_cli import open_member  # noqa: E402
from node.app.peer_session import PeerSession  # noqa: E402
from node.member.logio import log_entries  # noqa: E402
from node.sync.entry import decode_entry  # noqa: E402

WAYSTATION = str(Path(sys.executable).with_name("waystation"))
GROUP_NAME = "bench"
T0 = 1_700_000_000.0


def build(base: Path, size: int) -> str:
    """Two members in one group; `size` messages in alice's store; returns the group id."""
    alice, bob = base / "alice", base / "bob"
    PeerSession(alice, create_name="alice").close()
    PeerSession(bob, create_name="bob").close()
    with open_member(alice) as a:
        group = a.client.create_group(GROUP_NAME, T0)
        invitation = a.client.invitation(group)
    with open_member(bob) as b:
        b.client.join(invitation, T0 + 1)
    exchange(alice, bob)
    exchange(bob, alice)
    exchange(alice, bob)
    with open_member(alice) as a, open_member(bob) as b:
        for i in range(size):
            writer = a if i % 2 == 0 else b
            writer.client.send(group, "message %d of the history" % i, T0 + 10 + i)
    exchange(bob, alice)
    return group


def exchange(src_dir: Path, dst_dir: Path) -> None:
    """What a sync through a relay does: src's entries into dst's store, then dst processes."""
    with open_member(src_dir) as src, open_member(dst_dir) as dst:
        for log in src.client.sync_logs():
            blocks = [src.store.get_block(e.cid) for e in log_entries(src.store, log.address)]
            dst.store.put_entries([decode_entry(b) for b in blocks if b is not None], T0)
            dst.store.commit()
        dst.client.process(T0 + 5)


# A child's ru_maxrss counts what it had mapped when it was forked (Linux keeps the high-water
# mark across exec), so a child forked from this process, which built the history, would report
# this process's size. A small launcher forks the command instead and reports its figures.
LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_pid, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"s": seconds, "rss": usage.ru_maxrss, "code": code}), file=sys.stderr)
"""


def run_cli(data: Path, *argv: str) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one `waystation peer` process."""
    command = [WAYSTATION, "peer", argv[0], "--data", str(data), *argv[1:]]
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    lines = done.stderr.decode(errors="replace").splitlines()
    figures = json.loads(lines[-1])
    if figures["code"] != 0:
        raise SystemExit("peer %s failed: %s" % (argv[0], "\n".join(lines[:-1])))
    return figures["s"], figures["rss"]


def measure_once(data: Path, group: str, i: int) -> dict[str, float]:
    """One round of every measurement on one data directory."""
    send_s, send_rss = run_cli(data, "send", group, "bench send %d" % i)
    last_s, _rss = run_cli(data, "read", group, "--last", "20")
    all_s, read_rss = run_cli(data, "read", group)
    start = time.perf_counter()
    with open_member(data) as session:
        opened = time.perf_counter()
        session.client.send(group, "in-process send %d" % i, time.time())
        sent = time.perf_counter()
    return {
        "cli_send_ms": send_s * 1000,
        "cli_send_rss_kb": send_rss,
        "cli_read_last_ms": last_s * 1000,
        "cli_read_all_ms": all_s * 1000,
        "cli_read_rss_kb": read_rss,
        "open_ms": (opened - start) * 1000,
        "send_ms": (sent - opened) * 1000,
    }


def summary(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Medians of the times, maxima of the RSS figures."""
    out: dict[str, float] = {}
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        out[key] = max(values) if key.endswith("_kb") else round(statistics.median(values), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0,1000,10000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=args.dir) as out_dir:
        cases = []
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="ws-bench-member-", dir=scratch) as tmp:
                start = time.perf_counter()
                group = build(Path(tmp), size)
                built = time.perf_counter() - start
                data = Path(out_dir) / ("alice-%d" % size)
                shutil.copytree(Path(tmp) / "alice", data)
            cases.append((size, data, group, built))
        # Round robin: a burst of load on the shared machine hits every size alike.
        rounds: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
        for i in range(args.runs):
            for size, data, group, _built in cases:
                rounds[size].append(measure_once(data, group, i))
        reference = summary(rounds[sizes[0]])["cli_send_ms"]
        for size, _data, _group, built in cases:
            result = summary(rounds[size])
            line = {
                "case": "member",
                "messages": size,
                **result,
                "send_ratio": round(result["cli_send_ms"] / reference, 2),
                "build_s": round(built, 1),
                "runs": args.runs,
                "self_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
