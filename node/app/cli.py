"""The ``waystation`` command: ``run`` starts the relay, ``peer …`` is the desktop member client."""

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from node import __version__
from node.app.identity import load_or_create_identity
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
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument("--data", type=Path, help="data directory (default: %s)" % default_data_dir())
    commands.add_parser("identity", help="print this node's identity and exit")
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
        if args.command in ("run", "identity"):
            data_dir = getattr(args, "data", None) or default_data_dir()
            identity = load_or_create_identity(data_dir, suite)
            print("node %s" % identity.fingerprint(suite))
            print("data %s" % data_dir)
            if args.command == "run":
                print("the relay daemon is not built yet: identity only, nothing is relayed")
            return 0
    except NodeError as exc:
        print("waystation: %s" % exc, file=sys.stderr)
        return 2
    parser.error("unknown command %r" % args.command)
    return 2
