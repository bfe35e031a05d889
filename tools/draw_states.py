"""Draw the state tables into docs/protocol.md: the session's (node/proto/_states.py) and
reconciliation's per-log one (node/sync/_reconcile_states.py).

Usage: python tools/draw_states.py [--check]

Writes a Mermaid state diagram and the full (state, input) table of each between its markers
(`<!-- states:begin -->` ... `<!-- states:end -->`, `<!-- reconcile-states:begin -->` ...
`<!-- reconcile-states:end -->`). With --check it only compares and exits 1 when the docs are
stale (tests/test_docs.py runs that).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.proto import _states as S  # noqa: E402, N812
from node.sync import _reconcile_states as R  # noqa: E402, N812

DOC = ROOT / "docs" / "protocol.md"
BEGIN = "<!-- states:begin -->"
END = "<!-- states:end -->"


def render() -> str:
    lines = [BEGIN, "", "```mermaid", "stateDiagram-v2"]
    lines.append("    [*] --> AWAIT_HANDSHAKE")
    seen: set[tuple[str, str, str]] = set()
    for (state, event), (action, nxt) in sorted(S.TRANSITIONS.items()):
        if action == "ignore" and state == nxt:
            continue
        if state == nxt and action in ("deliver", "send"):
            event = "RECV_* / SEND_*"
        key = (state, nxt, event)
        if key in seen:
            continue
        seen.add(key)
        lines.append("    %s --> %s: %s" % (state, nxt, event))
    lines.append("    CLOSED --> [*]")
    lines.append("    ERROR --> [*]")
    lines.append("```")
    lines.append("")
    lines.append(
        "Any remote input not listed moves to ERROR with `RemoteProtocolError` (reason "
        "`unexpected`); any local input not listed raises `LocalProtocolError` and changes nothing."
    )
    lines.append("")
    lines.append("| state | input | action | next state |")
    lines.append("|---|---|---|---|")
    for state in S.STATES:
        for event in S.INPUTS:
            step = S.TRANSITIONS.get((state, event))
            if step is not None:
                lines.append("| %s | %s | %s | %s |" % (state, event, step[0], step[1]))
    lines.append("")
    lines.append(END)
    return "\n".join(lines)


R_BEGIN = "<!-- reconcile-states:begin -->"
R_END = "<!-- reconcile-states:end -->"


def render_reconcile() -> str:
    """The per-log reconciliation table: its diagram, then every (state, input) pair it allows."""
    lines = [R_BEGIN, "", "```mermaid", "stateDiagram-v2", "    [*] --> AWAIT_OPEN"]
    for (state, event), (_action, nexts) in sorted(R.TRANSITIONS.items()):
        for nxt in nexts:
            if nxt != state:
                lines.append("    %s --> %s: %s" % (state, nxt, event))
    lines += ["    DONE --> [*]", "```", ""]
    lines.append(
        "A received section whose (state, op) is not listed raises `RemoteProtocolError` (reason "
        "`unexpected`); the action chooses one of the listed next states from what it finds."
    )
    lines += ["", "| state | input | action | next state (one of) |", "|---|---|---|---|"]
    for state in R.STATES:
        for event in R.INPUTS:
            step = R.TRANSITIONS.get((state, event))
            if step is not None:
                lines.append("| %s | %s | %s | %s |" % (state, event, step[0], ", ".join(step[1])))
    lines += ["", R_END]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + render() + text[end:]
    start, end = updated.index(R_BEGIN), updated.index(R_END) + len(R_END)
    updated = updated[:start] + render_reconcile() + updated[end:]
    if "--check" in argv:
        if updated != text:
            print("docs/protocol.md: the state table is stale; run python tools/draw_states.py")
            return 1
        return 0
    DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
