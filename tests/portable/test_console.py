# Portable tests of the console's L0 parts: grammar, rendering, the line editor's state table
# (every state x input class), and the shell (PIN delays). Run on CPython and MicroPython.

from harness import TestCase

from node.console import commands, editor
from node.console.commands import ConsoleInputError, parse
from node.console.editor import INPUTS, STATES, TABLE, LineEditor
from node.console.shell import LEFT, LOCKED, READY, ConsoleShell

# One representative byte per input class.
SAMPLE = {
    editor.PRINT: 0x31,  # "1"
    editor.BRACKET: 0x5B,
    editor.LETTER_O: 0x4F,
    editor.FINAL: 0x41,  # "A"
    editor.BS: 0x7F,
    editor.CR_IN: 0x0D,
    editor.LF_IN: 0x0A,
    editor.TAB: 0x09,
    editor.CTRL_C: 0x03,
    editor.CTRL_D: 0x04,
    editor.ESC_IN: 0x1B,
    editor.OTHER: 0x01,
}

# How to reach each state from a fresh editor that holds the line "ab".
REACH = {
    editor.TEXT: b"",
    editor.CR: b"\r",  # (ends the line "ab"; the buffer is then empty)
    editor.ESC: b"\x1b",
    editor.CSI: b"\x1b[",
    editor.SS3: b"\x1bO",
}

# Expected (next state, buffer, event kinds) for every (state, input class) pair; the editor
# starts each case holding "ab" (empty after CR) and a completer that finds nothing.
IN_TEXT = {
    editor.PRINT: (editor.TEXT, "ab1", ["echo"]),
    editor.BRACKET: (editor.TEXT, "ab[", ["echo"]),
    editor.LETTER_O: (editor.TEXT, "abO", ["echo"]),
    editor.FINAL: (editor.TEXT, "abA", ["echo"]),
    editor.BS: (editor.TEXT, "a", ["echo"]),
    editor.CR_IN: (editor.CR, "", ["echo", "line"]),
    editor.LF_IN: (editor.TEXT, "", ["echo", "line"]),
    editor.TAB: (editor.TEXT, "ab", ["echo"]),  # the bell: nothing to complete
    editor.CTRL_C: (editor.TEXT, "", ["echo", "cancel"]),
    editor.CTRL_D: (editor.TEXT, "ab", []),  # not empty: Ctrl-D does nothing
    editor.ESC_IN: (editor.ESC, "ab", []),
    editor.OTHER: (editor.TEXT, "ab", []),
}


def _after_cr():
    table = {}
    for kind, (state, buffer, events) in IN_TEXT.items():
        table[kind] = (
            state,
            buffer.replace("ab", "", 1) if buffer.startswith("ab") else "",
            events,
        )
    table[editor.PRINT] = (editor.TEXT, "1", ["echo"])
    table[editor.BRACKET] = (editor.TEXT, "[", ["echo"])
    table[editor.LETTER_O] = (editor.TEXT, "O", ["echo"])
    table[editor.FINAL] = (editor.TEXT, "A", ["echo"])
    table[editor.BS] = (editor.TEXT, "", [])
    table[editor.CR_IN] = (editor.CR, "", ["echo", "line"])
    table[editor.LF_IN] = (editor.TEXT, "", [])  # the LF of CRLF: no second line
    table[editor.TAB] = (editor.TEXT, "", ["echo"])
    table[editor.CTRL_D] = (editor.TEXT, "", ["leave"])  # empty line: leave
    table[editor.ESC_IN] = (editor.ESC, "", [])
    table[editor.OTHER] = (editor.TEXT, "", [])
    return table


def _in_sequence(state):
    # Inside an escape sequence: control bytes act as in TEXT, other bytes end or continue it.
    table = {}
    for kind in (editor.BS, editor.CR_IN, editor.LF_IN, editor.TAB, editor.CTRL_C, editor.CTRL_D):
        table[kind] = IN_TEXT[kind]
    table[editor.ESC_IN] = (editor.ESC, "ab", [])
    table[editor.OTHER] = (editor.TEXT, "ab", [])
    table[editor.FINAL] = (editor.TEXT, "ab", [])
    table[editor.BRACKET] = (editor.CSI if state == editor.ESC else editor.TEXT, "ab", [])
    table[editor.LETTER_O] = (editor.SS3 if state == editor.ESC else editor.TEXT, "ab", [])
    table[editor.PRINT] = (editor.CSI if state == editor.CSI else editor.TEXT, "ab", [])
    return table


