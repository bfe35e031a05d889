"""The control commands the console issue adds (docs/operations.md, "The console").

Each is a handler of the control endpoint (node/app/control.py): `args -> JSON-able result`,
refusing bad arguments with CommandError(BAD_ARGUMENTS, what is accepted). The console grammar
(node/console/commands.py) maps typed lines onto these names, so a serial line, `waystation
console` and a script sending JSON to DATA/control.sock run the same code.

What the handlers may not do themselves is injected (`ConsoleActions`): powering the machine off
or rebooting it (systemd through `systemctl`, or a test's recorder), and wiping the data
directory (done by the daemon once its store is closed).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from node import __version__
from node.app.admin_cli import RENDER as ADMIN_TEXTS
from node.app.config import LOG_LEVELS, Config, parse_config, parse_pin_hash, schema_keys
from node.app.control import BAD_ARGUMENTS, CommandError, Handler
from node.app.logs import KeyValueFormatter
from node.app.status import _bytes, _duration, _links, _relay_peers, _store, render_text
from node.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from node.app.daemon import Daemon

log = logging.getLogger("waystation.console")

UNAVAILABLE = "unavailable"  # the machine cannot do it here (no systemd, no config file)
STORE_FAILED = "store-failed"
WIPE_PHRASE = "erase all data"
MAX_LOGS_LISTED = 200
MAX_ACTIVITY = 100_000  # logs whose last activity is remembered
LOG_RING_LINES = 200
DEFAULT_TAIL = 20
PIN_ITERATIONS = 20_000  # runs on the event loop of a Pi: a few ms, not a second
# Never shown or logged: a short PIN is found from its salted hash in moments.
HIDDEN_KEYS = frozenset({"console.pin_hash"})
HIDDEN = "(set)"


class LogRing(logging.Handler):
    """The last LOG_RING_LINES formatted log lines, for `log tail` (bounded)."""

    def __init__(self, size: int = LOG_RING_LINES) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(KeyValueFormatter(timestamps=True))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a bad record costs its line, never the daemon
            self.handleError(record)


class Activity:
    """When each log last received entries (since the daemon started; bounded)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._last: dict[str, float] = {}
        self._clock = clock

    def touch(self, log_id: str) -> None:
        """Entries arrived for `log_id` now."""
        self._last.pop(log_id, None)
        self._last[log_id] = self._clock()
        if len(self._last) > MAX_ACTIVITY:
            del self._last[next(iter(self._last))]

    def last(self, log_id: str) -> float | None:
        """When `log_id` last received entries, or None (not since the start)."""
        return self._last.get(log_id)


