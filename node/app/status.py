"""What `waystation status` shows: the daemon's report, its bookkeeping, and the text rendering.

`status_report(daemon)` builds one JSON-able dict from what the daemon already keeps (identity,
configuration, open link drivers, store, counters) plus `SyncBook`, the only bookkeeping added
for the operator: the last sync with each relay peer and how it ended. The control endpoint's
`status` command answers with it, and the daemon writes the same dict (with `time`) to
`DATA/status.json` every few seconds and at exit, so the last figures survive the process.

`render_text(report)` is the human form; `--json` prints the dict itself. The field list is in
docs/operations.md ("waystation status").
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from node import __version__
from node.errors import REASON_OK, StoreError
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY

if TYPE_CHECKING:
    from node.app.daemon import Daemon
    from node.app.peer import LinkDriver, SyncOutcome
    from node.sync.store import Store

MAX_PEERS_REMEMBERED = 256
RECENT_LINKS = 32  # closed links the console's `peers` lists
# Counters an operator looks at first: anything refused, rejected, failed or broken.
TROUBLE_MARKS = ("rejected", "refused", "error", "unreachable", "internal")
ROLE_NAMES = {ROLE_MEMBER: "member", ROLE_RELAY: "relay"}


@dataclass(frozen=True)
class SyncRecord:
    """How the last sync with one relay peer went.

    Attributes:
        at: wall-clock time (Unix seconds) it ended.
        outcome: `ok`, `unreachable`, or the link's ending reason (`timeout`, `integrity`, ...).
        detail: the error text, if any.
        sent, received: entries moved.
    """

    at: float
    outcome: str
    detail: str = ""
    sent: int = 0
    received: int = 0


class SyncBook:
    """The last sync with each relay peer (bounded: the oldest is forgotten first)."""

    def __init__(self) -> None:
        self._last: dict[str, SyncRecord] = {}
        self._time = time.time

    def unreachable(self, peer: str, detail: str) -> None:
        """A sync with `peer` could not connect."""
        self._put(peer, SyncRecord(self._time(), "unreachable", detail))

    def finished(self, peer: str, outcome: SyncOutcome) -> None:
        """A sync with `peer` ended with `outcome`."""
        record = SyncRecord(
            self._time(),
            outcome.reason or REASON_OK,
            outcome.text,
            outcome.entries_sent,
            outcome.entries_received,
        )
        self._put(peer, record)

    def peers(self) -> list[str]:
        """Every peer with a recorded sync, oldest record first."""
        return list(self._last)

    def last(self, peer: str) -> SyncRecord | None:
        """The last sync with `peer`, or None if there was none."""
        return self._last.get(peer)

    def _put(self, peer: str, record: SyncRecord) -> None:
        self._last.pop(peer, None)
        self._last[peer] = record
        while len(self._last) > MAX_PEERS_REMEMBERED:
            del self._last[next(iter(self._last))]


def status_report(daemon: Daemon) -> dict[str, object]:
    """Everything `waystation status` shows, as JSON-able values (see docs/operations.md).

    A store that fails (disk trouble; it then refuses every call) does not make the report fail:
    the store's figures are replaced by `store.error`, and the rest is reported from what the
    daemon holds in memory.
    """
    usage: dict[str, object] = {"pinned": 0, "fullest": None, "near_quota": 0}
    try:
        core = daemon.status()
        if daemon.ctx is not None:
            usage = log_usage(daemon.ctx.store, daemon.config.relay.community_log_bytes)
    except StoreError as exc:
        core = _without_store(daemon, str(exc))
    now = time.time()
    return {
        "version": __version__,
        "pid": os.getpid(),
        "time": now,
        "started": daemon.started_at,
        "uptime_s": round(now - daemon.started_at, 1),
        "name": daemon.config.node.name,
        "data_dir": str(daemon.data_dir),
        "fingerprint": (
            daemon.identity.fingerprint(daemon.suite) if daemon.identity is not None else None
        ),
        "listening": _listening(daemon),
        "transports": _transports(daemon),
        "links_open": len(daemon.links),
        "links": _links(daemon),
        "store": _store(daemon, core),
        "logs": core.get("logs", 0),
        "log_usage": usage,
        "relay_peers": _relay_peers(daemon, core),
        "counters": core.get("counters", {}),
        "commits": core.get("commits", 0),
    }


def _without_store(daemon: Daemon, error: str) -> dict[str, object]:
    """The daemon's figures that need no store: the configured peers and those synced lately."""
    peers = [str(p) for p in daemon.config.lan.peers]
    peers.extend(p for p in daemon.syncs.peers() if p not in peers)
    ctx = daemon.ctx
    return {
        "logs": None,
        "store": {"error": error},
        "counters": dict(sorted(ctx.stats.items())) if ctx is not None else {},
        "commits": ctx.committer.commits if ctx is not None else 0,
        "relay_peers": peers,
    }


