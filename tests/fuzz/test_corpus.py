"""The fuzz targets, their seed corpus and the contract checker itself (fast, no atheris)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from node.errors import ConfigError, LocalProtocolError, RemoteProtocolError

from .contract import (
    ContractError,
    Known,
    KnownFindingError,
    MemoryBoundError,
    Target,
    check,
)
from .seeds import SEEDS
from .targets import Fixtures, build_targets

CORPUS = Path(__file__).resolve().parent / "corpus"
TARGETS = build_targets()
NAMES = [t.name for t in TARGETS]


def test_one_target_per_decoder_of_the_issue() -> None:
    assert len(NAMES) == len(set(NAMES)) == 16
    assert set(SEEDS) == set(NAMES)


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_every_committed_seed_is_accepted_within_bounds(target: Target) -> None:
    seeds = sorted((CORPUS / target.name).iterdir())
    assert seeds, "no committed corpus for %s (python -m tests.fuzz.seeds)" % target.name
    for path in seeds:
        outcome = check(target, path.read_bytes())
        assert outcome.error is None, "%s: a valid seed was refused (%s)" % (path, outcome.error)


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_fresh_seeds_are_accepted(target: Target) -> None:
    """The encoders of today still make inputs the decoders accept (the corpus may be stale)."""
    for seed in SEEDS[target.name](Fixtures()):
        assert check(target, seed).error is None


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_truncations_and_bit_flips_of_seeds_keep_the_contract(target: Target) -> None:
    """A deterministic taste of what the fuzzer does, so a plain pytest run checks it too.

    An open finding that another engineer is fixing (KnownFindingError) does not fail it.
    """
    for path in sorted((CORPUS / target.name).iterdir())[:3]:
        seed = path.read_bytes()
        step = max(1, len(seed) // 24)
        for cut in range(0, len(seed), step):
            flipped = bytearray(seed)
            flipped[cut] ^= 0x41
            for data in (seed[:cut], bytes(flipped)):
                with contextlib.suppress(KnownFindingError):
                    check(target, data)


def fake(run: object, **kwargs: object) -> Target:
    return Target("fake", run, "a fake decoder", **kwargs)  # type: ignore[arg-type]


def test_contract_accepts_and_reports_rejections() -> None:
    def refuse(data: bytes) -> None:
        raise RemoteProtocolError("bad input")

    assert check(fake(lambda data: None), b"x").error is None
    assert check(fake(refuse), b"x").error == "RemoteProtocolError"
    config = fake(lambda d: (_ for _ in ()).throw(ConfigError("k", "bad")), rejects=(ConfigError,))
    assert check(config, b"x").error == "ConfigError"


@pytest.mark.parametrize(
    "exc",
    [ValueError("foreign"), RecursionError("deep"), LocalProtocolError("our bug"), KeyError("k")],
    ids=["ValueError", "RecursionError", "LocalProtocolError", "KeyError"],
)
def test_contract_fails_on_anything_but_the_rejection_type(exc: Exception) -> None:
    def run(data: bytes) -> None:
        raise exc

    with pytest.raises(ContractError, match="%s escaped" % type(exc).__name__):
        check(fake(run), b"x")


def test_contract_fails_on_a_broken_round_trip() -> None:
    def run(data: bytes) -> None:
        assert data == b"y", "re-encoded differently"

    with pytest.raises(ContractError, match="round trip or canonical form broken"):
        check(fake(run), b"x")


def test_contract_fails_on_memory_out_of_proportion() -> None:
    def run(data: bytes) -> None:
        hoard = [bytearray(1024) for _ in range(len(data) * 10)]
        assert len(hoard) == len(data) * 10

    check(fake(run, base=0, per_byte=20 * 1024), b"x" * 100)
    with pytest.raises(MemoryBoundError, match="allocated"):
        check(fake(run, base=64 * 1024, per_byte=100), b"x" * 100)


def test_contract_fails_on_cpu_time() -> None:
    def run(data: bytes) -> None:
        total = 0
        for i in range(3_000_000):
            total += i
        assert total

    with pytest.raises(ContractError, match="of CPU"):
        check(fake(run, cpu_seconds=0.0), b"x", measure=False)


def test_known_findings_are_told_apart() -> None:
    def run(data: bytes) -> None:
        raise RecursionError("deep")

    known = Known("finding 9", "someone", lambda problem, cause: isinstance(cause, RecursionError))
    with pytest.raises(KnownFindingError, match="finding 9, someone fixes it"):
        check(fake(run, known=(known,)), b"x")
    other = Known("finding 8", "someone", lambda problem, cause: False)
    with pytest.raises(ContractError) as caught:
        check(fake(run, known=(other,)), b"x")
    assert not isinstance(caught.value, KnownFindingError)
