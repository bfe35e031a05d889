"""`waystation peer ...`: the desktop member client (L2 wiring of node.member).

    waystation peer init         --data DIR --name NAME
    waystation peer group create --data DIR NAME          prints the group id
    waystation peer groups       --data DIR               lists groups (id, name)
    waystation peer invite       --data DIR GROUP         prints the invitation (carries the secret)
    waystation peer join         --data DIR INVITATION    prints the group id
    waystation peer send         --data DIR GROUP TEXT    prints the entry CID
    waystation peer read         --data DIR GROUP [--json]

GROUP is a group id (64 hex digits), a unique prefix of one (>= 4 digits), or a group's name.
`read` prints one line per message, "<UTC time>  <author>: <text>", oldest first (log order);
with --json it prints JSON Lines: one object per message with the keys cid, lamport, author,
member, device, sent_ms, time (UTC ISO 8601), body, mine.

Wiring: NaclSuite + SQLiteStore (DIR/store.sqlite3) + MemberClient (DIR/account.json, DIR/groups/).
`send` and `read` first process whatever entries are in the store. User mistakes (no account,
unknown group, bad invitation) print one line "waystation peer: ..." to stderr and exit 1.

Hook for `peer sync` (added by the link driver's author): open_member(DIR) gives a PeerSession
(suite, store, client); sync_policy_logs(client) gives the logs to declare, as LogPolicy.own wants
them (address -> (sign_pub, identity signature)); after_sync(client) processes what arrived.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from node.crypto._nacl import NaclSuite
from node.errors import LinkError, NodeError
from node.member.client import MemberClient, Message, ProcessReport, SyncLog, is_initialised
from node.member.errors import MemberError
from node.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from node.app.peer import SyncOutcome

EXIT_USER_ERROR = 1


def default_member_dir() -> Path:
    """``$XDG_DATA_HOME/waystation-peer``, else ``~/.local/share/waystation-peer``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "waystation-peer"


# ---- the sync hook ---------------------------------------------------------------------------


class PeerSession:
    """An opened member data directory: suite, store and client. Close it (or use `with`)."""

    def __init__(self, data_dir: Path, create_name: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.suite = NaclSuite()
        if create_name is None and not is_initialised(self.data_dir):
            raise MemberError(
                "no member account in %s: run `waystation peer init --data %s --name NAME` first"
                % (self.data_dir, self.data_dir)
            )
        if create_name is not None:
            if is_initialised(self.data_dir):
                raise MemberError("%s already holds a member account" % self.data_dir)
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise MemberError("cannot create %s: %s" % (self.data_dir, exc)) from exc
        self.store = SQLiteStore.open_in(self.data_dir, self.suite.ed25519_verify)
        try:
            if create_name is not None:
                self.client = MemberClient.init(self.suite, self.store, self.data_dir, create_name)
            else:
                self.client = MemberClient(self.suite, self.store, self.data_dir)
        except BaseException:
            self.store.close()
            raise

    def close(self) -> None:
        """Close the store (everything the client wrote is already committed)."""
        self.store.close()

    def __enter__(self) -> "PeerSession":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_member(data_dir: Path) -> PeerSession:
    """Open an initialised member data directory (raises MemberError if there is none)."""
    return PeerSession(data_dir)


def sync_logs(client: MemberClient) -> list[SyncLog]:
    """The logs the member wants synced (address, sign_pub, header, ...), two per group."""
    return client.sync_logs()


def sync_policy_logs(client: MemberClient) -> dict[str, tuple[bytes, bytes]]:
    """The same, shaped for node.app.context.LogPolicy.own: address -> (sign_pub, identity sig)."""
    return {log.address: (log.sign_pub, log.identity_signature) for log in client.sync_logs()}


def after_sync(client: MemberClient, now: float | None = None) -> ProcessReport:
    """Process the entries a sync brought in (open messages, answer new members with keys).

    Entries the member itself writes while processing (chain keys for new members) are in the
    store afterwards; a further sync pass uploads them.
    """
    return client.process(time.time() if now is None else now)


# ---- argument parsing ------------------------------------------------------------------------


def _data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="member data directory (default: %s)" % default_member_dir(),
    )


