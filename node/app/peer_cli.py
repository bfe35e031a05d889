"""`waystation peer ...`: the desktop member client (L2 wiring of node.member).

    waystation peer init         --data DIR --name NAME
    waystation peer group create --data DIR NAME          prints the group id
    waystation peer groups       --data DIR               lists groups (id, name)
    waystation peer invite       --data DIR GROUP         prints the invitation (carries the secret)
    waystation peer join         --data DIR INVITATION    prints the group id
    waystation peer send         --data DIR GROUP TEXT    prints the entry CID
    waystation peer sync         --data DIR (--relay HOST:PORT | --discover | --ble) [--timeout S]
                                 [--pin FINGERPRINT]
    waystation peer pair         --data DIR --code CODE (--relay HOST:PORT | --ble)
    waystation peer read         --data DIR GROUP [--last N]

Every command takes --json (one JSON object per line on stdout). Data goes to stdout,
diagnostics ("joined ...", "sent ...", warnings) to stderr.

GROUP is a group id (64 hex digits), a unique prefix of one (>= 4 digits), or a group's name.
`read` prints one line per message, "<UTC time>  <author>: <text>", oldest first (log order);
with --json it prints JSON Lines: one object per message with the keys cid, lamport, author,
member, device, sent_ms, time (UTC ISO 8601), body, mine, unreadable.

Wiring: NaclSuite + SQLiteStore (DIR/store.sqlite3) + MemberClient (DIR/member.sqlite3). One
command at a time per data directory (an flock on DIR/peer.lock; a second one is told so). A
store that does not open as a store (damaged) is moved aside and the client recovers its log on
the next sync. User mistakes print one line "waystation peer: ..." to stderr and exit 1; Ctrl-C
exits 130 and a closed stdout (`peer read | head`) 141, both without a traceback.

Hook for `peer sync` (added by the link driver's author): open_member(DIR) gives a PeerSession
(suite, store, client); sync_policy_logs(client) gives the logs to declare, as LogPolicy.own wants
them (address -> (sign_pub, identity signature)); after_sync(client) processes what arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from node.app.peer_relay import EXIT_SYNC_FAILED, pair_command, relay_pin, relay_target
from node.app.peer_session import PeerSession
from node.errors import LinkError, NodeError
from node.member.client import MemberClient, Message, ProcessReport, SyncLog
from node.sync.entry import decode_entry

if TYPE_CHECKING:
    from node.app.peer import SyncOutcome

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away
COMMANDS = ("init", "group create", "groups", "invite", "join", "send", "sync", "pair", "read")


def default_member_dir() -> Path:
    """``$XDG_DATA_HOME/waystation-peer``, else ``~/.local/share/waystation-peer``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "waystation-peer"


# ---- the sync hook ---------------------------------------------------------------------------


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
    parser.add_argument("--json", action="store_true", help="print JSON (one object per line)")


def _seconds(text: str) -> float:
    """argparse type of --timeout: a positive number of seconds, said in the user's words."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % text) from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds, got %s" % text)
    return value


def _count(text: str) -> int:
    """argparse type of --last: a positive whole number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %s" % text)
    return value


