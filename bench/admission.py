"""Admission benchmark (issue 9 §3): honest members' sync time with and without a hostile address.

Usage (from the repository root):

    .venv/bin/python bench/admission.py [--seconds S] [--rounds N] [--members N]

Two cases, each on a fresh relay process (`waystation run`, default configuration, listening on
127.0.0.1, data in a temporary directory), measured one after the other in the same run:

  unloaded  --members honest members (default 20: 5 groups x 4) sync at the same time, round
            after round for --seconds (default 45: longer than relay.idle_session_s and the
            handshake deadline, so the attackers' closings and reconnections fall inside it), at
            least --rounds rounds; before each round every member writes one new entry. Measured:
            each `sync_with_relay` call's wall time (connect to Bye "ok"), in this process.
  loaded    the same, while another process (tests/integration/admission_load.py) runs the attack
            from 127.0.0.2: 64 idle authenticated sessions and 300 slowloris connections (a byte
            every 2 s), all reconnecting when closed. The rounds start once every attacker slot
            has tried once.

The relay's RSS (psutil) is sampled every 0.5 s during each case; its peak is reported. One JSON
line per case, then one comparing them: p99 loaded / p99 unloaded beside the goal (<= 2), and the
peak RSS of both. Every honest sync must end "ok" (the benchmark fails otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # type: ignore[import-untyped]

from tests.integration.relay_process import Group, Member, RelayProcess

ROOT = Path(__file__).resolve().parent.parent
RSS_EVERY_S = 0.5
ATTACK_START_S = 60.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RSS_EVERY_S):
                await stop.wait()


async def honest_rounds(port: int, groups: list[Group], rounds: int, seconds: float) -> list[float]:
    """At least `rounds` rounds, and more until `seconds` have passed."""
    members = [m for g in groups for m in g.members]
    times: list[float] = []
    until = time.perf_counter() + seconds

    async def timed_sync(member: Member) -> str:
        start = time.perf_counter()
        reason = await member.sync(port, 60.0)
        times.append(time.perf_counter() - start)
        return reason

    round_number = 0
    while round_number < rounds or time.perf_counter() < until:
        round_number += 1
        for member in members:
            entry = member.log.append("%s r%d" % (member.name, round_number), member.written[-1:])
            member.written.append(entry)
            member.store.put_entries([entry], 1_000_000)
            member.store.commit()
        outcomes = await asyncio.gather(*(timed_sync(m) for m in members))
        if outcomes != ["ok"] * len(members):
            raise SystemExit("honest syncs failed: %s" % outcomes)
    return times


async def run_case(
    name: str, attack: bool, args: argparse.Namespace, work: Path
) -> dict[str, object]:
    groups = [Group.make(60 + 2 * g, 4, 2) for g in range(args.members // 4)]
    relay = await RelayProcess.start(work / name, "")
    peak = [0]
    stop = asyncio.Event()
    attacker = None
    attack_report: dict[str, object] = {}
    try:
        sampler = asyncio.create_task(sample_rss(relay.proc.pid, peak, stop))
        if attack:
            attacker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.integration.admission_load", str(relay.port),
                cwd=str(ROOT), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert attacker.stdout is not None
            async with asyncio.timeout(ATTACK_START_S):
                line = await attacker.stdout.readline()
            assert line.strip() == b"started", line
        started = time.perf_counter()
        times = await honest_rounds(relay.port, groups, args.rounds, args.seconds)
        elapsed = time.perf_counter() - started
        if attacker is not None:
            assert attacker.stdin is not None and attacker.stdout is not None
            attacker.stdin.close()
            attack_report = json.loads(await attacker.stdout.readline())
            await attacker.wait()
        stop.set()
        await sampler
        status = await relay.stop()
    finally:
        if attacker is not None and attacker.returncode is None:
            attacker.kill()
            await attacker.wait()
        await relay.kill()
    counters = status["counters"]
    assert isinstance(counters, dict)
    return {
        "bench": "admission",
        "case": name,
        "syncs": len(times),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p99_ms": round(percentile(times, 0.99) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "seconds": round(elapsed, 1),
        "relay_rss_peak_mb": round(peak[0] / 2**20, 1),
        "rejected": {k: v for k, v in counters.items() if k.startswith("links.rejected.")},
        "closed_idle": counters.get("links.closed.idle", 0),
        "closed_timeout": counters.get("links.closed.timeout", 0),
        "attack": attack_report,
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="waystation-bench-admission-") as tmp:
        work = Path(tmp)
        unloaded = await run_case("unloaded", False, args, work)
        print(json.dumps(unloaded), flush=True)
        loaded = await run_case("loaded", True, args, work)
        print(json.dumps(loaded), flush=True)
        ratio = float(loaded["p99_ms"]) / float(unloaded["p99_ms"])  # type: ignore[arg-type]
        print(
            json.dumps(
                {
                    "bench": "admission",
                    "case": "compare",
                    "p99_loaded_over_unloaded": round(ratio, 2),
                    "goal": "<= 2",
                    "rss_peak_mb": {"unloaded": unloaded["relay_rss_peak_mb"],
                                    "loaded": loaded["relay_rss_peak_mb"]},
                }
            ),
            flush=True,
        )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--members", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
