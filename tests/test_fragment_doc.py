"""docs/protocol.md's copy of the BLE fragment state table is the one in the code."""

from __future__ import annotations

from pathlib import Path

from node.proto import fragment

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
BEGIN = "<!-- fragment-table -->\n"
END = "<!-- /fragment-table -->\n"


def render() -> str:
    """The table as docs/protocol.md shows it: one row per state, one column per input."""
    lines = [
        "| state \\ input | " + " | ".join(fragment.INPUTS) + " |",
        "|---|" + "---|" * len(fragment.INPUTS),
    ]
    for state in fragment.STATES:
        cells = ["%s → %s" % fragment.TRANSITIONS[(state, kind)] for kind in fragment.INPUTS]
        lines.append("| %s | %s |" % (state, " | ".join(cells)))
    return "\n".join(lines) + "\n"


def test_fragment_table_in_protocol_md_is_current() -> None:
    text = DOC.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "markers missing in docs/protocol.md"
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert shown == render(), "replace the table in docs/protocol.md with:\n" + render()


def test_table_covers_every_state_and_input() -> None:
    assert set(fragment.TRANSITIONS) == {(s, i) for s in fragment.STATES for i in fragment.INPUTS}
