"""Frame hints in the session (node/proto/session.py): what it sends is sized from its own link's
hint; what it accepts is not (docs/protocol.md, "Frame hints")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.proto.messages import MAX_MESSAGE, MAX_SIZE, RECONCILE
from node.proto.session import (
    IN_FLIGHT_MESSAGES,
    MIN_FRAME_TARGET,
    MIN_RECONCILE_MESSAGE,
    NOISE_TAG,
    AckReceived,
    EntriesReceived,
)
from tests.session_helpers import SessionPair


def open_pair(client_hint: int, server_hint: int = 65535) -> SessionPair:
    pair = SessionPair(hints=(client_hint, server_hint))
    pair.transfer()
    assert pair.client.is_open and pair.server.is_open
    pair.events(pair.client)
    pair.events(pair.server)
    return pair


@given(st.integers(min_value=23, max_value=65535))
@settings(max_examples=200, deadline=None)
def test_targets_follow_the_hint_within_their_floors(hint: int) -> None:
    pair = SessionPair(hints=(hint, hint))
    client = pair.client
    assert client.message_target == max(MIN_FRAME_TARGET, hint) - NOISE_TAG <= MAX_MESSAGE
    assert client.send_cap == IN_FLIGHT_MESSAGES * (client.message_target + NOISE_TAG)
    room = client.reconcile_room
    assert 256 < room <= MAX_SIZE[RECONCILE]
    assert room + 6 == max(MIN_RECONCILE_MESSAGE, min(MAX_SIZE[RECONCILE], client.message_target))


@pytest.mark.parametrize("hint", [23, 185, 244, 512, 4096])
def test_entries_frames_fit_the_hint_and_in_flight_stops_at_the_cap(hint: int) -> None:
    pair = open_pair(hint)
    client = pair.client
    items = [bytes([i % 251]) * 150 for i in range(2000)]
    sent = client.send_entries(0, items, 0)
    frames = client.frames_to_send()
    assert 0 < sent < len(items)  # the cap, not the 1 MiB credit, stopped it
    assert all(len(f) <= max(hint, MIN_FRAME_TARGET) for f in frames)
    assert client.in_flight <= client.send_cap < client.send_credit
    assert client.send_room == client.send_cap - client.in_flight
    for frame in frames:
        pair.server.receive_frame(frame, 0)
    received = [e for e in pair.events(pair.server) if isinstance(e, EntriesReceived)]
    assert sum(len(e.items) for e in received) == sent
    # The receiver acknowledges everything: the credit comes back and the room with it.
    for event in received:
        pair.server.send_ack(0, len(event.items), event.size, 0)
    pair.transfer()
    assert client.in_flight == 0
    assert [e for e in pair.events(client) if isinstance(e, AckReceived)]
    assert client.send_entries(0, items[sent:], 0) > 0


def test_an_entry_larger_than_the_cap_still_goes_alone() -> None:
    pair = open_pair(185)
    client = pair.client
    big = b"B" * (client.send_cap * 2)
    assert client.send_entries(0, [b"small"], 0) == 1
    assert client.send_entries(0, [big], 0) == 0  # in flight: the cap holds it back
    pair.transfer()  # delivers the small one; nobody acks yet
    pair.server.send_ack(0, 1, pair.server.limits.window - pair.server.receive_window, 0)
    pair.transfer()
    assert client.in_flight == 0
    assert client.send_entries(0, [big], 0) == 1  # nothing in flight: it goes, in pieces
    frames = client.frames_to_send()
    assert len(frames) > 2 and all(len(f) <= MIN_FRAME_TARGET for f in frames)


def test_tcp_hint_changes_nothing() -> None:
    pair = open_pair(65535)
    client = pair.client
    assert client.message_target == MAX_MESSAGE
    assert client.send_cap > client.limits.window  # the peer's credit is the only limit
    items = [b"x" * 1000] * 2000
    sent = client.send_entries(0, items, 0)
    assert client.in_flight == client.limits.window - client.send_credit
    assert sent * 1000 > client.limits.window - 2000 * 8  # the whole window was used


def test_a_small_hint_side_accepts_large_frames_from_the_other() -> None:
    pair = open_pair(23, 65535)
    items = [b"y" * 30_000]
    assert pair.server.send_entries(1, items, 0) == 1
    frames = pair.server.frames_to_send()
    assert max(len(f) for f in frames) > 30_000
    for frame in frames:
        pair.client.receive_frame(frame, 0)
    got = [e for e in pair.events(pair.client) if isinstance(e, EntriesReceived)]
    assert got and got[0].items == items
