"""`waystation pair` and `waystation devices`: pairing and paired devices, over the control socket.

Each subcommand is one request on DIR/control.sock (node/app/control.py), the same request the
serial console sends, so every command exists once (docs/operations.md lists the request and
reply shapes). `--json` prints the daemon's result as it came; without it a few plain lines.
Names of devices come partly from phones (the name they gave when pairing): they are printed with
control characters escaped.

Exit status, as `waystation status`: 0 the daemon answered, 1 it refused the request (a bad
argument, no such device: its message is printed), 2 usage, 3 no daemon runs on DIR, 4 one seems
to run but did not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from node.app.control import CommandError, ControlUnavailableError, request

EXIT_REFUSED = 1
EXIT_NOT_RUNNING = 3
EXIT_NO_ANSWER = 4

SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def ask(
    data_dir: Path, cmd: str, args: Mapping[str, object], timeout: float, refused: int
) -> dict[str, object] | int:
    """One control request: its result, or the exit status after saying what went wrong."""
    try:
        return request(data_dir, cmd, args, timeout=timeout)
    except ControlUnavailableError as exc:
        sys.stderr.write("waystation: %s\n" % exc)
        return EXIT_NO_ANSWER if exc.running else EXIT_NOT_RUNNING
    except CommandError as exc:
        sys.stderr.write("waystation: the daemon refused: %s (%s)\n" % (exc.message, exc.code))
        return refused


def size(text: str) -> int:
    """argparse type of a quota: bytes, or with a binary unit (64M, 64MiB, 1G)."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = cleaned[-1:] if cleaned[-1:] in SIZE_UNITS else ""
    number = cleaned[: len(cleaned) - len(unit)]
    try:
        return int(float(number) * SIZE_UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(
            "%r is not a size (bytes, or with a unit: 512K, 64M, 1G)" % text
        ) from None


def _common(parser: argparse.ArgumentParser, data_help: str, leaf: bool) -> None:
    """--data, --json, --timeout on a parser; on a leaf they do not override the parent's."""
    unset = argparse.SUPPRESS
    parser.add_argument("--data", type=Path, default=unset if leaf else None, help=data_help)
    parser.add_argument(
        "--json",
        action="store_true",
        default=unset if leaf else False,
        help="print the daemon's JSON result",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=unset if leaf else 10.0,
        metavar="S",
        help="deadline of the request (default 10)",
    )


def positive_seconds(text: str) -> float:
    """argparse type of --timeout: seconds in (0, 3600]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % text) from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be in (0, 3600] seconds, got %s" % text)
    return value


def add_admin_commands(commands: argparse._SubParsersAction, data_help: str) -> None:  # type: ignore[type-arg]
    """Add `pair` and `devices` to the top-level subcommands."""
    pair = commands.add_parser(
        "pair",
        help="open a pairing window on the running relay (a code and a QR code for the phone)",
        description="Without an action: open a pairing window (pair open). Exit status: 0 done, "
        "1 refused, 3 no daemon, 4 no answer.",
    )
    _common(pair, data_help, leaf=False)
    pair.add_argument("--seconds", type=float, default=None, help="how long (10..3600)")
    actions = pair.add_subparsers(dest="action", metavar="ACTION")
    opener = actions.add_parser("open", help="open a window (closes an open one)")
    opener.add_argument(
        "--seconds", type=float, default=argparse.SUPPRESS, help="how long (10..3600)"
    )
    status = actions.add_parser("status", help="is a window open; how a join went")
    join = actions.add_parser("join", help="pair this relay with another relay's open window")
    join.add_argument("relay", metavar="HOST:PORT")
    join.add_argument("code", metavar="CODE")
    join.add_argument("--fingerprint", help="the other relay's fingerprint (from its QR code)")
    for leaf in (opener, status, join):
        _common(leaf, data_help, leaf=True)

    devices = commands.add_parser(
        "devices",
        help="list, rename, set the quota of, or revoke paired devices and relays",
        description="Without an action: list them. DEVICE is a name or a fingerprint prefix.",
    )
    _common(devices, data_help, leaf=False)
    actions = devices.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="every paired device and relay")
    rename = actions.add_parser("rename", help="give a device another name")
    rename.add_argument("device", metavar="DEVICE")
    rename.add_argument("name", metavar="NAME")
    quota = actions.add_parser("set-quota", help="bytes each of the device's logs may hold")
    quota.add_argument("device", metavar="DEVICE")
    quota.add_argument("bytes", metavar="SIZE", type=size, help="e.g. 64M")
    revoke = actions.add_parser("revoke", help="drop the pin; its links end at once")
    revoke.add_argument("device", metavar="DEVICE")
    for leaf in (listing, rename, quota, revoke):
        _common(leaf, data_help, leaf=True)


def request_of(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    """The control command and its arguments for a parsed `pair` or `devices` command line."""
    action = args.action
    if args.command == "pair":
        if action in (None, "open"):
            seconds = args.seconds
            return "pair.open", {} if seconds is None else {"seconds": seconds}
        if action == "status":
            return "pair.status", {}
        found: dict[str, object] = {"relay": args.relay, "code": args.code}
        if args.fingerprint:
            found["fingerprint"] = args.fingerprint
        return "pair.join", found
    if action in (None, "list"):
        return "devices.list", {}
    if action == "rename":
        return "devices.rename", {"device": args.device, "name": args.name}
    if action == "set-quota":
        return "devices.set_quota", {"device": args.device, "bytes": args.bytes}
    return "devices.revoke", {"device": args.device}


def run_admin_command(args: argparse.Namespace, data_dir: Path) -> int:
    """Run `waystation pair …` or `waystation devices …` against the daemon of `data_dir`."""
    cmd, cmd_args = request_of(args)
    result = ask(data_dir, cmd, cmd_args, args.timeout, EXIT_REFUSED)
    if isinstance(result, int):
        return result
    if args.json:
        sys.stdout.write(json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(RENDER[cmd](result))
    return 0


# -- plain text -------------------------------------------------------------------------------


def printable(value: object) -> str:
    """Text for a terminal: control characters (C0, DEL, C1) escaped."""
    return "".join(
        ch if ch.isprintable() else "\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u%04x" % ord(ch)
        for ch in str(value)
    )


def _render_open(result: Mapping[str, object]) -> str:
    code, fingerprint = result.get("code"), result.get("fingerprint")
    return (
        "pairing window open for %s s, %s attempts\n"
        "code         %s\n"
        "fingerprint  %s\n"
        "%s"
        "on the phone: waystation peer pair --code %s --fingerprint %s"
        " --relay HOST:PORT (or --ble)\n"
        % (
            result.get("expires_in_s"),
            result.get("attempts_left"),
            code,
            fingerprint,
            result.get("qr_text", ""),
            code,
            fingerprint,
        )
    )


def _render_join(join: Mapping[str, object]) -> str:
    if not join:
        return ""
    text = "join %s: %s" % (printable(join.get("relay")), join.get("state"))
    if "fingerprint" in join:
        text += " (fingerprint %s)" % join["fingerprint"]
    if "error" in join:
        text += ": %s" % printable(join["error"])
    return text + "\n"


def _render_status(result: Mapping[str, object]) -> str:
    if result.get("open"):
        line = "pairing window open, %s s left, %s attempts left" % (
            result.get("expires_in_s"),
            result.get("attempts_left"),
        )
    else:
        line = "no pairing window open (%s)" % (result.get("closed") or "closed")
    join = result.get("join")
    return "%s\nfingerprint  %s\n%s" % (
        line,
        result.get("fingerprint"),
        _render_join(join if isinstance(join, dict) else {}),
    )


def _quota(value: object) -> str:
    number = value if isinstance(value, int) else 0
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB" or number % 1024:
            return "%d %s" % (number, unit)
        number //= 1024
    return "%d B" % number


def _device_line(row: Mapping[str, object]) -> str:
    created = row.get("created")
    when = (
        datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%MZ")
        if isinstance(created, int)
        else "?"
    )
    return "%-20s %-6s %s %9s %4s  %s\n" % (
        printable(row.get("name")),
        row.get("kind"),
        row.get("fingerprint"),
        _quota(row.get("quota")),
        row.get("logs"),
        when,
    )


def _render_list(result: Mapping[str, object]) -> str:
    rows = result.get("devices")
    if not isinstance(rows, list) or not rows:
        return "no paired devices or relays\n"
    header = "%-20s %-6s %-39s %9s %4s  %s\n" % (
        "NAME", "KIND", "FINGERPRINT", "QUOTA", "LOGS", "PAIRED",
    )  # fmt: skip
    return header + "".join(_device_line(r) for r in rows if isinstance(r, dict))


def _render_revoke(result: Mapping[str, object]) -> str:
    return "revoked %s: %s log(s) unpinned, %s link(s) closed\n" % (
        printable(result.get("revoked")),
        result.get("logs_unpinned"),
        result.get("links_closed"),
    )


RENDER: dict[str, Callable[[Mapping[str, object]], str]] = {
    "pair.open": _render_open,
    "pair.status": _render_status,
    "pair.join": _render_join,
    "devices.list": _render_list,
    "devices.rename": _device_line,
    "devices.set_quota": _device_line,
    "devices.revoke": _render_revoke,
}