def add_peer_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `peer` and its subcommands to the top-level parser's subparsers."""
    peer = subparsers.add_parser("peer", help="the desktop member client (groups, messages)")
    commands = peer.add_subparsers(dest="peer_command", metavar="PEER_COMMAND")

    init = commands.add_parser("init", help="create this device's member account")
    _data_arg(init)
    init.add_argument("--name", required=True, help="the display name others will see")

    group = commands.add_parser("group", help="manage groups")
    group_commands = group.add_subparsers(dest="group_command", metavar="GROUP_COMMAND")
    create = group_commands.add_parser("create", help="create a group; prints its id")
    _data_arg(create)
    create.add_argument("name", metavar="NAME")

    groups = commands.add_parser("groups", help="list groups (id and name)")
    _data_arg(groups)

    invite = commands.add_parser(
        "invite", help="print an invitation to a group (it carries the group secret)"
    )
    _data_arg(invite)
    invite.add_argument("group", metavar="GROUP")

    join = commands.add_parser("join", help="join a group from an invitation; prints its id")
    _data_arg(join)
    join.add_argument("invitation", metavar="INVITATION")

    send = commands.add_parser("send", help="write a message to a group")
    _data_arg(send)
    send.add_argument("group", metavar="GROUP")
    send.add_argument("text", metavar="TEXT")

    sync = commands.add_parser("sync", help="exchange entries with a relay")
    _data_arg(sync)
    where = sync.add_mutually_exclusive_group(required=True)
    where.add_argument("--relay", metavar="HOST:PORT", help="the relay to sync with")
    where.add_argument("--discover", action="store_true", help="find a relay on the LAN")
    sync.add_argument("--timeout", type=float, default=60.0, help="give up after S seconds")
    sync.add_argument(
        "--interface", action="append", default=None, help="zeroconf interface (with --discover)"
    )
    # progress thresholds (PROGRESS_MIN_ENTRIES, PROGRESS_INTERVAL_S), for tests: not in --help
    sync.add_argument("--progress-entries", type=int, default=None, help=argparse.SUPPRESS)
    sync.add_argument("--progress-interval", type=float, default=None, help=argparse.SUPPRESS)

    read = commands.add_parser("read", help="print a group's messages in order")
    _data_arg(read)
    read.add_argument("group", metavar="GROUP")
    read.add_argument("--json", action="store_true", help="JSON Lines: one object per message")


