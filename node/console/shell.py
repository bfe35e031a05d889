# One console session (L0: sans-IO, runs on MicroPython).
#
# Theory of operation
# -------------------
# A `ConsoleShell` turns typed bytes into bytes to write back: the LineEditor (editor.py) gives
# finished lines, the grammar (commands.py) turns a line into a control command, `ask` (injected
# by the daemon: the control endpoint's own `answer`) runs it, and the reply is rendered into
# text or, with --json, written as the JSON line `dumps` makes. So the shell does no I/O itself:
# the serial port and the console socket only move bytes.
#
# States: LOCKED (a console PIN is configured and not yet given; the PIN is not echoed),
# READY (commands), LEFT (Ctrl-D or `exit`: the transport ends the session). A wrong PIN locks
# the port for 2**n seconds after the n-th wrong attempt in a row (at most MAX_PIN_DELAY_S): a
# line typed before then is refused with the time left. The count lives in a PinGate that the
# port's successive sessions share, so leaving (Ctrl-D) and coming back does not reset it; the
# right PIN does. Nothing sleeps, so other ports are never held up.
#
# Echo storms: a line whose other end echoes what it receives (a serial port left in a tty's
# cooked mode, a misconfigured terminal, two consoles wired together) sends our own output back
# as typed input, and every prompt would answer the last one for ever. The shell recognises its
# own prompt or greeting coming back in the input and then stays silent, discarding input, until
# the line has been quiet for ECHO_QUIET_S; the next real keystroke is answered normally.

from node._compat import TYPE_CHECKING
from node.console.commands import (
    LOCAL_EXIT,
    LOCAL_HELP,
    Command,
    ConsoleInputError,
    complete,
    help_lines,
    parse,
    render,
)
from node.console.editor import LineEditor

if TYPE_CHECKING:
    from collections.abc import Callable

    Ask = Callable[[str, dict[str, object]], dict[str, object]]

LOCKED = "locked"
READY = "ready"
LEFT = "left"

MAX_PIN_DELAY_S = 300
ECHO_QUIET_S = 1.0
GREETING = "waystation console on "


class PinGate:
    """The PIN check of one port and its wrong-attempt delay, shared by the port's sessions.

    Args:
        check: the PIN typed -> right or not.
    """

    def __init__(self, check: "Callable[[str], bool]") -> None:
        self.check = check
        self.failures = 0
        self.locked_until = 0.0

    def attempt(self, pin: str, now: float) -> "tuple[bool, str]":
        """Try `pin` at time `now` (seconds): (unlocked, the line to show)."""
        if now < self.locked_until:
            return False, "wait %d s before the next PIN attempt" % int(
                self.locked_until - now + 0.999
            )
        if self.check(pin):
            self.failures = 0
            return True, "PIN accepted; help lists the commands"
        self.failures += 1
        delay = min(2**self.failures, MAX_PIN_DELAY_S)
        self.locked_until = now + delay
        return False, "wrong PIN; the next attempt is possible in %d s" % delay


class ConsoleShell:
    """One session on one port (see the module comment).

    Args:
        name: the node's name, shown in the prompt.
        ask: (control command, args) -> the control reply dict.
        dumps: a JSON value -> one line of JSON (for --json).
        check_pin: the PIN typed -> right or not; None when no PIN is configured.
        gate: the port's PinGate (shared by its sessions); made from check_pin when not given.
        texts: control command -> how to show its result as text lines (the generic layout of
            the JSON for a command not in it).
    """

    def __init__(
        self,
        name: str,
        ask: "Ask",
        dumps: "Callable[[object], str]",
        check_pin: "Callable[[str], bool] | None" = None,
        texts: "dict[str, Callable[[object], list[str]]] | None" = None,
        gate: "PinGate | None" = None,
    ) -> None:
        self.name = name
        self._texts = texts or {}
        self._ask = ask
        self._dumps = dumps
        if gate is None and check_pin is not None:
            gate = PinGate(check_pin)
        self.gate = gate
        self.state = LOCKED if gate is not None else READY
        self.editor = LineEditor(echo=self.state == READY, completer=complete)
        self.muted_until = -1.0  # our own output came back: silent until then
        self.echoes = 0  # times that happened
        self._recent = b""  # the tail of the input, to spot our prompt split across reads

    @property
    def prompt(self) -> bytes:
        """`NAME> `, or `PIN: ` while locked."""
        text = "PIN: " if self.state == LOCKED else "%s> " % self.name
        return text.encode("utf-8", "replace")

    def start(self) -> bytes:
        """What to write when a session begins (a greeting and the prompt)."""
        greeting = GREETING + "%s; help lists the commands" % self.name
        if self.state == LOCKED:
            greeting = GREETING + "%s; this console needs its PIN" % self.name
        return (greeting + "\r\n").encode("utf-8", "replace") + self.prompt

    def feed(self, data: bytes, now: float) -> bytes:
        """Typed bytes in; bytes to write back out. `now` is a clock in seconds (PIN delays)."""
        if self._echoed(data, now):
            return b""
        out = []
        for kind, payload in self.editor.feed(data):
            if self.state == LEFT:
                break
            if kind == "echo":
                assert isinstance(payload, bytes)
                out.append(payload)
            elif kind == "line":
                assert isinstance(payload, str)
                out.append(self._line(payload, now))
            elif kind == "cancel":
                out.append(self.prompt)
            elif kind == "leave":
                self.state = LEFT
                out.append(b"bye\r\n")
            elif kind == "redraw":
                assert isinstance(payload, str)
                out.append(self.prompt + payload.encode("ascii", "replace"))
        return b"".join(out)

    def _echoed(self, data: bytes, now: float) -> bool:
        """True while the other end is echoing our output back (see the module comment)."""
        if now < self.muted_until:
            self.muted_until = now + ECHO_QUIET_S
            return True
        self._recent = (self._recent + data)[-128:]
        marks = (self.prompt, b"PIN: ", GREETING.encode("ascii"))
        if not any(mark in self._recent for mark in marks):
            return False
        self.echoes += 1
        self._recent = b""
        self.muted_until = now + ECHO_QUIET_S
        self.editor.reset()
        return True

    @property
    def left(self) -> bool:
        """The user left (Ctrl-D or exit): the transport should end the session."""
        return self.state == LEFT

    def _line(self, line: str, now: float) -> bytes:
        if self.state == LOCKED:
            lines = self._unlock(line, now)
        else:
            lines = self.run(line)
        if self.state == LEFT:
            return _text(lines)
        return _text(lines) + self.prompt

    def _unlock(self, pin: str, now: float) -> "list[str]":
        assert self.gate is not None
        if not pin:  # Enter to wake the line up is no attempt
            return []
        unlocked, line = self.gate.attempt(pin, now)
        if unlocked:
            self.state = READY
            self.editor.echo = True
        return [line]

    def run(self, line: str) -> "list[str]":
        """The output lines of one typed command line (also usable without the editor)."""
        try:
            command = parse(line)
            if command is None:
                return []
            if command.cmd == LOCAL_HELP:
                return help_lines(str(command.args.get("topic", "")))
            if command.cmd == LOCAL_EXIT:
                self.state = LEFT
                return ["bye"]
        except ConsoleInputError as exc:
            return [str(exc)]
        return self._remote(command)

    def _remote(self, command: Command) -> "list[str]":
        reply = self._ask(command.cmd, command.args)
        if command.json:
            return [self._dumps(reply)]
        return render(command, reply, self._texts.get(command.cmd))


def _text(lines: "list[str]") -> bytes:
    if not lines:
        return b""
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")
