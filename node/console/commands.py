# The console's grammar and rendering (L0: sans-IO, runs on MicroPython).
#
# Theory of operation
# -------------------
# Every console command is a control-endpoint command (node/app/control.py): a line typed on a
# serial port or through `waystation console` is parsed here into a `Command` (the control
# command's name and its JSON arguments), the caller asks the control endpoint, and the reply
# dict is rendered back into text lines here. Nothing is executed in this module, so a command
# exists once, and a script sending JSON to DATA/control.sock gets exactly what a person sees.
#
# A line is words separated by blanks. The first word (and, for a group such as `config`, the
# second) picks a row of SPECS; the remaining words fill its parameters in order, the last
# parameter of a row marked `rest` taking the remainder of the line verbatim (`config set
# node.name my relay`). `--json` anywhere asks for the raw JSON reply. A line that fits no row
# raises ConsoleInputError with one line that says what was wrong and what is accepted.

from node._compat import TYPE_CHECKING
from node.errors import NodeError

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_TAIL_LINES = 200
JSON_FLAG = "--json"

# Local commands: handled by the shell, never sent to the daemon.
LOCAL_HELP = "help"
LOCAL_EXIT = "exit"


class ConsoleInputError(NodeError):
    """A typed line that is not a command; the message says what is accepted."""


class Command:
    """One parsed line.

    Attributes:
        name: the words naming it, e.g. "config set".
        cmd: the control command (e.g. "config.set"), or LOCAL_HELP / LOCAL_EXIT.
        args: the JSON arguments of the control request.
        json: the user asked for the JSON reply (`--json`).
    """

    def __init__(self, name: str, cmd: str, args: "dict[str, object]", json: bool) -> None:
        self.name = name
        self.cmd = cmd
        self.args = args
        self.json = json

    def __repr__(self) -> str:
        return "Command(%r, %r, %r, json=%r)" % (self.name, self.cmd, self.args, self.json)


# Parameters: the name shown in help -> (JSON key, kind). Kinds: "word", "int", "size" (bytes,
# or with a binary unit: 512K, 64M, 1G, 64MiB), "rest".
PARAMS = {
    "KEY": ("key", "word"),
    "VALUE": ("value", "rest"),
    "DEVICE": ("device", "word"),
    "NAME": ("name", "rest"),
    "SIZE": ("bytes", "size"),
    "[SECONDS]": ("seconds", "int"),
    "HOST:PORT": ("relay", "word"),
    "CODE": ("code", "word"),
    "[FINGERPRINT]": ("fingerprint", "word"),
    "LEVEL": ("level", "word"),
    "[N]": ("lines", "int"),
    "[COMMAND]": ("topic", "rest"),
    "[PHRASE]": ("confirm", "rest"),
}

# (words, control command, parameters, one-line help). Order is the order `help` lists them.
SPECS = (
    ("status", "status", (), "identity, uptime, version, transports, store, links"),
    ("peers", "peers", (), "open links and recently seen relays"),
    ("logs", "logs", (), "carried logs: entries, bytes, last activity, pinned"),
    ("store", "store", (), "store usage, quotas and expiry"),
    ("store evict", "store.evict", (), "expire old entries now"),
    ("config show", "config.show", (), "the running configuration"),
    ("config get", "config.get", ("KEY",), "one configuration value, e.g. config get node.name"),
    ("config set", "config.set", ("KEY", "VALUE"), "validate and save a value (TOML syntax)"),
    ("pair", "pair.open", ("[SECONDS]",), "open a pairing window: a code and a QR code"),
    ("pair status", "pair.status", (), "the pairing window's state, how a join went"),
    (
        "pair join",
        "pair.join",
        ("HOST:PORT", "CODE", "[FINGERPRINT]"),
        "pair with a relay's window",
    ),
    ("devices list", "devices.list", (), "paired devices and relays"),
    ("devices rename", "devices.rename", ("DEVICE", "NAME"), "rename a paired device"),
    (
        "devices set-quota",
        "devices.set_quota",
        ("DEVICE", "SIZE"),
        "bytes each of its logs may hold",
    ),
    ("devices revoke", "devices.revoke", ("DEVICE",), "drop a device's pins, close its links"),
    ("log level", "log.level", ("LEVEL",), "set the log level: debug, info, warning, error"),
    ("log tail", "log.tail", ("[N]",), "the last N log lines (default 20, at most 200)"),
    ("wipe", "wipe", ("[PHRASE]",), "erase the node key and all data: wipe erase all data"),
    ("reboot", "reboot", (), "reboot the machine (through systemd)"),
    ("poweroff", "poweroff", (), "power the machine off (through systemd)"),
    ("version", "version", (), "the software version"),
    ("help", LOCAL_HELP, ("[COMMAND]",), "this list, or help COMMAND"),
    ("exit", LOCAL_EXIT, (), "leave the console (also Ctrl-D)"),
)