def systemd_power(action: str) -> str:
    """Ask systemd to `reboot` or `poweroff` (without waiting for it).

    Raises:
        CommandError: UNAVAILABLE when this machine has no running systemd or it refused.
    """
    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        raise CommandError(UNAVAILABLE, "%s: systemd is not running on this machine" % action)
    try:
        done = subprocess.run(
            [systemctl, "--no-block", action], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(UNAVAILABLE, "%s: systemctl failed: %s" % (action, exc)) from exc
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or [
            "exit %d" % done.returncode
        ]
        raise CommandError(UNAVAILABLE, "%s: systemctl refused: %s" % (action, why[0]))
    return "systemd is going to %s the machine" % action


class ConsoleActions:
    """What the console's handlers may ask of the world; tests inject recorders.

    Args:
        power: `reboot` or `poweroff` -> a sentence saying what happens (raises CommandError).
        config_path: the configuration file `config set` edits, or None (started without one).
    """

    def __init__(
        self, power: Callable[[str], str] = systemd_power, config_path: Path | None = None
    ) -> None:
        self.power = power
        self.config_path = config_path


def hash_pin(pin: str, salt: bytes | None = None, iterations: int = PIN_ITERATIONS) -> str:
    """The `console.pin_hash` value for `pin` (PBKDF2-HMAC-SHA256, random 16-byte salt)."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations)
    return "pbkdf2-sha256$%d$%s$%s" % (iterations, salt.hex(), digest.hex())


def pin_checker(pin_hash: str) -> Callable[[str], bool] | None:
    """A function telling whether a typed PIN matches `pin_hash`, or None without a PIN."""
    parsed = parse_pin_hash(pin_hash) if pin_hash else None
    if parsed is None:
        return None
    iterations, salt, digest = parsed

    def check(pin: str) -> bool:
        typed = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations)
        return hmac.compare_digest(typed, digest)

    return check


def console_handlers(
    daemon: Daemon, actions: ConsoleActions, ring: LogRing, activity: Activity
) -> dict[str, Handler]:
    """The console's control commands, bound to `daemon` (merged into the control table)."""
    commands = _Commands(daemon, actions, ring, activity)
    return {
        "version": commands.version,
        "peers": commands.peers,
        "logs": commands.logs,
        "store": commands.store,
        "store.evict": commands.evict,
        "config.show": commands.config_show,
        "config.get": commands.config_get,
        "config.set": commands.config_set,
        "log.level": commands.log_level,
        "log.tail": commands.log_tail,
        "wipe": commands.wipe,
        "reboot": lambda _args: commands.power("reboot"),
        "poweroff": lambda _args: commands.power("poweroff"),
    }


def console_texts() -> dict[str, Callable[[object], list[str]]]:
    """How the console shows some results as text (the JSON of the others is laid out as is).

    `pair` and `devices` print what `waystation pair` and `waystation devices` print (one text
    form each, in node/app/admin_cli.py), the QR code included.
    """
    texts: dict[str, Callable[[object], list[str]]] = {"status": status_text, "logs": logs_text}
    for cmd, render in ADMIN_TEXTS.items():
        texts[cmd] = _lines_of(render)
    return texts


def _lines_of(render: Callable[[Mapping[str, object]], str]) -> Callable[[object], list[str]]:
    return lambda result: render(result if isinstance(result, dict) else {}).splitlines()


def status_text(result: object) -> list[str]:
    """The status report as `waystation status` prints it."""
    return render_text(result if isinstance(result, dict) else {}).splitlines()


def logs_text(result: object, now: float | None = None) -> list[str]:
    """The carried logs, one line each, the log's address last (it is long)."""
    report = result if isinstance(result, dict) else {}
    rows = [r for r in report.get("logs", []) if isinstance(r, dict)]
    now = time.time() if now is None else now
    count, shown = report.get("count", len(rows)), len(rows)
    lines = [
        "%s logs carried, largest first" % count + ("" if shown == count else ", %d shown" % shown)
    ]
    table = [("bytes", "entries", "quota", "pinned", "active", "log")]
    for row in rows:
        last = row.get("last_activity")
        active = "-" if not isinstance(last, int | float) else _duration(now - last) + " ago"
        table.append(
            (
                _bytes(row.get("bytes")),
                str(row.get("entries")),
                _bytes(row.get("quota")),
                "yes" if row.get("pinned") else "no",
                active,
                str(row.get("log")),
            )
        )
    widths = [max(len(cells[i]) for cells in table) for i in range(5)]
    for cells in table if rows else []:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[5]
        )
    return lines


