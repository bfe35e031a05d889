"""The admission policy (node/app/admission.py), without sockets: counts, deadlines, eviction."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.app.admission import (
    _MOVES,
    CLOSE_IDLE,
    CLOSE_PENDING,
    CLOSE_TIMEOUT,
    CLOSED,
    HANDSHAKE,
    REFUSED_PENDING,
    REFUSED_SOURCE_LINKS,
    SESSION,
    WAITING,
    Admission,
    AdmissionLimits,
    Rejections,
    Ticket,
)

LIMITS = AdmissionLimits(
    max_sessions=4,
    max_pending=6,
    max_links_per_source=5,
    max_handshakes_per_source=2,
    handshake_s=10.0,
    idle_session_s=30.0,
)
STATES = (WAITING, HANDSHAKE, SESSION, CLOSED)
EVENTS = ("start", "open", "close")


def admit(policy: Admission[str], source: str, now: float = 0.0) -> Ticket[str]:
    ticket, _, _ = policy.arrive(source, source, now)
    assert isinstance(ticket, Ticket), ticket
    return ticket


def session(policy: Admission[str], source: str, now: float = 0.0) -> Ticket[str]:
    ticket = admit(policy, source, now)
    assert ticket.state == HANDSHAKE
    room, _ = policy.opened(ticket, now)
    assert room == []
    return ticket


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STATES, EVENTS)))
def test_every_state_and_event(state: str, event: str) -> None:
    ticket: Ticket[str] = Ticket("s", "s", 0.0)
    ticket.state = state
    expected = _MOVES.get((state, event))
    if expected is None:
        with pytest.raises(ValueError, match="%s in state %s" % (event, state)):
            ticket._move(event, 1.0)
        assert ticket.state == state
    else:
        ticket._move(event, 1.0)
        assert (ticket.state, ticket.since) == (expected, 1.0)


def test_handshakes_per_source_wait_their_turn_then_start() -> None:
    policy: Admission[str] = Admission(LIMITS)
    first, second = admit(policy, "a"), admit(policy, "a")
    third, _, started = policy.arrive("a", "a3", 1.0)
    assert isinstance(third, Ticket)
    assert (first.state, second.state, third.state) == (HANDSHAKE, HANDSHAKE, WAITING)
    assert started == []
    # Another source is not held up by a's handshakes.
    assert admit(policy, "b").state == HANDSHAKE
    # a's first handshake ends: its waiting link starts (deadline from now on).
    room, started = policy.opened(first, 2.0)
    assert room == [] and started == [third] and third.state == HANDSHAKE and third.since == 2.0


def test_links_per_source_refused_beyond_the_cap() -> None:
    policy: Admission[str] = Admission(LIMITS)
    for _ in range(LIMITS.max_links_per_source):
        admit(policy, "a")
    refused, evicted, started = policy.arrive("a", "x", 0.0)
    assert (refused, evicted, started) == (REFUSED_SOURCE_LINKS, [], [])
    assert admit(policy, "b").state == HANDSHAKE  # another source still gets in


def test_pending_full_the_busiest_source_makes_room() -> None:
    policy: Admission[str] = Admission(AdmissionLimits(4, 6, 6, 2, 10.0, 30.0))
    hostile = [admit(policy, "h", float(i)) for i in range(5)]
    honest = admit(policy, "m")
    assert policy.pending == 6
    # A newcomer from the busiest source is refused; one from another source evicts the
    # busiest source's oldest pending link.
    assert policy.arrive("h", "x", 6.0)[0] == REFUSED_PENDING
    ticket, evicted, _ = policy.arrive("n", "n", 6.0)
    assert isinstance(ticket, Ticket)
    assert evicted == [(hostile[0], CLOSE_PENDING)] and hostile[0].state == CLOSED
    assert honest.state == HANDSHAKE and policy.pending == 6


def test_pending_full_of_equal_sources_refuses() -> None:
    limits = AdmissionLimits(4, 2, 5, 2, 10.0, 30.0)
    policy: Admission[str] = Admission(limits)
    admit(policy, "a")
    admit(policy, "b")
    assert policy.arrive("c", "c", 0.0)[0] == REFUSED_PENDING  # nobody holds more than c would


def test_longest_idle_session_makes_room() -> None:
    policy: Admission[str] = Admission(LIMITS)
    sessions = [session(policy, "s%d" % i, float(i)) for i in range(LIMITS.max_sessions)]
    for i, ticket in enumerate(sessions):
        policy.active(ticket, 1, 10.0 + i)
    policy.active(sessions[2], 2, 20.0)
    # All did something; s1 is the longest idle... unless one never did anything.
    newcomer = admit(policy, "new", 21.0)
    room, _ = policy.opened(newcomer, 21.0)
    assert room == [sessions[0]] and sessions[0].state == CLOSED
    assert policy.sessions == LIMITS.max_sessions and newcomer.state == SESSION
    # A session that never declared or moved anything goes before any active one.
    lazy = newcomer
    other = admit(policy, "other", 22.0)
    room, _ = policy.opened(other, 22.0)
    assert room == [lazy]


def test_handshake_deadline_is_absolute_whatever_trickles_in() -> None:
    policy: Admission[str] = Admission(LIMITS)
    ticket = admit(policy, "a", 0.0)
    for t in range(1, 10):
        policy.active(ticket, t, float(t))  # bytes trickle: no effect on the deadline
        assert policy.due(float(t)) == ([], [])
    assert policy.next_deadline() == 10.0
    assert policy.due(10.0) == ([(ticket, CLOSE_TIMEOUT)], [])
    assert ticket.state == CLOSED and policy.pending == 0 and policy.links_of("a") == 0


def test_waiting_links_have_the_deadline_from_arrival() -> None:
    policy: Admission[str] = Admission(LIMITS)
    a1, a2 = admit(policy, "a", 0.0), admit(policy, "a", 0.0)
    waiting = admit(policy, "a", 5.0)
    assert waiting.state == WAITING
    assert policy.due(10.0) == ([(a1, CLOSE_TIMEOUT), (a2, CLOSE_TIMEOUT)], [waiting])
    assert policy.due(14.9) == ([], [])
    assert policy.due(20.0) == ([(waiting, CLOSE_TIMEOUT)], [])


def test_idle_sessions_close_unless_they_do_something() -> None:
    policy: Admission[str] = Admission(LIMITS)
    idle = session(policy, "i", 0.0)
    busy = session(policy, "b", 0.0)
    policy.active(busy, 3, 1.0)
    assert policy.next_deadline() == 30.0
    assert policy.due(29.9) == ([], [])
    assert policy.due(30.0) == ([(idle, CLOSE_IDLE)], [])
    assert policy.due(10_000.0) == ([], []) and busy.state == SESSION
    assert policy.next_deadline() is None


def test_closed_is_idempotent_and_frees_the_slot() -> None:
    policy: Admission[str] = Admission(LIMITS)
    a1, _ = admit(policy, "a"), admit(policy, "a")
    waiting = admit(policy, "a")
    assert policy.closed(a1, 1.0) == [waiting]
    assert policy.closed(a1, 2.0) == []
    assert policy.opened(a1, 3.0) == ([], [])  # a report after the close changes nothing


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(("arrive", "open", "close", "due", "active")),
                  st.integers(0, 3), st.integers(0, 40)),
        max_size=80,
    )
)  # fmt: skip
def test_limits_hold_whatever_happens(steps: list[tuple[str, int, int]]) -> None:
    policy: Admission[str] = Admission(LIMITS)
    live: list[Ticket[str]] = []
    now = 0.0
    for op, pick, dt in steps:
        now += dt / 4
        if op == "arrive":
            ticket, evicted, _ = policy.arrive("s%d" % pick, "x", now)
            if isinstance(ticket, Ticket):
                live.append(ticket)
            assert all(t.state == CLOSED for t, _ in evicted)
        elif live:
            ticket = live[pick % len(live)]
            if op == "open" and ticket.state == HANDSHAKE:
                room, _ = policy.opened(ticket, now)
                assert all(t.state == CLOSED for t in room)
            elif op == "close":
                policy.closed(ticket, now)
            elif op == "active":
                policy.active(ticket, dt, now)
            elif op == "due":
                closing, started = policy.due(now)
                assert all(t.state == CLOSED for t, _ in closing)
                assert all(t.state == HANDSHAKE for t in started)
        live = [t for t in live if t.state != CLOSED]
        assert policy.sessions <= LIMITS.max_sessions
        assert policy.pending <= LIMITS.max_pending
        assert policy.pending + policy.sessions == len(live)
        for source in {t.source for t in live}:
            mine = [t for t in live if t.source == source]
            assert len(mine) <= LIMITS.max_links_per_source
            in_handshake = sum(1 for t in mine if t.state == HANDSHAKE)
            assert in_handshake <= LIMITS.max_handshakes_per_source
            # Nobody waits while its source has a free handshake slot.
            if in_handshake < LIMITS.max_handshakes_per_source:
                assert all(t.state != WAITING for t in mine)


def test_rejections_summary_once_per_period_per_reason() -> None:
    rejections = Rejections(period=60.0)
    first = rejections.add("refused source-links", "10.0.0.9", 0.0)
    assert first == "refused 1 link in the last 0 s: source-links; most from 10.0.0.9 (1)"
    for i in range(1, 100):
        assert rejections.add("refused source-links", "10.0.0.9", float(i) / 2) is None
    other = rejections.add("closed timeout", "10.0.0.8", 1.0)
    assert other is not None and other.startswith("closed 1 link")
    assert rejections.flush(59.0) == []
    lines = rejections.flush(60.0)
    assert lines == [
        "refused 99 links in the last 60 s: source-links; most from 10.0.0.9 (99)"
    ]
    assert rejections.flush(200.0) == []  # nothing new, nothing said
    line = rejections.add("refused source-links", "10.0.0.7", 200.0)
    assert line == "refused 1 link in the last 140 s: source-links; most from 10.0.0.7 (1)"