# A group word alone means its first subcommand listed here; a group with no default needs one.
GROUP_DEFAULTS = {"config": "config show", "devices": "devices list"}


def _spec_names() -> "list[str]":
    return [spec[0] for spec in SPECS]


def _groups() -> "dict[str, list[str]]":
    groups: "dict[str, list[str]]" = {}
    for name in _spec_names():
        words = name.split(" ")
        if len(words) == 2:
            groups.setdefault(words[0], []).append(words[1])
    return groups


def _find(name: str) -> "tuple[str, str, tuple[str, ...], str] | None":
    for spec in SPECS:
        if spec[0] == name:
            return spec
    return None


def usage(spec: "tuple[str, str, tuple[str, ...], str]") -> str:
    """`config set KEY VALUE`: a row's name with its parameters."""
    return " ".join((spec[0],) + spec[2])


def _split(line: str) -> "list[str]":
    return [word for word in line.replace("\t", " ").split(" ") if word]


def parse(line: str) -> "Command | None":
    """Parse one typed line.

    Args:
        line: what the user typed, without the line ending.

    Returns:
        The command, or None for a blank line.

    Raises:
        ConsoleInputError: one line naming what was wrong and what is accepted.
    """
    words = _split(line)
    as_json = JSON_FLAG in words
    words = [w for w in words if w != JSON_FLAG]
    if not words:
        if as_json:
            raise ConsoleInputError("--json needs a command, e.g. status --json")
        return None
    first = words[0].lower()
    groups = _groups()
    if first in groups:
        second = words[1].lower() if len(words) > 1 else ""
        if second in groups[first]:
            name, rest = first + " " + second, words[2:]
        elif _find(first) is not None:
            name, rest = first, words[1:]
        elif not second and first in GROUP_DEFAULTS:
            name, rest = GROUP_DEFAULTS[first], []
        else:
            what = "needs a subcommand" if not second else "unknown subcommand %r" % words[1]
            raise ConsoleInputError(
                "%s: %s (accepted: %s)" % (first, what, ", ".join(groups[first]))
            )
    elif _find(first) is not None:
        name, rest = first, words[1:]
    elif first in ("quit", "logout"):
        name, rest = "exit", words[1:]
    else:
        raise ConsoleInputError(
            "unknown command %r (commands: %s; help COMMAND for details)"
            % (words[0], ", ".join(_top_words()))
        )
    spec = _find(name)
    assert spec is not None
    return Command(name, spec[1], _arguments(spec, rest, line), as_json)


def _top_words() -> "list[str]":
    seen: "list[str]" = []
    for name in _spec_names():
        word = name.split(" ")[0]
        if word not in seen:
            seen.append(word)
    return seen


def _arguments(
    spec: "tuple[str, str, tuple[str, ...], str]", words: "list[str]", line: str
) -> "dict[str, object]":
    params = spec[2]
    args: "dict[str, object]" = {}
    for index, param in enumerate(params):
        key, kind = PARAMS[param]
        optional = param.startswith("[")
        if index >= len(words):
            if optional:
                break
            raise ConsoleInputError("%s: missing %s (usage: %s)" % (spec[0], param, usage(spec)))
        if kind == "rest":
            args[key] = _rest_of(line, words[index])
            return args
        word = words[index]
        if kind == "int":
            args[key] = _whole(spec, param, word)
        elif kind == "size":
            args[key] = _size(spec, param, word)
        else:
            args[key] = word
    if len(words) > len(params):
        raise ConsoleInputError(
            "%s: unexpected %r (usage: %s)" % (spec[0], words[len(params)], usage(spec))
        )
    return args


def _rest_of(line: str, first_word: str) -> str:
    # The remainder of the line from the word `first_word`, blanks inside kept, --json dropped.
    words = _split(line)
    start = words.index(first_word)
    kept = [w for w in words[start:] if w != JSON_FLAG]
    return " ".join(kept)


def _whole(spec: "tuple[str, str, tuple[str, ...], str]", param: str, word: str) -> int:
    if not word.isdigit() or len(word) > 18:
        raise ConsoleInputError(
            "%s: %s must be a whole number, got %r (usage: %s)"
            % (spec[0], param, word, usage(spec))
        )
    return int(word)


SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _size(spec: "tuple[str, str, tuple[str, ...], str]", param: str, word: str) -> int:
    # bytes, or a whole number with a binary unit: 512K, 64M, 64MiB, 1G, 1GB
    text = word.lower()
    for tail in ("ib", "b"):
        if text.endswith(tail):
            text = text[: len(text) - len(tail)]
            break
    unit = SIZE_UNITS.get(text[-1:], 0)
    digits = text[:-1] if unit else text
    if not digits.isdigit() or len(digits) > 15:
        raise ConsoleInputError(
            "%s: %s must be bytes or a size such as 64M or 1G, got %r (usage: %s)"
            % (spec[0], param, word, usage(spec))
        )
    return int(digits) * (unit or 1)


def help_lines(topic: str = "") -> "list[str]":
    """`help` (every command) or `help COMMAND` (the rows starting with COMMAND)."""
    if not topic:
        width = max(len(usage(spec)) for spec in SPECS)
        lines = [usage(spec) + " " * (width - len(usage(spec)) + 2) + spec[3] for spec in SPECS]
        lines.append("Add --json to any command for the daemon's JSON reply. Tab completes.")
        return lines
    wanted = " ".join(_split(topic.lower()))
    rows = [s for s in SPECS if s[0] == wanted or s[0].startswith(wanted + " ")]
    if not rows:
        raise ConsoleInputError(
            "help: no command %r (commands: %s)" % (topic, ", ".join(_top_words()))
        )
    return ["%s  -- %s" % (usage(spec), spec[3]) for spec in rows]


def complete(text: str) -> "list[str]":
    """Completions of a partly typed line (command words only), sorted.

    `st` gives ["status", "store"]; `config s` gives ["config set", "config show"]. A completion
    ends where the typed word ends: parameters are never guessed.
    """
    words = _split(text)
    trailing = text.endswith(" ")
    if len(words) > 2 or (len(words) == 2 and trailing):
        return []
    if not words or (len(words) == 1 and not trailing):
        prefix = words[0].lower() if words else ""
        found = [w for w in _top_words() if w.startswith(prefix)]
    else:
        group = _groups().get(words[0].lower(), [])
        prefix = words[1].lower() if len(words) == 2 else ""
        found = [words[0].lower() + " " + w for w in group if w.startswith(prefix)]
    found.sort()
    return found


# -- rendering a reply --------------------------------------------------------------------------


def render(
    command: Command,
    reply: "dict[str, object]",
    text: "Callable[[object], list[str]] | None" = None,
) -> "list[str]":
    """The text lines for a control reply (`{"ok": true, "result": ...}` or an error).

    An `unknown-command` error means this daemon has no such control command (e.g. pairing in a
    build without it): the user reads that it is not available, not a protocol error. `text`,
    when given, turns this command's result into lines (the caller's own human form, e.g. the
    one `waystation status` prints); otherwise a generic layout of the JSON is used.
    """
    if reply.get("ok") is not True:
        code = reply.get("error")
        if code == "unknown-command":
            return ["%s: not available in this build" % command.name]
        return ["%s: %s (%s)" % (command.name, reply.get("message"), code)]
    result = reply.get("result")
    if text is not None:
        return text(result)
    if isinstance(result, dict) and isinstance(result.get("text"), list):
        return [str(line) for line in result["text"]]
    return render_value(result)


def render_value(value: object, indent: str = "") -> "list[str]":
    """A JSON value as indented `key  value` lines; lists of objects become tables."""
    if isinstance(value, dict):
        lines: "list[str]" = []
        keys = sorted(value)
        width = max([len(k) for k in keys] + [0])
        for key in keys:
            item = value[key]
            if isinstance(item, dict) and item:
                lines.append(indent + key)
                lines.extend(render_value(item, indent + "  "))
            elif isinstance(item, list) and item:
                lines.append(indent + "%s (%d)" % (key, len(item)))
                lines.extend(render_value(item, indent + "  "))
            else:
                lines.append(indent + key + " " * (width - len(key) + 2) + scalar(item))
        return lines
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return _table(value, indent)
        return [indent + scalar(v) for v in value]
    return [indent + scalar(value)]


def _table(rows: "list[dict[str, object]]", indent: str) -> "list[str]":
    columns: "list[str]" = []
    for row in rows:
        for key in sorted(row):
            if key not in columns:
                columns.append(key)
    cells = [[scalar(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [indent + "  ".join(c + " " * (widths[i] - len(c)) for i, c in enumerate(columns))]
    for cell_row in cells:
        lines.append(
            indent + "  ".join(v + " " * (widths[i] - len(v)) for i, v in enumerate(cell_row))
        )
    return [line.rstrip() for line in lines]


def scalar(value: object) -> str:
    """One value as text: null as -, booleans as yes/no, nested values compactly."""
    if value is None:
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (k, scalar(value[k])) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(scalar(v) for v in value) + "]" if value else "(none)"
    return str(value)
