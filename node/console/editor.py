# The console's line editor (L0: sans-IO, runs on MicroPython).
#
# Theory of operation
# -------------------
# Bytes typed on a terminal go in (`feed`); events come out in order: ("echo", bytes) to write
# back, ("line", text) for a finished line, ("cancel", "") for Ctrl-C, ("leave", "") for Ctrl-D
# on an empty line, and after a Tab that matches several commands ("echo", the list) followed by
# ("redraw", the line so far) so the caller writes its prompt and the line again. Tab asks the
# injected `completer` at once, so bytes typed after it in one chunk land after the completion.
# The terminal on the other end (picocom, screen, minicom, `waystation console`) does not echo
# locally, so the editor echoes each printable character it keeps and nothing else: a CR, LF,
# escape sequence or control byte is never echoed raw, so two ends echoing each other cannot feed
# a storm; a line at MAX_LINE keeps nothing more and rings the bell once.
#
# One state table (TABLE) maps (state, input class) to a handler. States:
#   TEXT  typing a line
#   CR    a CR ended the last line: an LF right after it is part of the same line ending
#   ESC   an ESC arrived: a sequence follows (arrow keys send ESC [ A, F-keys ESC O P)
#   CSI   inside ESC [ ... : parameters until a final byte 0x40..0x7e
#   SS3   after ESC O: one more byte ends the sequence
# Escape sequences are swallowed whole: arrow keys do nothing rather than typing "[A".

from node._compat import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

TEXT = "text"
CR = "cr"
ESC = "esc"
CSI = "csi"
SS3 = "ss3"
STATES = (TEXT, CR, ESC, CSI, SS3)

# Input classes of one byte.
PRINT = "print"  # 0x20..0x7e, except those below when they matter in a sequence
BRACKET = "bracket"  # '['
LETTER_O = "O"  # 'O'
FINAL = "final"  # other 0x40..0x7e (may end a CSI)
BS = "bs"  # 0x08, 0x7f
CR_IN = "cr-in"
LF_IN = "lf-in"
TAB = "tab"
CTRL_C = "ctrl-c"
CTRL_D = "ctrl-d"
ESC_IN = "esc-in"
OTHER = "other"  # other control bytes, 0x80..0xff
INPUTS = (PRINT, BRACKET, LETTER_O, FINAL, BS, CR_IN, LF_IN, TAB, CTRL_C, CTRL_D, ESC_IN, OTHER)

MAX_LINE = 256
MAX_LISTED = 24  # completions listed after a Tab
MAX_SEQUENCE = 16  # bytes of one escape sequence before it is abandoned
BELL = b"\x07"
ERASE = b"\x08 \x08"


def classify(byte: int) -> str:
    """The input class of one byte."""
    if byte == 0x5B:
        return BRACKET
    if byte == 0x4F:
        return LETTER_O
    if 0x40 <= byte <= 0x7E:
        return FINAL
    if 0x20 <= byte <= 0x3F:
        return PRINT
    return {
        0x08: BS,
        0x7F: BS,
        0x0D: CR_IN,
        0x0A: LF_IN,
        0x09: TAB,
        0x03: CTRL_C,
        0x04: CTRL_D,
        0x1B: ESC_IN,
    }.get(byte, OTHER)


