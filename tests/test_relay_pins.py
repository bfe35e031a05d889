"""A member's relay pins (node.app.pair_client): relays.json keeps the discovery key a relay gave
at pairing, and a paired relay is recognised by its rotating token, not by any fixed identifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.app.pair_client import (
    TOKEN_SKEW_PERIODS,
    PairingError,
    RelayPin,
    load_pins,
    pin_for_token,
    save_pin,
)
from node.crypto.rendezvous import TOKEN_INTERVAL, discovery_key, relay_token, round_period
from node.link import PeerAddress

NOW = 1_796_000_000  # 2026-11-30
KEY = discovery_key(bytes(range(32)))
OTHER = discovery_key(bytes(range(1, 33)))


def token_at(key: bytes, unix: int) -> bytes:
    return relay_token(key, round_period(unix, TOKEN_INTERVAL))


def test_relays_json_keeps_the_discovery_key_and_reads_pins_without_one(tmp_path: Path) -> None:
    save_pin(tmp_path, PeerAddress("ble", "any"), RelayPin("aaaa", bytes(32), KEY))
    save_pin(tmp_path, PeerAddress("tcp", "192.0.2.7:4740"), RelayPin("bbbb"))
    table = json.loads((tmp_path / "relays.json").read_text())
    assert table["ble:any"]["discovery_key"] == KEY.hex()
    assert "discovery_key" not in table["tcp:192.0.2.7:4740"]  # as written before the key
    pins = load_pins(tmp_path)
    assert pins["ble:any"] == RelayPin("aaaa", bytes(32), KEY)
    assert pins["tcp:192.0.2.7:4740"] == RelayPin("bbbb")


def test_a_damaged_discovery_key_is_refused(tmp_path: Path) -> None:
    bad = {"ble:any": {"fingerprint": "aaaa", "discovery_key": "00" * 31}}
    (tmp_path / "relays.json").write_text(json.dumps(bad))
    with pytest.raises(PairingError, match="damaged"):
        load_pins(tmp_path)


def test_a_paired_relay_is_recognised_by_its_token_in_any_period_near_ours() -> None:
    pins = {"ble:mine": RelayPin("aaaa", b"", KEY), "ble:theirs": RelayPin("bbbb", b"", OTHER)}
    for skew in (0, 1, -1, TOKEN_SKEW_PERIODS, -TOKEN_SKEW_PERIODS):  # clocks that differ
        assert pin_for_token(pins, token_at(KEY, NOW + skew * TOKEN_INTERVAL), NOW) == "ble:mine"
    assert pin_for_token(pins, token_at(OTHER, NOW), NOW) == "ble:theirs"
    far = NOW + (TOKEN_SKEW_PERIODS + 1) * TOKEN_INTERVAL
    assert pin_for_token(pins, token_at(KEY, far), NOW) is None  # a clock off by over a day


def test_a_token_no_pin_gives_is_not_your_relay() -> None:
    stranger = discovery_key(bytes(32))
    pins = {"ble:mine": RelayPin("aaaa", b"", KEY), "tcp:x:1": RelayPin("cccc")}  # no key
    assert pin_for_token(pins, token_at(stranger, NOW), NOW) is None
    assert pin_for_token(pins, bytes(8), NOW) is None
    assert not RelayPin("cccc").knows_token(token_at(KEY, NOW), NOW)