EXPECTED = {
    editor.TEXT: IN_TEXT,
    editor.CR: _after_cr(),
    editor.ESC: _in_sequence(editor.ESC),
    editor.CSI: _in_sequence(editor.CSI),
    editor.SS3: _in_sequence(editor.SS3),
}


def never(_text):
    return []


class EditorTableTests(TestCase):
    def test_the_table_covers_every_state_and_input(self):
        for state in STATES:
            for kind in INPUTS:
                self.assertTrue(kind in TABLE[state], "%s x %s missing" % (state, kind))

    def test_every_state_x_input_pair(self):
        for state in STATES:
            for kind in INPUTS:
                ed = LineEditor(completer=never)
                ed.feed(b"ab" + REACH[state])
                self.assertEqual(ed.state, state)
                events = ed.feed(bytes([SAMPLE[kind]]))
                want_state, want_buffer, want_events = EXPECTED[state][kind]
                where = "%s x %s" % (state, kind)
                self.assertEqual(ed.state, want_state, where)
                self.assertEqual(ed.buffer, want_buffer, where)
                self.assertEqual([e[0] for e in events], want_events, where)

    def test_crlf_cr_and_lf_each_end_one_line(self):
        for ending in (b"\r\n", b"\r", b"\n"):
            ed = LineEditor()
            events = ed.feed(b"status" + ending + b"peers" + ending)
            lines = [e[1] for e in events if e[0] == "line"]
            self.assertEqual(lines, ["status", "peers"], repr(ending))

    def test_lf_cr_is_two_line_endings(self):
        events = LineEditor().feed(b"a\n\rb\r")
        self.assertEqual([e[1] for e in events if e[0] == "line"], ["a", "", "b"])

    def test_arrow_keys_and_function_keys_type_nothing(self):
        ed = LineEditor()
        events = ed.feed(b"a\x1b[A\x1b[1;5C\x1bOPb")
        self.assertEqual(ed.buffer, "ab")
        self.assertEqual(events, [("echo", b"ab")])

    def test_backspace_erases_on_the_terminal(self):
        ed = LineEditor()
        self.assertEqual(ed.feed(b"ab\x08\x7f\x7f"), [("echo", b"ab\x08 \x08\x08 \x08")])
        self.assertEqual(ed.buffer, "")

    def test_a_long_line_is_cut_with_one_bell(self):
        ed = LineEditor(max_line=4)
        events = ed.feed(b"abcdefgh")
        self.assertEqual(events, [("echo", b"abcd\x07")])
        self.assertEqual(ed.buffer, "abcd")

    def test_no_echo_while_a_pin_is_typed(self):
        ed = LineEditor(echo=False)
        self.assertEqual(ed.feed(b"1234\r"), [("echo", b"\r\n"), ("line", "1234")])

    def test_tab_completes_a_unique_command(self):
        ed = LineEditor(completer=commands.complete)
        self.assertEqual(ed.feed(b"vers\t"), [("echo", b"version ")])
        self.assertEqual(ed.buffer, "version ")

    def test_tab_lists_several_and_redraws(self):
        ed = LineEditor(completer=commands.complete)
        events = ed.feed(b"st\t")
        self.assertEqual(events[-1], ("redraw", "st"))
        self.assertTrue(b"status  store" in events[-2][1])


