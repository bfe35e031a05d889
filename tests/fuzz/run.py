"""Run the fuzz targets with atheris (coverage-guided, libFuzzer), one process per target.

Usage:
    python -m tests.fuzz.run [--seconds N] [--jobs J] [--only NAME,...] [--work DIR] [--max-len N]

Each target runs for N seconds (default 3) in its own process, starting from the committed seed
corpus (tests/fuzz/corpus/NAME, read only) and a working corpus (DIR/corpus/NAME, where libFuzzer
adds what it finds; default: a fresh temporary directory, so `make test` starts from the fixed
corpus every time; `make fuzz` keeps .fuzz/ between runs). An input that breaks the contract
(contract.py) is saved as DIR/crashes/NAME/crash-<sha1> and fails the run; replay it with
`python -m tests.fuzz.run --replay FILE --only NAME`. A violation that matches an open finding
(Target.known) is counted and reported, not failed.

Prints one JSON line per target ({"target", "seconds", "runs", "known", "result"}) and exits 1 if
any target failed. Without atheris (it has wheels for x86-64 Linux only) it says so and replays the
corpus through the contract instead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
MAX_SUSPECTS = 100


def _targets() -> dict[str, object]:
    from .targets import build_targets

    return {t.name: t for t in build_targets()}


def child(name: str, seconds: int, work: Path, max_len: int) -> None:
    """The per-target process: instrument node/, then hand the target to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["node"]):
        from .contract import KnownFindingError, MemoryBoundError, check
        from .targets import build_targets

    target = next(t for t in build_targets() if t.name == name)
    known = 0
    suspects = work / "suspects" / name
    suspects.mkdir(parents=True, exist_ok=True)

    def one_input(data: bytes) -> None:
        nonlocal known
        try:
            check(target, data)
        except KnownFindingError as exc:
            known += 1
            if known == 1:
                print("known finding hit: %s" % exc, file=sys.stderr, flush=True)
        except MemoryBoundError:  # confirmed (or not) uninstrumented by fuzz_one
            if len(os.listdir(suspects)) < MAX_SUSPECTS:
                (suspects / hashlib.sha1(data).hexdigest()).write_bytes(data)

    corpus = work / "corpus" / name
    crashes = work / "crashes" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        str(corpus),
        str(CORPUS / name),
        "-max_total_time=%d" % seconds,
        "-timeout=30",
        "-rss_limit_mb=2048",
        "-max_len=%d" % max_len,
        "-artifact_prefix=%s/" % crashes,
        "-print_final_stats=1",
    ]
    import atexit

    atexit.register(lambda: print("known_findings: %d" % known, file=sys.stderr, flush=True))
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def replay(name: str, files: list[Path]) -> int:
    """Run files through one target under the contract; print each outcome; 1 if one failed."""
    from .contract import ContractError, KnownFindingError, check

    target = _targets()[name]
    failed = 0
    for path in files:
        try:
            outcome = check(target, path.read_bytes())  # type: ignore[arg-type]
            print("%s: ok (%s, peak %d bytes)" % (path, outcome.error or "accepted", outcome.peak))
        except KnownFindingError as exc:
            print("%s: %s" % (path, exc))
        except ContractError as exc:
            failed += 1
            print("%s: FAILED %s" % (path, exc))
    return 1 if failed else 0


def fuzz_one(name: str, seconds: int, work: Path, max_len: int) -> tuple[bool, str]:
    """Fuzz one target in a child process; return (passed, its JSON summary line)."""
    log = work / ("%s.log" % name)
    started = time.monotonic()
    command = [sys.executable, "-m", "tests.fuzz.run", "--child", name, "--seconds", str(seconds)]
    command += ["--work", str(work), "--max-len", str(max_len)]
    with log.open("w") as out:
        code = subprocess.call(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 120
        )
    suspects = sorted((work / "suspects" / name).glob("*"))
    if code == 0 and suspects:  # over the memory bound under atheris: confirm uninstrumented
        with log.open("a") as out:
            out.write("replaying %d memory suspects without instrumentation\n" % len(suspects))
            out.flush()
            command = [sys.executable, "-m", "tests.fuzz.run", "--only", name, "--replay"]
            code = subprocess.call(
                command + [str(p) for p in suspects],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=600,
            )
    text = log.read_text(errors="replace")
    runs = re.findall(r"stat::number_of_executed_units: (\d+)", text)
    known = re.findall(r"known_findings: (\d+)", text)
    summary = {
        "target": name,
        "seconds": round(time.monotonic() - started, 1),
        "runs": int(runs[-1]) if runs else None,
        "known": int(known[-1]) if known else 0,
        "memory_suspects": len(suspects),
        "result": "ok" if code == 0 else "FAILED (exit %d, log %s)" % (code, log),
    }
    line = json.dumps(summary)
    if code != 0:
        line += "\n" + "\n".join(text.splitlines()[-40:])
    return code == 0, line


def run_all(names: list[str], seconds: int, work: Path, max_len: int, jobs: int) -> int:
    """Fuzz every target, `jobs` at a time; print one JSON line each; 1 if any failed."""
    started = time.monotonic()
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(fuzz_one, n, seconds, work, max_len) for n in names]
        for future in futures:
            passed, line = future.result()
            print(line, flush=True)
            failed += not passed
    print(
        json.dumps(
            {
                "fuzz_targets": len(names),
                "failed": failed,
                "seconds_each": seconds,
                "jobs": jobs,
                "wall_seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    return 1 if failed else 0


def main() -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--work", type=Path, help="working corpus and crashes (default: temp)")
    parser.add_argument("--max-len", type=int, default=8192)
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once")
    parser.add_argument("--replay", type=Path, nargs="*", help="replay these inputs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seconds, args.work, args.max_len)
        return 0
    names = [n for n in args.only.split(",") if n] or list(_targets())
    if args.replay:
        return replay(names[0], args.replay)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (wheels exist for x86-64 Linux): replaying the corpus")
        return sum(replay(n, sorted((CORPUS / n).iterdir())) for n in names) and 1
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        return run_all(names, args.seconds, args.work, args.max_len, args.jobs)
    with tempfile.TemporaryDirectory(prefix="waystation-fuzz-") as tmp:
        return run_all(names, args.seconds, Path(tmp), args.max_len, args.jobs)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