def _listening(daemon: Daemon) -> list[dict[str, object]]:
    kind = daemon.listener.kind
    return [{"transport": kind, "address": str(bound)} for bound in daemon.listener.bound]


def _transports(daemon: Daemon) -> dict[str, str]:
    config = daemon.config
    return {
        daemon.listener.kind: "listening" if daemon.listener.bound else "starting",
        "zeroconf": "on" if config.lan.zeroconf else "off",
        "ble": _ble_state(daemon),
        "console": _console_state(daemon),
    }


def _ble_state(daemon: Daemon) -> str:
    """`off`, `on (hci0)`, or `failed: why` when the radio could not start."""
    ble = daemon.config.radio.ble
    if not ble.enabled:
        return "off"
    failure = daemon.radio_failures.get("ble")
    return "failed: %s" % failure if failure is not None else "on (%s)" % ble.adapter


def _console_state(daemon: Daemon) -> str:
    """`socket`, then each serial port and whether it is open: `socket, /dev/ttyGS0 open`."""
    ports = daemon.consoles.serial if daemon.consoles is not None else []
    return ", ".join(["socket"] + ["%s %s" % (port.url, port.state) for port in ports])


def link_row(driver: LinkDriver, now_ms: int) -> dict[str, object]:
    """One link as the report shows it (label, kind, direction, role, age, bytes, entries)."""
    session = driver.session
    hello = session.peer_hello
    return {
        "label": driver.link.label,
        "kind": driver.link.kind,
        "direction": "out" if driver.initiator else "in",
        "role": ROLE_NAMES.get(hello.role, "?") if hello is not None else "handshake",
        "age_s": round(max(0, now_ms - driver.opened_ms) / 1000, 1),
        "bytes_in": session.stats["bytes_in"],
        "bytes_out": session.stats["bytes_out"],
        "entries_sent": driver.outcome.entries_sent,
        "entries_received": driver.outcome.entries_received,
    }


def _links(daemon: Daemon) -> list[dict[str, object]]:
    now_ms = daemon.ctx.clock() if daemon.ctx is not None else 0
    links = [link_row(driver, now_ms) for driver in daemon.links]
    links.sort(key=lambda link: str(link["label"]))
    return links


class RecentLinks:
    """The last RECENT_LINKS links that closed, newest first (the console's `peers`)."""

    def __init__(self) -> None:
        self._rows: deque[dict[str, object]] = deque(maxlen=RECENT_LINKS)

    def closed(self, driver: LinkDriver, reason: str, now_ms: int) -> None:
        """`driver`'s link ended with `reason` (`ok`, a Bye reason, `internal-error`)."""
        row = link_row(driver, now_ms)
        row.update(closed=round(time.time(), 1), reason=reason or "ok")
        self._rows.appendleft(row)

    def rows(self) -> list[dict[str, object]]:
        """The closed links remembered, newest first."""
        return list(self._rows)


def _store(daemon: Daemon, core: Mapping[str, object]) -> dict[str, object]:
    store = core.get("store")
    figures = dict(store) if isinstance(store, dict) else {}
    config = daemon.config
    figures["quota"] = {
        "total_bytes": config.store.max_total_bytes,
        "log_bytes": config.store.max_log_bytes,
        "community_log_bytes": config.relay.community_log_bytes,
        "entry_bytes": config.store.max_entry_bytes,
        "expiry_days": config.store.expiry_days,
    }
    return figures


def log_usage(store: Store, default_quota: int) -> dict[str, object]:
    """Logs carried: pinned ones, and the fullest one against its own quota.

    Args:
        store: the relay's store.
        default_quota: the quota of a log registered without one (`relay.community_log_bytes`).
    """
    pinned = near = 0
    fullest: dict[str, object] | None = None
    best = -1.0
    for log_id in store.logs():
        info = store.log_info(log_id)
        quota = info.quota or default_quota
        share = info.byte_count / quota if quota else 0.0
        pinned += info.pinned
        near += share >= 0.9
        if share > best:
            best = share
            fullest = {"log": log_id, "bytes": info.byte_count, "quota": quota}
    return {"pinned": pinned, "fullest": fullest, "near_quota": near}