def add_peer_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `peer` and its subcommands to the top-level parser's subparsers."""
    peer = subparsers.add_parser(
        "peer",
        help="the desktop member client (groups, messages)",
        description="The desktop member client. Commands: %s." % ", ".join(COMMANDS),
    )
    commands = peer.add_subparsers(dest="peer_command", metavar="PEER_COMMAND")

    init = commands.add_parser("init", help="create this device's member account")
    _data_arg(init)
    init.add_argument("--name", required=True, help="the display name others will see")

    group = commands.add_parser("group", help="manage groups (group create NAME)")
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

    join = commands.add_parser(
        "join", help="join a group from an invitation (then sync before writing); prints its id"
    )
    _data_arg(join)
    join.add_argument("invitation", metavar="INVITATION")

    send = commands.add_parser("send", help="write a message to a group; prints the entry CID")
    _data_arg(send)
    send.add_argument("group", metavar="GROUP")
    send.add_argument("text", metavar="TEXT")

    sync = commands.add_parser("sync", help="exchange entries with a relay")
    _data_arg(sync)
    where = sync.add_mutually_exclusive_group(required=True)
    where.add_argument("--relay", metavar="HOST:PORT", help="the relay to sync with")
    where.add_argument("--discover", action="store_true", help="find a relay on the LAN")
    where.add_argument(
        "--ble", action="store_true", help="sync over BLE with the first relay in range"
    )
    sync.add_argument("--adapter", default="hci0", help="BlueZ adapter (with --ble)")
    sync.add_argument(
        "--timeout", type=_seconds, default=60.0, metavar="S", help="give up after S seconds"
    )
    sync.add_argument(
        "--pin",
        metavar="FINGERPRINT",
        help="the relay's key fingerprint: remember it and refuse any other key at this address",
    )
    sync.add_argument(
        "--interface", action="append", default=None, help="zeroconf interface (with --discover)"
    )
    # progress thresholds (PROGRESS_MIN_ENTRIES, PROGRESS_INTERVAL_S), for tests: not in --help
    sync.add_argument("--progress-entries", type=int, default=None, help=argparse.SUPPRESS)
    sync.add_argument("--progress-interval", type=float, default=None, help=argparse.SUPPRESS)

    pair = commands.add_parser("pair", help="pair with a relay by the code its console shows")
    _data_arg(pair)
    pair.add_argument("--code", required=True, help="the code the relay shows, like 1234-5678")
    pair_where = pair.add_mutually_exclusive_group(required=True)
    pair_where.add_argument("--relay", metavar="HOST:PORT", help="the relay")
    pair_where.add_argument("--ble", action="store_true", help="the first relay in BLE range")
    pair.add_argument("--adapter", default="hci0", help="BlueZ adapter (with --ble)")
    pair.add_argument("--fingerprint", help="the relay's key fingerprint (from its QR code)")
    pair.add_argument("--name", default="member", help="our name in the relay's device list")
    pair.add_argument("--timeout", type=float, default=30.0, help="give up after S seconds")

    read = commands.add_parser("read", help="print a group's messages in order")
    _data_arg(read)
    read.add_argument("group", metavar="GROUP")
    read.add_argument("--last", type=_count, metavar="N", help="only the N newest messages")


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
    if message.unreadable:
        return "%s  (an unreadable message from %s: %s)" % (
            _utc(message.sent_date),
            _printable(message.author),
            _printable(message.body),
        )
    head = "%s  %s: " % (_utc(message.sent_date), _printable(message.author))
    body = _printable(message.body).replace("\n", "\n" + " " * len(head))
    return head + body


def _show(args: argparse.Namespace, text: str, record: dict[str, object]) -> None:
    """One result on stdout: `text`, or `record` as a JSON line with --json."""
    _out(_json_line(record) if args.json else text)


NOBODY_YET = (
    "nobody else in this group can read this yet: sync so that the other members' devices are"
    " announced"
)
SYNC_BEFORE_WRITING = (
    "run `waystation peer sync` now, before writing: the other members can read what you write"
    " only once their devices have seen yours, which your first sync announces"
)


def _run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data if args.data is not None else default_member_dir()
    command = args.peer_command
    now = time.time()
    if command == "init":
        with PeerSession(data_dir, create_name=args.name) as session:
            _show(
                args,
                "account created in %s" % session.data_dir,
                {"data": str(session.data_dir), "name": session.client.account.name},
            )
        return 0
    with open_member(data_dir) as session:
        client = session.client
        if client.store_lost and command != "sync":
            _err(
                "waystation peer: %sthis device's log store lost entries it had: run `waystation"
                " peer sync` to recover them from a relay before writing" % session.notice
            )
        if command == "group":
            group_id = client.create_group(args.name, now)
            _show(args, group_id, {"group": group_id, "name": client.groups[group_id].name})
        elif command == "groups":
            for group_id, name in client.list_groups():
                _show(
                    args, "%s  %s" % (group_id, _printable(name)), {"group": group_id, "name": name}
                )
        elif command == "invite":
            state = client.resolve(args.group)
            text = client.invitation(args.group)
            _show(args, text, {"group": state.group_id, "invitation": text})
        elif command == "join":
            _join(client, args, now)
        elif command == "send":
            _send(client, args, now)
        elif command == "sync":
            return _sync(session, args)
        elif command == "pair":
            return pair_command(session, args)
        elif command == "read":
            _read(session, args, now)
    return 0


def _join(client: MemberClient, args: argparse.Namespace, now: float) -> None:
    already = client.group_of_invitation(args.invitation) in client.groups
    group_id = client.join(args.invitation, now)
    name = client.groups[group_id].name
    _show(args, group_id, {"group": group_id, "name": name, "already_member": already})
    if already:
        _err("waystation peer: already a member of %r (%s)" % (name, group_id[:12]))
    else:
        _err("joined %r; %s" % (name, SYNC_BEFORE_WRITING))