# ---- running ---------------------------------------------------------------------------------


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def _utc(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _printable(text: str) -> str:
    """Text from other members, safe for a terminal: control characters escaped, lines kept."""
    out = []
    for ch in text:
        if ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append("\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u%04x" % ord(ch))
    return "".join(out)


# Characters json.dumps(ensure_ascii=False) leaves raw that common line splitters (Python's
# str.splitlines, older JavaScript) treat as line ends: a message containing one would cut its
# JSON Lines record in two.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_line(record: dict[str, object]) -> str:
    """One JSON Lines record: UTF-8 text kept readable, every line-breaking character escaped."""
    line = json.dumps(record, ensure_ascii=False, sort_keys=True)
    for raw, escaped in _LINE_BREAKS.items():
        line = line.replace(raw, escaped)
    return line


def _message_line(message: Message) -> str:
    head = "%s  %s: " % (_utc(message.sent_date), _printable(message.author))
    body = _printable(message.body).replace("\n", "\n" + " " * len(head))
    return head + body


def _run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data if args.data is not None else default_member_dir()
    command = args.peer_command
    now = time.time()
    if command == "init":
        with PeerSession(data_dir, create_name=args.name) as session:
            _out("account created in %s" % session.data_dir)
        return 0
    with open_member(data_dir) as session:
        client = session.client
        if command == "group":
            _out(client.create_group(args.name, now))
        elif command == "groups":
            for group_id, name in client.list_groups():
                _out("%s  %s" % (group_id, _printable(name)))
        elif command == "invite":
            _out(client.invitation(args.group))
        elif command == "join":
            group_id = client.join(args.invitation, now)
            _out(group_id)
            _err(
                "joined %r; sync with a relay to meet the other members"
                % client.groups[group_id].name
            )
        elif command == "send":
            client.process(now)
            _out(str(client.send(args.group, args.text, now)))
        elif command == "sync":
            return _sync(session, args)
        elif command == "read":
            client.process(now)
            messages = client.read(args.group)
            for message in messages:
                if args.json:
                    record = message.to_json()
                    record["time"] = _utc(message.sent_date)
                    _out(_json_line(record))
                else:
                    _out(_message_line(message))
            waiting = client.pending(args.group)
            if waiting:
                _err("%d message(s) wait for their sender's key (sync again later)" % waiting)
            state = client.resolve(args.group)  # a hole is said, never skipped silently
            for address in (state.metadata_address, state.messages_address):
                notice = session.store.hole(address) if session.store.has_log(address) else ""
                if notice:
                    _err("%s: %s" % (state.name, notice))
    return 0


EXIT_SYNC_FAILED = 3
MAX_SYNC_ROUNDS = 3
# `peer sync` prints "... sent S, received R entries" once this many entries moved, then at most
# once per interval. Read at call time; tests pass smaller values (hidden --progress-* options).
PROGRESS_MIN_ENTRIES = 200
PROGRESS_INTERVAL_S = 1.0


def progress_reporter(
    min_entries: int,
    interval_s: float,
    write: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> Callable[["SyncOutcome"], None]:
    """A progress callback for sync_with_relay: one line per `interval_s` once entries move.

    Args:
        min_entries: nothing is shown until at least this many entries moved (sent + received).
        interval_s: at least this many seconds between two lines (the first shows at once).
        write: where a line goes (stderr in the CLI).
        clock: monotonic seconds.

    Returns:
        The callback, called with the outcome so far whenever entries move.
    """
    shown: list[float] = []

    def progress(outcome: "SyncOutcome") -> None:
        moved = outcome.entries_sent + outcome.entries_received
        if moved < min_entries:
            return
        now = clock()
        if shown and now - shown[0] < interval_s:
            return
        shown[:] = [now]
        write(
            "  ... sent %d, received %d entries" % (outcome.entries_sent, outcome.entries_received)
        )

    return progress


def _sync(session: PeerSession, args: argparse.Namespace) -> int:
    """`peer sync`: sync, process what arrived, and sync again if processing wrote entries."""
    from node.app.config import parse_host_port
    from node.app.sync_client import discover_relay, member_context, sync_with_relay

    client = session.client
    deadline = time.monotonic() + args.timeout
    try:
        if args.discover:
            host, port = asyncio.run(discover_relay(args.timeout, args.interface))
        else:
            address = parse_host_port(args.relay, "--relay")
            host, port = address.host, address.port
    except LinkError as exc:  # no relay answered: the sync failed (3), not the user (1)
        _err("waystation peer: cannot sync: %s" % exc)
        return EXIT_SYNC_FAILED
    progress = progress_reporter(
        PROGRESS_MIN_ENTRIES if args.progress_entries is None else args.progress_entries,
        PROGRESS_INTERVAL_S if args.progress_interval is None else args.progress_interval,
        _err,
    )

    client.process(time.time())
    sent = received = opened = 0
    for _ in range(MAX_SYNC_ROUNDS):
        ctx = member_context(session.store, session.suite, sync_policy_logs(client))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _err("waystation peer: sync with %s:%d timed out" % (host, port))
            return EXIT_SYNC_FAILED
        try:
            outcome = asyncio.run(sync_with_relay(ctx, host, port, remaining, progress))
        except TimeoutError:
            _err("waystation peer: sync with %s:%d timed out" % (host, port))
            return EXIT_SYNC_FAILED
        except LinkError as exc:
            _err("waystation peer: cannot sync: %s" % exc)
            return EXIT_SYNC_FAILED
        sent += outcome.entries_sent
        received += outcome.entries_received
        if not outcome.in_sync:
            _err(
                "waystation peer: sync with %s:%d ended: %s %s"
                % (host, port, outcome.reason or "closed", outcome.text)
            )
            return EXIT_SYNC_FAILED
        before = session.store.stats().get("entries", 0)
        report = after_sync(client)
        opened += report.opened
        if session.store.stats().get("entries", 0) == before:
            break  # processing wrote nothing new: nothing more to upload
    _out(
        "synced with %s:%d: sent %d, received %d entries, %d new message(s)"
        % (host, port, sent, received, opened)
    )
    return 0


def run_peer_command(args: argparse.Namespace) -> int:
    """Run a parsed `peer ...` command; return the exit status (never raises for user errors)."""
    command = getattr(args, "peer_command", None)
    if command is None or (command == "group" and getattr(args, "group_command", None) is None):
        _err(
            "waystation peer: name a command: init, group create, groups, invite, join, send, read"
        )
        return 2
    try:
        return _run(args)
    except NodeError as exc:
        _err("waystation peer: %s" % exc)
        return EXIT_USER_ERROR
    except OSError as exc:
        _err("waystation peer: %s" % exc)
        return EXIT_USER_ERROR
