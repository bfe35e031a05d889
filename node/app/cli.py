"""The ``waystation`` command: ``run`` starts the relay, ``peer …`` is the desktop member client."""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from node import __version__
from node.app.admin_cli import (
    EXIT_NO_ANSWER,
    EXIT_NOT_RUNNING,
    add_admin_commands,
    ask,
    positive_seconds,
    run_admin_command,
)
from node.app.config import apply_overrides, load_config
from node.app.control import socket_path
from node.app.daemon import Daemon
from node.app.identity import load_identity, load_or_create_identity
from node.app.logs import setup_logging
from node.app.peer_cli import add_peer_commands, run_peer_command
from node.app.peer_session import member_dir_marker
from node.app.status import render_text
from node.crypto._nacl import NaclSuite
from node.errors import NodeError

# Exit status of `waystation status`, `identity`, `pair` and `devices` (LSB init-script convention
# for "status": 3 = not running), from node.app.admin_cli; docs/operations.md lists them.
__all__ = ["EXIT_NOT_RUNNING", "EXIT_NO_ANSWER", "build_parser", "main"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/waystation``, else ``~/.local/share/waystation``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "waystation"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="waystation",
        description="Zero-knowledge store-and-forward relay for Berty-style messaging.",
    )
    parser.add_argument("--version", action="version", version="waystation " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the relay daemon")
    run.add_argument("--config", type=Path, help="TOML configuration file (default: built in)")
    run.add_argument("--data", type=Path, help="data directory (default: %s)" % default_data_dir())
    run.add_argument(
        "--listen",
        metavar="HOST:PORT",
        action="append",
        help="address to accept links on (repeatable; replaces lan.listen)",
    )
    run.add_argument(
        "--interface",
        metavar="NAME",
        action="append",
        default=[],
        help="listen on this interface (eth0) or address, at lan.listen's port (repeatable)",
    )
    run.add_argument(
        "--peer",
        metavar="[tcp:]HOST:PORT",
        action="append",
        default=[],
        help="a relay to sync with (repeatable)",
    )
    run.add_argument("--no-zeroconf", action="store_true", help="neither advertise nor browse")
    add_peer_commands(commands)
    status = commands.add_parser(
        "status",
        help="ask the running relay how it is doing",
        description="Ask the relay daemon of DIR over its control socket (DIR/control.sock). "
        "Exit status: 0 it answered, 3 no daemon runs there, 4 one seems to run but did not "
        "answer (permissions, deadline), 2 usage error.",
    )
    status.add_argument(
        "--data",
        type=Path,
        help="data directory (default: %s, or %s when a daemon runs there and not in the first)"
        % (default_data_dir(), SERVICE_DATA_DIR),
    )
    status.add_argument("--json", action="store_true", help="print the daemon's JSON report")
    status.add_argument(
        "--timeout", type=positive_seconds, default=5.0, metavar="S", help="deadline (default 5)"
    )
    identity = commands.add_parser(
        "identity",
        help="print this node's identity and exit",
        description="Print the fingerprint of DIR/node.key. Without the key, say so and exit 3 "
        "(the relay creates one on its first start), unless --create is given.",
    )
    identity.add_argument(
        "--data", type=Path, help="data directory (default: %s)" % default_data_dir()
    )
    identity.add_argument("--create", action="store_true", help="create the key if there is none")
    add_admin_commands(
        commands,
        "data directory of the running relay (default: as for status)",
    )
    return parser



def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``waystation`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    suite = NaclSuite()
    try:
        if args.command == "identity":
            return show_identity(args.data or default_data_dir(), args.create, suite)
        if args.command == "status":
            return show_status(args.data or status_data_dir(), args.json, args.timeout)
        if args.command == "run":
            return run_daemon(args, suite)
        if args.command == "peer":
            return run_peer_command(args)
        if args.command in ("pair", "devices"):
            return run_admin_command(args, args.data or status_data_dir())
    except NodeError as exc:
        print("waystation: %s" % exc, file=sys.stderr)
        return 2
    parser.error("unknown command %r" % args.command)
    return 2


def show_identity(data_dir: Path, create: bool, suite: NaclSuite) -> int:
    """`waystation identity`: the node key's fingerprint; creates a key only when asked."""
    identity = (
        load_or_create_identity(data_dir, suite) if create else load_identity(data_dir, suite)
    )
    if identity is None:
        print(
            "waystation: no node key in %s (the relay creates one on its first start; "
            "`waystation identity --create` makes one now)" % data_dir,
            file=sys.stderr,
        )
        return EXIT_NOT_RUNNING
    print("node %s" % identity.fingerprint(suite))
    print("data %s" % data_dir)
    return 0


SERVICE_DATA_DIR = Path("/var/lib/waystation")  # StateDirectory= of config/waystation.service


def status_data_dir() -> Path:
    """`status` without --data: the user's default directory, or else the service's, whichever
    has a control socket (so `sudo waystation status` finds the installed service)."""
    for candidate in (default_data_dir(), SERVICE_DATA_DIR):
        if socket_path(candidate).exists():
            return candidate
    return default_data_dir()


def show_status(data_dir: Path, as_json: bool, timeout: float) -> int:
    """`waystation status`: ask the daemon over its control socket and print the answer."""
    report = ask(data_dir, "status", {}, timeout, refused=EXIT_NO_ANSWER)
    if isinstance(report, int):
        return report
    if as_json:
        print(json.dumps(report, indent=1, sort_keys=True))
    else:
        sys.stdout.write(render_text(report))
    return 0


def run_daemon(args: argparse.Namespace, suite: NaclSuite) -> int:
    """`waystation run`: configuration (file, then flags), then the daemon until a signal."""
    config = apply_overrides(
        load_config(args.config),
        data=args.data,
        listen=args.listen,
        interfaces=args.interface,
        peers=args.peer,
    )
    if args.no_zeroconf:
        config = replace(config, lan=replace(config.lan, zeroconf=False))
    setup_logging(config.log.level)
    data_dir = config.node.data_dir or default_data_dir()
    marker = member_dir_marker(Path(data_dir))
    if marker is not None:
        print(
            "waystation: %s is a member's data directory (it holds %s): give the relay a"
            " directory of its own with --data" % (data_dir, marker),
            file=sys.stderr,
        )
        return 2
    daemon = Daemon(config, suite, data_dir)
    failed: list[BaseException] = []
    try:
        asyncio.run(daemon.run())
    except* NodeError as group:  # raised inside the daemon's TaskGroup: say it plainly
        failed.extend(group.exceptions)
    if failed:
        print("waystation: %s" % failed[0], file=sys.stderr)
        return 2
    return 0
