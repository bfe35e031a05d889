"""Draw the session state table (node/proto/_states.py) into docs/protocol.md.

Usage: python tools/draw_states.py [--check]

Writes a Mermaid state diagram and the full (state, input) table between the markers
`<!-- states:begin -->` and `<!-- states:end -->`. With --check it only compares and exits 1 when
the docs are stale (tests/test_docs.py runs that).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.proto import _states as S  # noqa: E402, N812

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


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + render() + text[end:]
    if "--check" in argv:
        if updated != text:
            print("docs/protocol.md: the state table is stale; run python tools/draw_states.py")
            return 1
        return 0
    DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
