"""The contract every decoder keeps with hostile input (docs/security.md, "Fuzzing").

For any bytes a peer, a radio or a file can hand it, a decoder

1. returns, or raises the one error type of ours that means "bad input" for it
   (`RemoteProtocolError` for peer input, `ConfigError` for a configuration, `MemberError` for a
   member file or invitation), nothing else: not a foreign exception, and not
   `LocalProtocolError`, which says *we* misused an API;
2. keeps its round trip where it has an encoder (each target checks its own, see targets.py);
3. allocates at most `base + per_byte * len(input)` bytes at its peak (tracemalloc), so that
   rejecting an input costs memory in proportion to its size;
4. spends at most `cpu_seconds` of CPU time on one input (a hang is caught by libFuzzer's
   `-timeout` as well).

`check(target, data)` runs one input under these rules and raises ContractError (the foreign
exception chained as its cause) when one is broken. Both the atheris runner (run.py) and the
pytest replay of the corpus (test_corpus.py) call it.

A target may list `known` findings: open bugs that another engineer is fixing (issue 16). A
violation that matches one raises KnownFindingError instead, which the runner counts and reports
without failing, so that `make test` keeps fuzzing that decoder for other bugs meanwhile;
tests/fuzz/test_findings.py holds each one as a strict expected failure that flips when fixed.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from node.errors import NodeError, RemoteProtocolError

KIB = 1024


class ContractError(AssertionError):
    """A decoder broke the hostile-input contract on one input."""


class MemoryBoundError(ContractError):
    """The peak allocation was over the target's bound.

    Under atheris the instrumented code allocates more per call (deep recursion costs ~7 KB a
    level instead of ~0.5 KB), so the fuzzing process only records such inputs, and run.py
    confirms them afterwards in a plain interpreter.
    """


class KnownFindingError(ContractError):
    """A violation that matches an open, assigned finding (see Known)."""


@dataclass(frozen=True)
class Known:
    """An open finding: who fixes it, and how to recognise it.

    Attributes:
        finding: e.g. "issue 16 finding 2".
        owner: the engineer fixing it.
        matches: True for the violation (its message and cause) this finding explains.
    """

    finding: str
    owner: str
    matches: Callable[[str, BaseException | None], bool]


@dataclass(frozen=True)
class Target:
    """One decoder under fuzzing.

    Attributes:
        name: short name, also the corpus directory (tests/fuzz/corpus/NAME).
        run: takes the fuzzer's bytes; raises NodeError for bad input, AssertionError when a
            round trip or canonical form does not hold.
        what: the decoder(s) it drives, for docs/security.md.
        rejects: the error types that mean "bad input" here (subclasses included).
        known: open findings in this decoder (see Known).
        base: bytes of peak allocation allowed whatever the input size.
        per_byte: further bytes of peak allocation allowed per input byte.
        cpu_seconds: CPU time allowed for one input.
    """

    name: str
    run: Callable[[bytes], None]
    what: str
    rejects: tuple[type[NodeError], ...] = (RemoteProtocolError,)
    known: tuple[Known, ...] = ()
    base: int = 256 * KIB
    per_byte: int = 16
    cpu_seconds: float = 2.0

    def memory_bound(self, size: int) -> int:
        """The peak allocation this target allows for an input of `size` bytes."""
        return self.base + self.per_byte * size


@dataclass(frozen=True)
class Outcome:
    """What one input cost, and how it ended."""

    peak: int
    cpu: float
    error: str | None  # the NodeError class name, or None when the decoder accepted it


def _run_once(
    target: Target, data: bytes, measure: bool
) -> tuple[str | None, str | None, BaseException | None, int, float]:
    """Run the decoder once: (error class, problem, its cause, peak bytes, CPU seconds)."""
    started_tracing = measure and not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    before = 0
    if measure:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
    cpu = time.process_time()
    error: str | None = None
    problem: str | None = None
    cause: BaseException | None = None
    try:
        target.run(data)
    except target.rejects as exc:
        error = type(exc).__name__
    except AssertionError as exc:
        problem = "round trip or canonical form broken: %s" % (exc,)
        cause = exc
    except Exception as exc:  # the point of the contract: nothing else escapes
        problem = "%s escaped: %s" % (type(exc).__name__, str(exc)[:200])
        cause = exc
    finally:
        cpu = time.process_time() - cpu
        peak = 0
        if measure:
            _, peak_abs = tracemalloc.get_traced_memory()
            peak = max(0, peak_abs - before)
            if started_tracing:
                tracemalloc.stop()
    return error, problem, cause, peak, cpu


def check(target: Target, data: bytes, measure: bool = True) -> Outcome:
    """Run `target` on `data` under the contract; return what it cost.

    Memory is the peak of a second, warm run when the first one is over the bound: a first run
    may pay once for lazy allocations (caches, the fuzzer's coverage maps for new edges) that
    are not the decoder's cost for this input.

    Args:
        target: the decoder.
        data: the input.
        measure: trace allocations (slower); when False only rules 1, 2 and 4 are checked.

    Raises:
        ContractError: a rule was broken (a foreign exception is chained as the cause).
        KnownFindingError: the broken rule is an open finding listed in `target.known`.
    """
    error, problem, cause, peak, cpu = _run_once(target, data, measure)
    bound = target.memory_bound(len(data))
    if problem is None and measure and peak > bound:
        peak = min(peak, _run_once(target, data, measure)[3])
    over_memory = problem is None and measure and peak > bound
    if over_memory:
        problem = "%d input bytes allocated %d bytes at peak (%.1fx), the bound is %d + %d/byte" % (
            len(data),
            peak,
            peak / max(1, len(data)),
            target.base,
            target.per_byte,
        )
    if problem is None and cpu > target.cpu_seconds:
        problem = "%d input bytes took %.2f s of CPU, the bound is %.2f s" % (
            len(data),
            cpu,
            target.cpu_seconds,
        )
    if problem is None:
        return Outcome(peak, cpu, error)
    for known in target.known:
        if known.matches(problem, cause):
            raise KnownFindingError(
                "%s: known (%s, %s fixes it): %s"
                % (target.name, known.finding, known.owner, problem)
            ) from cause
    kind = MemoryBoundError if over_memory else ContractError
    raise kind("%s: %s" % (target.name, problem)) from cause
