"""The Raspberry Pi image pins every runtime dependency (images/raspberrypi/constraints.txt):
a dependency missing there stops the image build with pip's "no matching distribution"."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_runtime_dependency_and_the_ble_extra_is_pinned_for_the_image() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["ble"]}
    lines = (ROOT / "images" / "raspberrypi" / "constraints.txt").read_text().splitlines()
    pinned = {_name(line) for line in lines if line and not line.startswith("#")}
    assert all("==" in line for line in lines if line and not line.startswith("#"))
    assert sorted(wanted - pinned) == []
