"""`peer sync` progress lines: the reporter's thresholds, on a fake clock."""

from __future__ import annotations

from node.app import peer_cli
from node.app.peer import SyncOutcome
from node.app.peer_cli import progress_reporter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def outcome(sent: int, received: int) -> SyncOutcome:
    result = SyncOutcome()
    result.entries_sent = sent
    result.entries_received = received
    return result


def test_nothing_below_min_entries_then_one_line_per_interval() -> None:
    lines: list[str] = []
    clock = Clock()
    report = progress_reporter(10, 1.0, lines.append, clock)
    report(outcome(4, 5))  # 9 moved: below the threshold
    assert lines == []
    report(outcome(4, 6))  # 10 moved: shown at once
    assert lines == ["  ... sent 4, received 6 entries"]
    clock.now += 0.999
    report(outcome(40, 6))  # within the interval: not shown
    assert len(lines) == 1
    clock.now += 0.001
    report(outcome(41, 6))
    assert lines[-1] == "  ... sent 41, received 6 entries" and len(lines) == 2


def test_defaults_are_200_entries_and_one_second() -> None:
    assert (peer_cli.PROGRESS_MIN_ENTRIES, peer_cli.PROGRESS_INTERVAL_S) == (200, 1.0)
    lines: list[str] = []
    clock = Clock()
    report = progress_reporter(
        peer_cli.PROGRESS_MIN_ENTRIES, peer_cli.PROGRESS_INTERVAL_S, lines.append, clock
    )
    report(outcome(150, 49))
    assert lines == []
    report(outcome(150, 50))
    clock.now += 0.5
    report(outcome(300, 50))
    clock.now += 0.5
    report(outcome(400, 50))
    assert lines == ["  ... sent 150, received 50 entries", "  ... sent 400, received 50 entries"]