class GrammarTests(TestCase):
    def test_every_row_parses_to_its_control_command(self):
        samples = {
            "KEY": "node.name",
            "VALUE": "my relay",
            "DEVICE": "d1",
            "NAME": "phone",
            "SIZE": "1024",
            "[SECONDS]": "60",
            "HOST:PORT": "192.0.2.7:4740",
            "CODE": "4636-7119",
            "[FINGERPRINT]": "d669-0000",
            "LEVEL": "debug",
            "[N]": "5",
            "[COMMAND]": "store",
            "[PHRASE]": "erase all data",
        }
        for spec in commands.SPECS:
            words = [spec[0]] + [samples[p] for p in spec[2]]
            command = parse(" ".join(words))
            self.assertEqual(command.cmd, spec[1], spec[0])
            self.assertFalse(command.json)

    def test_arguments_and_json(self):
        command = parse("config   set node.name my  relay --json")
        self.assertEqual(command.args, {"key": "node.name", "value": "my relay"})
        self.assertTrue(command.json)
        self.assertEqual(parse("devices set-quota d1 4096").args, {"device": "d1", "bytes": 4096})
        for size, value in (("64M", 64 << 20), ("64MiB", 64 << 20), ("1g", 1 << 30), ("2kb", 2048)):
            self.assertEqual(parse("devices set-quota d1 " + size).args["bytes"], value, size)
        self.assertEqual(parse("pair").args, {})
        self.assertEqual(parse("pair 60").args, {"seconds": 60})
        join = parse("pair join 192.0.2.7:4740 4636-7119 d669-aa")
        self.assertEqual(join.cmd, "pair.join")
        self.assertEqual(
            join.args, {"relay": "192.0.2.7:4740", "code": "4636-7119", "fingerprint": "d669-aa"}
        )
        self.assertEqual(parse("log tail").args, {})
        self.assertEqual(parse("devices").cmd, "devices.list")
        self.assertEqual(parse("STATUS").cmd, "status")
        self.assertIsNone(parse("   "))

    def test_bad_lines_say_what_is_accepted(self):
        cases = {
            "frobnicate": "unknown command 'frobnicate' (commands: status",
            "log": "log: needs a subcommand (accepted: level, tail)",
            "log loud": "log: unknown subcommand 'loud' (accepted: level, tail)",
            "config get": "config get: missing KEY (usage: config get KEY)",
            "devices set-quota d1 lots": "SIZE must be bytes or a size such as 64M or 1G",
            "devices set-quota d1 M": "SIZE must be bytes or a size",
            "devices set-quota d1 64X": "SIZE must be bytes or a size",
            "pair join 192.0.2.7:4740": "pair join: missing CODE",
            "pair soon": "pair: [SECONDS] must be a whole number",
            "status now": "status: unexpected 'now' (usage: status)",
            "--json": "--json needs a command",
            "help nothing": "help: no command 'nothing'",
        }
        for line, message in cases.items():
            try:
                if line.startswith("help"):
                    commands.help_lines(line[5:])
                else:
                    parse(line)
            except ConsoleInputError as exc:
                self.assertTrue(message in str(exc), "%r: %s" % (line, exc))
            else:
                raise AssertionError("%r was accepted" % line)

    def test_help_lists_every_command(self):
        text = "\n".join(commands.help_lines())
        for spec in commands.SPECS:
            self.assertTrue(commands.usage(spec) in text, spec[0])
        self.assertEqual(
            commands.help_lines("log"),
            [
                "log level LEVEL  -- set the log level: debug, info, warning, error",
                "log tail [N]  -- the last N log lines (default 20, at most 200)",
            ],
        )

    def test_completion(self):
        self.assertEqual(commands.complete("st"), ["status", "store"])
        self.assertEqual(commands.complete("config s"), ["config set", "config show"])
        self.assertEqual(
            commands.complete("devices "),
            ["devices list", "devices rename", "devices revoke", "devices set-quota"],
        )
        self.assertEqual(commands.complete("config set x"), [])
        self.assertEqual(commands.complete("zz"), [])

    def test_rendering(self):
        command = parse("logs")
        reply = {"ok": True, "result": {"count": 1, "logs": [{"log": "L1", "pinned": True}]}}
        self.assertEqual(
            commands.render(command, reply),
            ["count  1", "logs (1)", "  log  pinned", "  L1   yes"],
        )
        unknown = {"ok": False, "error": "unknown-command", "message": "unknown command"}
        self.assertEqual(
            commands.render(parse("pair"), unknown), ["pair: not available in this build"]
        )
        refused = {"ok": False, "error": "bad-arguments", "message": "level 'x': accepted: ..."}
        self.assertEqual(
            commands.render(parse("log level x"), refused),
            ["log level: level 'x': accepted: ... (bad-arguments)"],
        )
        self.assertEqual(
            commands.render(command, {"ok": True, "result": {"text": ["a", "b"]}}), ["a", "b"]
        )
        own = commands.render(command, reply, lambda result: ["%d logs" % result["count"]])
        self.assertEqual(own, ["1 logs"])  # the caller's text form of this command
        self.assertEqual(
            commands.render(parse("pair"), unknown, lambda result: ["not used"]),
            ["pair: not available in this build"],
        )


