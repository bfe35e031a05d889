"""Hypothesis on the console's line editor and grammar: any bytes, any split into chunks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.console.commands import ConsoleInputError, complete, parse, render
from node.console.editor import MAX_LINE, LineEditor
from node.console.shell import ConsoleShell

chunks = st.lists(st.binary(max_size=64), max_size=32)


def run(editor: LineEditor, parts: list[bytes]) -> list[tuple[str, object]]:
    events: list[tuple[str, object]] = []
    for part in parts:
        events.extend(editor.feed(part))
    return events


@given(chunks)
def test_any_bytes_keep_the_editor_sane(parts: list[bytes]) -> None:
    editor = LineEditor(completer=complete)
    events = run(editor, parts)
    assert len(editor.buffer) <= MAX_LINE
    assert all(0x20 <= ord(c) <= 0x7E for c in editor.buffer)
    for kind, payload in events:
        assert kind in ("echo", "line", "cancel", "leave", "redraw")
        if kind == "echo":
            assert isinstance(payload, bytes)
            # never an escape sequence, never a lone CR or LF: only CRLF pairs go out
            assert b"\x1b" not in payload
            assert payload.replace(b"\r\n", b"").count(b"\r") == 0
            assert payload.replace(b"\r\n", b"").count(b"\n") == 0
        if kind == "line":
            assert isinstance(payload, str) and len(payload) <= MAX_LINE


@given(chunks, st.data())
def test_chunking_does_not_matter(parts: list[bytes], data: st.DataObject) -> None:
    whole = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(whole)), max_size=8)))
    pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    one, many = LineEditor(completer=complete), LineEditor(completer=complete)
    lines_one = [p for k, p in run(one, [whole]) if k in ("line", "cancel", "leave")]
    lines_many = [p for k, p in run(many, pieces) if k in ("line", "cancel", "leave")]
    assert lines_one == lines_many
    assert one.buffer == many.buffer and one.state == many.state


printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@given(st.lists(printable, max_size=8), st.sampled_from([b"\r", b"\n", b"\r\n"]))
def test_typed_lines_come_out_as_typed(lines: list[str], ending: bytes) -> None:
    editor = LineEditor()
    data = b"".join(line.encode() + ending for line in lines)
    events = editor.feed(data)
    assert [p for k, p in events if k == "line"] == lines
    echoed = b"".join(p for k, p in events if k == "echo" and isinstance(p, bytes))
    assert echoed == b"".join(line.encode() + b"\r\n" for line in lines)


@given(printable)
def test_any_line_parses_or_says_why(line: str) -> None:
    try:
        command = parse(line)
    except ConsoleInputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    if command is not None:
        assert render(command, {"ok": False, "error": "x", "message": "m"})


@given(chunks)
def test_the_shell_survives_any_bytes(parts: list[bytes]) -> None:
    shell = ConsoleShell("n", lambda c, a: {"ok": True, "result": {"c": c, "a": a}}, repr)
    for part in parts:
        out = shell.feed(part, 0.0)
        assert isinstance(out, bytes)