def _text_arg(args: Mapping[str, object], name: str, usage: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise CommandError(BAD_ARGUMENTS, "%r must be a non-empty string (%s)" % (name, usage))
    return value


def _jsonable(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _lookup(config: object, key: str) -> object:
    """`key`'s value in `config`, as JSON; a hidden key's is only `(set)` or empty."""
    value = _jsonable(config)
    for part in key.split("."):
        assert isinstance(value, dict)
        value = value[part]
    return HIDDEN if key in HIDDEN_KEYS and value else value


def _shown_config(config: Config) -> object:
    """The whole configuration as JSON, hidden keys masked."""
    shown = _jsonable(config)
    for key in HIDDEN_KEYS:
        section, name = key.split(".")
        assert isinstance(shown, dict) and isinstance(shown[section], dict)
        shown[section][name] = _lookup(config, key)
    return shown


class _Commands:
    def __init__(
        self, daemon: Daemon, actions: ConsoleActions, ring: LogRing, activity: Activity
    ) -> None:
        self.daemon = daemon
        self.actions = actions
        self.ring = ring
        self.activity = activity

    def version(self, _args: Mapping[str, object]) -> object:
        return {"version": __version__, "python": sys.version.split()[0]}

    def peers(self, _args: Mapping[str, object]) -> object:
        core = self._core()
        return {
            "links": _links(self.daemon),
            "recent": self.daemon.recent_links.rows(),
            "relays": _relay_peers(self.daemon, core),
        }

    def _core(self) -> dict[str, object]:
        try:
            return self.daemon.status()
        except StoreError as exc:
            raise CommandError(STORE_FAILED, "the store failed: %s" % exc) from exc

    def logs(self, _args: Mapping[str, object]) -> object:
        ctx = self.daemon.ctx
        assert ctx is not None
        default_quota = self.daemon.config.relay.community_log_bytes
        rows = []
        try:
            for log_id in ctx.store.logs():
                info = ctx.store.log_info(log_id)
                rows.append(
                    {
                        "log": log_id,
                        "entries": info.entry_count,
                        "bytes": info.byte_count,
                        "quota": info.quota or default_quota,
                        "pinned": info.pinned,
                        "last_activity": self.activity.last(log_id),
                    }
                )
        except StoreError as exc:
            raise CommandError(STORE_FAILED, "the store failed: %s" % exc) from exc
        rows.sort(key=lambda row: (-int(str(row["bytes"])), str(row["log"])))
        return {
            "count": len(rows),
            "shown": min(len(rows), MAX_LOGS_LISTED),
            "logs": rows[:MAX_LOGS_LISTED],
        }

    def store(self, _args: Mapping[str, object]) -> object:
        return _store(self.daemon, self._core())

    def evict(self, _args: Mapping[str, object]) -> object:
        ctx = self.daemon.ctx
        assert ctx is not None
        try:
            removed = ctx.store.expire(time.time())
        except StoreError as exc:
            raise CommandError(STORE_FAILED, "the store failed: %s" % exc) from exc
        log.info("console: store evict removed %d expired entries", removed)
        return {"expired": removed, "expiry_days": self.daemon.config.store.expiry_days}

    def config_show(self, _args: Mapping[str, object]) -> object:
        path = self.actions.config_path
        return {"file": str(path) if path else None, "config": _shown_config(self.daemon.config)}

    def config_get(self, args: Mapping[str, object]) -> object:
        key = self._key(args)
        result: dict[str, object] = {"key": key, "value": _lookup(self.daemon.config, key)}
        path = self.actions.config_path
        if path is not None:
            try:
                result["saved"] = _lookup(
                    parse_config(path.read_text(encoding="utf-8"), str(path)), key
                )
            except (OSError, UnicodeDecodeError, ConfigError) as exc:
                # the running value is still shown; the file's problem is named, not hidden
                result["saved_error"] = "%s: %s" % (path, exc)
        return result

    def _key(self, args: Mapping[str, object]) -> str:
        key = _text_arg(args, "key", "a configuration key such as node.name")
        if key not in schema_keys():
            raise CommandError(
                BAD_ARGUMENTS, "unknown key %r (keys: %s)" % (key, ", ".join(schema_keys()))
            )
        return key

    def config_set(self, args: Mapping[str, object]) -> object:
        key = self._key(args)
        text = _text_arg(args, "value", 'a TOML value: 42, true, "text", ["a", "b"]')
        path = self.actions.config_path
        if path is None:
            raise CommandError(
                UNAVAILABLE, "the relay was started without --config: no file to save to"
            )
        value = _toml_value(text)
        try:
            old = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(UNAVAILABLE, "cannot read %s: %s" % (path, exc)) from exc
        new = set_toml_key(old, key, value)
        try:
            config = parse_config(new, str(path))
        except ConfigError as exc:
            raise CommandError(BAD_ARGUMENTS, str(exc)) from exc
        if _raw_value(new, key) != value:
            raise CommandError(
                BAD_ARGUMENTS, "%s: the file's layout keeps it from being set here" % key
            )
        _write_atomically(path, new)
        live = key == "log.level"
        if live:
            logging.getLogger("waystation").setLevel(str(value).upper())
        shown = HIDDEN if key in HIDDEN_KEYS else _toml(value)
        log.info("console: %s set to %s in %s", key, shown, path)
        return {
            "key": key,
            "value": _lookup(config, key),
            "file": str(path),
            "restart_needed": not live,
        }

    def log_level(self, args: Mapping[str, object]) -> object:
        level = _text_arg(args, "level", "one of " + ", ".join(LOG_LEVELS)).lower()
        if level not in LOG_LEVELS:
            raise CommandError(
                BAD_ARGUMENTS, "level %r: accepted: %s" % (level, ", ".join(LOG_LEVELS))
            )
        logging.getLogger("waystation").setLevel(level.upper())
        return {"level": level, "saved": False}

    def log_tail(self, args: Mapping[str, object]) -> object:
        lines = args.get("lines", DEFAULT_TAIL)
        if type(lines) is not int or not 1 <= lines <= LOG_RING_LINES:
            raise CommandError(BAD_ARGUMENTS, "lines must be a whole number 1..%d" % LOG_RING_LINES)
        kept = list(self.ring.lines)
        return {"text": kept[-lines:] if kept else ["(no log lines yet)"]}

    def wipe(self, args: Mapping[str, object]) -> object:
        if args.get("confirm") != WIPE_PHRASE:
            raise CommandError(
                BAD_ARGUMENTS,
                "wipe erases the node key and every stored entry; to confirm, type: wipe %s"
                % WIPE_PHRASE,
            )
        log.warning("console: wipe confirmed; erasing the key and data, then stopping")
        self.daemon.request_wipe()
        return {"text": ["wiping: the relay stops, erases its key and data, and exits"]}

    def power(self, action: str) -> object:
        log.warning("console: %s requested", action)
        return {"text": [self.actions.power(action)]}


def _toml_value(text: str) -> object:
    """VALUE as typed: a TOML value (42, true, "x", [..]); a bare word is taken as a string."""
    try:
        return tomllib.loads("v = " + text)["v"]
    except tomllib.TOMLDecodeError:
        if any(c in text for c in "\"'[]{}=\n"):
            raise CommandError(
                BAD_ARGUMENTS, 'value %r is not a TOML value (42, true, "text", [..])' % text
            ) from None
        return text


def _raw_value(text: str, key: str) -> object:
    """The value `key` has in TOML `text` as written (before the loader converts it)."""
    table: object = tomllib.loads(text)
    for part in key.split("."):
        if not isinstance(table, dict) or part not in table:
            return None
        table = table[part]
    return table


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise CommandError(BAD_ARGUMENTS, "only numbers, booleans, strings and arrays can be set")


def set_toml_key(text: str, key: str, value: object) -> str:
    """`text` with `key` (dotted: section.name) set to `value`, comments and layout kept.

    The key's line in its section is replaced; a missing key is added at the end of its section,
    a missing section at the end of the file. The caller validates the result (parse_config).
    """
    section, _, name = key.rpartition(".")
    line = "%s = %s" % (name, _toml(value))
    lines = text.splitlines()
    header = "[%s]" % section
    current = ""
    end_of_section: int | None = None
    for index, raw in enumerate(lines):
        stripped = raw.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if current == section:
                break
            current = stripped[1:-1].strip()
            continue
        if current != section:
            continue
        if stripped and not stripped.startswith("#"):
            end_of_section = index
        left = stripped.split("=", 1)[0].strip()
        if "=" in stripped and not stripped.startswith("#") and left == name:
            lines[index] = line
            return "\n".join(lines) + "\n"
    if current == section or header in (s.strip() for s in lines):
        position = (end_of_section if end_of_section is not None else _header_at(lines, header)) + 1
        lines.insert(position, line)
    else:
        lines.extend(["", header, line])
    return "\n".join(lines) + "\n"


def _header_at(lines: list[str], header: str) -> int:
    return next(i for i, s in enumerate(lines) if s.strip() == header)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(".%s.tmp" % path.name)
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise CommandError(UNAVAILABLE, "cannot save %s: %s" % (path, exc.strerror)) from exc


def wipe_data_dir(data_dir: Path, keep: tuple[str, ...] = ("waystation.lock",)) -> list[str]:
    """Remove everything in `data_dir` but `keep` (the lock, still held); returns what went."""
    removed = []
    for entry in sorted(data_dir.iterdir()):
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry.name)
    return removed
