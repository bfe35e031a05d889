"""Fixtures for the BLE tests: a fresh private bus with BlueZoo per test (about 0.3 s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.radio.bus import PrivateBluez


@pytest.fixture
def bluez(tmp_path: Path) -> Iterator[PrivateBluez]:
    env = PrivateBluez(tmp_path, adapters=3).start()
    try:
        yield env
    finally:
        env.stop()