def _relay_peers(daemon: Daemon, core: Mapping[str, object]) -> list[dict[str, object]]:
    configured = {str(p) for p in daemon.config.lan.peers}
    peers: list[dict[str, object]] = []
    for peer in map(str, _list(core.get("relay_peers"))):
        record = daemon.syncs.last(peer)
        peers.append(
            {
                "address": peer,
                "source": "config" if peer in configured else "zeroconf",
                "last_sync": asdict(record) if record is not None else None,
            }
        )
    return peers


def trouble_counters(counters: Mapping[str, object]) -> dict[str, object]:
    """The counters of rejections and errors (and links that did not end `ok`)."""
    return {
        name: value
        for name, value in counters.items()
        if any(mark in name for mark in TROUBLE_MARKS)
        or name.startswith("peer_errors.")
        or (name.startswith("links.closed.") and name not in ("links.closed.ok",))
    }


def render_text(report: Mapping[str, object]) -> str:
    """The human form of a status report (what `waystation status` prints)."""
    now = _num(report.get("time"))
    lines = [
        "waystation %s, pid %s, up %s"
        % (report.get("version"), report.get("pid"), _duration(_num(report.get("uptime_s")))),
        "node       %s (%s)" % (report.get("fingerprint"), report.get("name")),
        "data       %s" % report.get("data_dir"),
    ]
    listening = _list(report.get("listening"))
    where = ["%s:%s" % (_map(a).get("transport"), _map(a).get("address")) for a in listening]
    lines.append("listening  " + (", ".join(where) or "nothing"))
    transports = _map(report.get("transports"))
    lines.append("transports " + ", ".join("%s %s" % kv for kv in transports.items()))
    store = _map(report.get("store"))
    quota = _map(store.get("quota"))
    if "error" in store:
        lines.append("store      UNAVAILABLE: %s" % store["error"])
    else:
        lines.append(
            "store      %s of %s (%s entries), entries up to %s, kept %s days"
            % (
                _bytes(store.get("bytes")),
                _bytes(quota.get("total_bytes")),
                store.get("entries", 0),
                _bytes(quota.get("entry_bytes")),
                quota.get("expiry_days"),
            )
        )
    usage = _map(report.get("log_usage"))
    fullest = _map(usage.get("fullest"))
    carried = report.get("logs")
    line = "logs       %s carried (%s pinned)" % (
        "?" if carried is None else carried,
        usage.get("pinned", 0),
    )
    if fullest:
        line += "; fullest %s of %s quota, %s near quota" % (
            _bytes(fullest.get("bytes")),
            _bytes(fullest.get("quota")),
            usage.get("near_quota", 0),
        )
    lines.append(line)
    links = _list(report.get("links"))
    lines.append("links      %d open" % len(links))
    for item in links:
        link = _map(item)
        lines.append(
            "  %-28s %-4s %-3s %-9s %8s  in %s  out %s"
            % (
                link.get("label"),
                link.get("kind"),
                link.get("direction"),
                link.get("role"),
                _duration(_num(link.get("age_s"))),
                _bytes(link.get("bytes_in")),
                _bytes(link.get("bytes_out")),
            )
        )
    peers = _list(report.get("relay_peers"))
    lines.append("relays     %d known" % len(peers))
    for item in peers:
        peer = _map(item)
        last = _map(peer.get("last_sync"))
        if last:
            said = "%s %s ago (sent %s, received %s)%s" % (
                last.get("outcome"),
                _duration(now - _num(last.get("at"))),
                last.get("sent"),
                last.get("received"),
                ": %s" % last["detail"] if last.get("detail") else "",
            )
        else:
            said = "not synced yet"
        lines.append("  %-28s %-8s %s" % (peer.get("address"), peer.get("source"), said))
    trouble = trouble_counters(_map(report.get("counters")))
    lines.append("trouble    " + ("none" if not trouble else ""))
    for name, value in sorted(trouble.items()):
        lines.append("  %-40s %s" % (name, value))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _map(value: object) -> dict[str, object]:
    return dict(value) if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    if seconds < 86400:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd%02dh" % (seconds // 86400, seconds % 86400 // 3600)


def _bytes(value: object) -> str:
    number = _num(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (number, unit)
        number /= 1024
    return "%d B" % number