def _send(client: MemberClient, args: argparse.Namespace, now: float) -> None:
    client.process(now)
    state = client.resolve(args.group)
    cid = client.send(args.group, args.text, now)
    readers = client.others_met(args.group)
    block = client.store.get_block(cid)
    lamport = decode_entry(block).clock_time if block is not None else 0
    _show(
        args,
        str(cid),
        {"group": state.group_id, "cid": str(cid), "lamport": lamport, "devices_met": readers},
    )
    _err(
        "sent to %r (entry %s, Lamport time %d); it leaves this device on the next sync"
        % (state.name, str(cid)[:16], lamport)
    )
    if readers == 0:
        _err("waystation peer: " + NOBODY_YET)


def _read(session: PeerSession, args: argparse.Namespace, now: float) -> None:
    client = session.client
    client.process(now)
    for message in client.read(args.group, args.last):
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
    from node.app.sync_client import member_context, sync_with

    client = session.client
    deadline = time.monotonic() + args.timeout
    from node.app.pair_client import load_pins

    target = relay_target(args, load_pins(session.data_dir))
    if target is None:
        return EXIT_SYNC_FAILED
    address, where, dialers = target
    progress = progress_reporter(
        PROGRESS_MIN_ENTRIES if args.progress_entries is None else args.progress_entries,
        PROGRESS_INTERVAL_S if args.progress_interval is None else args.progress_interval,
        _err,
    )
    lost = client.store_lost
    if lost:
        _err("recovering this device's log from %s (the local store lost entries)" % where)
    pinned, device_key = relay_pin(session, address, args.pin)
    client.process(time.time())
    sent = received = opened = 0
    # The event loop exists (and so does asyncio's Ctrl-C handling) before we say we sync: a
    # SIGINT right after that line must not land inside the loop's construction.
    with asyncio.Runner() as runner:
        runner.get_loop()
        _err("syncing with %s ..." % where)
        for _ in range(MAX_SYNC_ROUNDS):
            ctx = member_context(session.store, session.suite, sync_policy_logs(client))
            ctx.pinned_fingerprint = pinned
            ctx.static_private = device_key  # a paired device proves it with its key; else fresh
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _err("waystation peer: sync with %s timed out" % where)
                return EXIT_SYNC_FAILED
            try:
                outcome = runner.run(sync_with(ctx, address, remaining, progress, dialers))
            except TimeoutError:
                _err("waystation peer: sync with %s timed out" % where)
                return EXIT_SYNC_FAILED
            except LinkError as exc:
                _err("waystation peer: cannot sync with %s: %s" % (where, exc))
                return EXIT_SYNC_FAILED
            sent += outcome.entries_sent
            received += outcome.entries_received
            if not outcome.in_sync:
                _err(
                    "waystation peer: sync with %s ended: %s %s"
                    % (where, outcome.reason or "closed", outcome.text)
                )
                return EXIT_SYNC_FAILED
            if lost:
                lost = False
                _recovered(client, where)
            before = session.store.stats().get("entries", 0)
            report = after_sync(client)
            opened += report.opened
            if session.store.stats().get("entries", 0) == before:
                break  # processing wrote nothing new: nothing more to upload
    _show(
        args,
        "synced with %s: sent %d, received %d entries, %d new message(s)"
        % (where, sent, received, opened),
        {"relay": where, "sent": sent, "received": received, "opened": opened},
    )
    return 0


def _recovered(client: MemberClient, where: str) -> None:
    missing = client.recovered()
    if not missing:
        _err("recovered this device's log from %s; writing is allowed again" % where)
        return
    for address, have, had in missing:
        _err(
            "waystation peer: %s had log %s only up to Lamport time %d (this device had %d):"
            " the entries after it are lost; new entries still come after %d"
            % (where, address.rsplit("/", 1)[-1][:24], have, had, had)
        )


def run_peer_command(args: argparse.Namespace) -> int:
    """Run a parsed `peer ...` command; return the exit status (never raises for user errors,
    Ctrl-C or a closed stdout)."""
    command = getattr(args, "peer_command", None)
    if command is None or (command == "group" and getattr(args, "group_command", None) is None):
        _err("waystation peer: name a command: %s" % ", ".join(COMMANDS))
        return 2
    try:
        return _run(args)
    except NodeError as exc:
        _err("waystation peer: %s" % exc)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        _err("waystation peer: %s" % exc)
        return EXIT_USER_ERROR
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Nothing but Ctrl-C cancels a command's main task. asyncio.Runner (CPython 3.11) installs
        # its SIGINT handler before it zeroes its interrupt count, so a SIGINT in between cancels
        # the task and surfaces as CancelledError instead of KeyboardInterrupt.
        _err("waystation peer: interrupted")
        return EXIT_INTERRUPTED


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush stays silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)