def _fake_ask(cmd, args):
    return {"ok": True, "result": {"cmd": cmd}}


class ShellTests(TestCase):
    def test_commands_and_json(self):
        shell = ConsoleShell("box", _fake_ask, lambda v: "JSON:" + repr(sorted(v)))
        self.assertTrue(shell.start().endswith(b"box> "))
        out = shell.feed(b"version\r", 0)
        self.assertEqual(out, b"version\r\ncmd  version\r\nbox> ")
        out = shell.feed(b"version --json\r", 0)
        self.assertTrue(b"JSON:['ok', 'result']\r\nbox> " in out)

    def test_a_command_shown_in_its_own_text_form(self):
        texts = {"version": lambda result: ["own form of " + result["cmd"]]}
        shell = ConsoleShell("box", _fake_ask, repr, texts=texts)
        self.assertEqual(shell.feed(b"version\r", 0), b"version\r\nown form of version\r\nbox> ")
        self.assertTrue(b"'result'" in shell.feed(b"version --json\r", 0))  # JSON stays JSON
        self.assertEqual(shell.feed(b"store\r", 0), b"store\r\ncmd  store\r\nbox> ")

    def test_ctrl_d_and_exit_leave(self):
        shell = ConsoleShell("box", _fake_ask, repr)
        shell.feed(b"\x04", 0)
        self.assertEqual(shell.state, LEFT)
        shell = ConsoleShell("box", _fake_ask, repr)
        self.assertEqual(shell.feed(b"exit\r", 0), b"exit\r\nbye\r\n")
        self.assertTrue(shell.left)

    def test_pin_delay_grows_and_never_blocks(self):
        shell = ConsoleShell("box", _fake_ask, repr, check_pin=lambda pin: pin == "4321")
        self.assertEqual(shell.state, LOCKED)
        self.assertTrue(shell.start().endswith(b"PIN: "))
        self.assertEqual(shell.feed(b"\r", 100.0), b"\r\nPIN: ")  # Enter is no attempt
        out = shell.feed(b"status\r", 100.0)  # not echoed, and taken as a (wrong) PIN
        self.assertEqual(out, b"\r\nwrong PIN; the next attempt is possible in 2 s\r\nPIN: ")
        out = shell.feed(b"4321\r", 101.0)  # too early, even with the right PIN
        self.assertTrue(b"wait 1 s before the next PIN attempt" in out)
        out = shell.feed(b"0000\r", 102.0)
        self.assertTrue(b"possible in 4 s" in out)
        self.assertEqual(shell.state, LOCKED)
        shell.feed(b"\t", 106.0)  # no completion while locked
        out = shell.feed(b"4321\r", 106.0)
        self.assertTrue(b"PIN accepted" in out and out.endswith(b"box> "))
        self.assertEqual(shell.state, READY)


def _echoing_peer(shell, rounds, now):
    # The other end echoes everything it receives, turning CR LF into CR LF (a cooked tty).
    out = shell.start()
    sent = len(out)
    for _ in range(rounds):
        if not out:
            break
        out = shell.feed(out, now)
        sent += len(out)
    return out, sent


class EchoStormTests(TestCase):
    def test_an_echoing_line_falls_silent(self):
        shell = ConsoleShell("box", _fake_ask, repr)
        out, sent = _echoing_peer(shell, 1000, 5.0)
        self.assertEqual(out, b"")
        self.assertTrue(sent < 200, sent)
        self.assertEqual(shell.echoes, 1)

    def test_a_keystroke_after_the_quiet_period_is_answered(self):
        shell = ConsoleShell("box", _fake_ask, repr)
        _echoing_peer(shell, 10, 5.0)
        self.assertEqual(shell.feed(b"v", 5.5), b"")  # still echoing: stays silent, longer
        self.assertEqual(shell.feed(b"\r", 7.0), b"\r\nbox> ")  # quiet for a second: answered
        self.assertEqual(shell.feed(b"box> ", 7.0), b"")  # and its echo is caught again
        self.assertEqual(shell.echoes, 2)
