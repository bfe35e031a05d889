"""The docs that are generated from code stay true."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_state_table_in_protocol_md_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "tools/draw_states.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_bye_reason_the_code_sends_is_documented() -> None:
    from node import errors
    from node.app import peer
    from node.proto import session

    doc = (ROOT / "docs" / "protocol.md").read_text()
    reasons = {getattr(errors, name) for name in dir(errors) if name.startswith("REASON_")} | {
        session.REASON_OK,
        session.REASON_FLOW,
        "shutdown",
        "version",
        "unsettled",
    }
    assert peer.MAX_PASSES == 8
    missing = sorted(r for r in reasons if "| `%s` |" % r not in doc)
    assert not missing, "bye reasons missing from docs/protocol.md: %s" % missing
