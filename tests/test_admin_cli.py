"""`waystation pair` / `waystation devices`: command lines to control requests, sizes, rendering."""

from __future__ import annotations

import argparse

import pytest

from node.app.admin_cli import RENDER, request_of, size
from node.app.cli import build_parser


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pair"], ("pair.open", {})),
        (["pair", "--seconds", "60"], ("pair.open", {"seconds": 60.0})),
        (["pair", "open", "--seconds", "30", "--json"], ("pair.open", {"seconds": 30.0})),
        (["pair", "status"], ("pair.status", {})),
        (
            ["pair", "join", "192.0.2.7:4740", "1234-5678", "--fingerprint", "ab12"],
            ("pair.join", {"relay": "192.0.2.7:4740", "code": "1234-5678", "fingerprint": "ab12"}),
        ),
        (["devices"], ("devices.list", {})),
        (["devices", "list"], ("devices.list", {})),
        (
            ["devices", "rename", "ab12", "Ana"],
            ("devices.rename", {"device": "ab12", "name": "Ana"}),
        ),
        (
            ["devices", "set-quota", "Ana", "64MiB"],
            ("devices.set_quota", {"device": "Ana", "bytes": 64 << 20}),
        ),
        (["devices", "revoke", "Ana"], ("devices.revoke", {"device": "Ana"})),
    ],
)
def test_command_lines_become_control_requests(
    argv: list[str], expected: tuple[str, dict[str, object]]
) -> None:
    assert request_of(build_parser().parse_args(argv)) == expected


def test_options_before_or_after_the_action() -> None:
    parser = build_parser()
    before = parser.parse_args(["devices", "--json", "--timeout", "3", "list"])
    after = parser.parse_args(["devices", "list", "--json", "--timeout", "3"])
    for args in (before, after):
        assert args.json is True and args.timeout == 3.0 and args.data is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("1024", 1024), ("512K", 512 << 10), ("64M", 64 << 20), ("64MiB", 64 << 20), ("1g", 1 << 30)],
)
def test_sizes(text: str, value: int) -> None:
    assert size(text) == value


@pytest.mark.parametrize("text", ["lots", "", "M", "1X"])
def test_bad_sizes_say_what_is_accepted(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="512K, 64M, 1G"):
        size(text)


def test_names_are_escaped_for_the_terminal() -> None:
    row = {
        "name": "evil\x1b[2J\x9bname",
        "kind": "device",
        "fingerprint": "ab12-" * 7 + "ab12",
        "quota": 1 << 20,
        "logs": 2,
        "created": 1_764_900_000,
    }
    text = RENDER["devices.list"]({"devices": [row]})
    assert "\x1b" not in text and "\x9b" not in text
    assert "evil\\x1b[2J\\x9bname" in text and "1 MiB" in text and "2025-12-05" in text
    assert RENDER["devices.list"]({"devices": []}) == "no paired devices or relays\n"