class LineEditor:
    """Bytes in, echo and finished lines out (see the module comment).

    Args:
        echo: echo kept characters (False while a PIN is typed: nothing is shown).
        max_line: the longest line kept, in characters.
        completer: the line so far -> the complete lines it may become (None: Tab rings).
    """

    def __init__(
        self,
        echo: bool = True,
        max_line: int = MAX_LINE,
        completer: "Callable[[str], list[str]] | None" = None,
    ) -> None:
        self.state = TEXT
        self.buffer = ""
        self.echo = echo
        self.max_line = max_line
        self.completer = completer
        self._rang = False
        self._sequence = 0
        self._events: "list[tuple[str, object]]" = []

    def feed(self, data: bytes) -> "list[tuple[str, object]]":
        """Process typed bytes; returns the events in order (echo bytes merged)."""
        self._events = []
        for byte in data:
            kind = classify(byte)
            TABLE[self.state][kind](self, byte)
        return self._events

    def insert(self, text: str) -> None:
        """Append `text` (a completion) as if typed, echoing it."""
        for char in text:
            self._keep(ord(char))

    def reset(self) -> None:
        """Forget the line being typed (a new session on the same port)."""
        self.state = TEXT
        self.buffer = ""
        self._rang = False

    # -- output ---------------------------------------------------------------------------------

    def _emit(self, kind: str, payload: object) -> None:
        if kind == "echo" and self._events and self._events[-1][0] == "echo":
            previous = self._events[-1][1]
            assert isinstance(previous, bytes) and isinstance(payload, bytes)
            self._events[-1] = ("echo", previous + payload)
        else:
            self._events.append((kind, payload))

    # -- handlers, one per table cell -------------------------------------------------------------

    def _keep(self, byte: int) -> None:
        self.state = TEXT
        if len(self.buffer) >= self.max_line:
            if not self._rang:
                self._emit("echo", BELL)
                self._rang = True
            return
        self.buffer += chr(byte)
        if self.echo:
            self._emit("echo", bytes([byte]))

    def _erase(self, _byte: int) -> None:
        self.state = TEXT
        if self.buffer:
            self.buffer = self.buffer[:-1]
            self._rang = False
            if self.echo:
                self._emit("echo", ERASE)

    def _finish(self, byte: int) -> None:
        line = self.buffer
        self.buffer = ""
        self._rang = False
        self.state = CR if byte == 0x0D else TEXT
        self._emit("echo", b"\r\n")
        self._emit("line", line)

    def _swallow_lf(self, _byte: int) -> None:
        self.state = TEXT  # the LF of a CRLF: the line was already finished by the CR

    def _tab(self, _byte: int) -> None:
        self.state = TEXT
        found = self.completer(self.buffer) if self.completer is not None and self.echo else []
        if not found:
            self._emit("echo", BELL)
            return
        common = found[0]
        for other in found[1:]:
            while not other.startswith(common):
                common = common[:-1]
        if len(found) == 1:
            common += " "
        typed = self.buffer.lstrip()
        if len(common) > len(typed) and common.startswith(typed):
            self.insert(common[len(typed) :])
            return
        listed = "  ".join(found[:MAX_LISTED])
        self._emit("echo", b"\r\n" + listed.encode() + b"\r\n")
        self._emit("redraw", self.buffer)

    def _cancel(self, _byte: int) -> None:
        self.state = TEXT
        self.buffer = ""
        self._rang = False
        self._emit("echo", b"^C\r\n")
        self._emit("cancel", "")

    def _eof(self, _byte: int) -> None:
        self.state = TEXT
        if not self.buffer:
            self._emit("leave", "")

    def _ignore(self, _byte: int) -> None:
        self.state = TEXT

    def _escape(self, _byte: int) -> None:
        self.state = ESC
        self._sequence = 1

    def _csi(self, _byte: int) -> None:
        self.state = CSI
        self._sequence += 1

    def _ss3(self, _byte: int) -> None:
        self.state = SS3

    def _in_sequence(self, _byte: int) -> None:
        self._sequence += 1
        if self._sequence > MAX_SEQUENCE:
            self.state = TEXT  # not a sequence after all; drop it

    def _end_sequence(self, _byte: int) -> None:
        self.state = TEXT

    def _escape_again(self, _byte: int) -> None:
        self._escape(_byte)


def _table() -> "dict[str, dict[str, Callable[[LineEditor, int], None]]]":
    e = LineEditor
    # Outside a sequence (TEXT, and CR which differs only for LF).
    text: "dict[str, Callable[[LineEditor, int], None]]" = {
        PRINT: e._keep,
        BRACKET: e._keep,
        LETTER_O: e._keep,
        FINAL: e._keep,
        BS: e._erase,
        CR_IN: e._finish,
        LF_IN: e._finish,
        TAB: e._tab,
        CTRL_C: e._cancel,
        CTRL_D: e._eof,
        ESC_IN: e._escape,
        OTHER: e._ignore,
    }
    after_cr = dict(text)
    after_cr[LF_IN] = e._swallow_lf
    # ESC: '[' opens a CSI, 'O' an SS3; any other byte is a two-byte sequence (Alt-x), dropped.
    esc: "dict[str, Callable[[LineEditor, int], None]]" = dict.fromkeys(INPUTS, e._end_sequence)
    esc[BRACKET] = e._csi
    esc[LETTER_O] = e._ss3
    esc[ESC_IN] = e._escape_again
    # Control bytes inside a sequence are acted on (a Ctrl-C still cancels).
    for kind in (CR_IN, LF_IN, CTRL_C, CTRL_D, BS, TAB):
        esc[kind] = text[kind]
    csi = dict(esc)
    csi[PRINT] = e._in_sequence  # parameters 0x20..0x3f
    csi[BRACKET] = e._end_sequence  # '[' is a final byte inside a CSI (0x5b)
    csi[LETTER_O] = e._end_sequence
    csi[FINAL] = e._end_sequence
    ss3 = dict(esc)
    for kind in (PRINT, BRACKET, LETTER_O, FINAL):
        ss3[kind] = e._end_sequence
    return {TEXT: text, CR: after_cr, ESC: esc, CSI: csi, SS3: ss3}


TABLE = _table()
