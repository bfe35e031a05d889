"""The ``waystation`` command: ``run`` starts the relay, ``peer …`` is the desktop member client."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from node import __version__
from node.app.config import apply_overrides, load_config
from node.app.daemon import Daemon
from node.app.identity import load_or_create_identity
from node.app.logs import setup_logging
from node.app.peer_cli import add_peer_commands, run_peer_command
from node.crypto._nacl import NaclSuite
from node.errors import NodeError


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
    identity = commands.add_parser("identity", help="print this node's identity and exit")
    identity.add_argument("--data", type=Path, help="data directory")
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
            data_dir = args.data or default_data_dir()
            identity = load_or_create_identity(data_dir, suite)
            print("node %s" % identity.fingerprint(suite))
            print("data %s" % data_dir)
            return 0
        if args.command == "run":
            return run_daemon(args, suite)
        if args.command == "peer":
            return run_peer_command(args)
    except NodeError as exc:
        print("waystation: %s" % exc, file=sys.stderr)
        return 2
    parser.error("unknown command %r" % args.command)
    return 2


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
