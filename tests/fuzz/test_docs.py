"""docs/security.md's table of fuzz targets is the one in tests/fuzz/targets.py."""

from __future__ import annotations

from pathlib import Path

from .contract import KIB, Target
from .targets import build_targets

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
BEGIN = "<!-- fuzz-targets -->\n"
END = "<!-- /fuzz-targets -->\n"


def _size(n: int) -> str:
    return "%d MiB" % (n // (1024 * KIB)) if n % (1024 * KIB) == 0 else "%d KiB" % (n // KIB)


def render(targets: list[Target]) -> str:
    """One row per target: name, decoder, rejection type, memory and CPU bounds, open findings."""
    lines = [
        "| target | decoder | bad input raises | peak memory | CPU per input | open finding |",
        "|---|---|---|---|---|---|",
    ]
    for t in targets:
        known = "; ".join("%s (%s)" % (k.finding, k.owner) for k in t.known) or "—"
        lines.append(
            "| `%s` | %s | %s | %s + %d \u00d7 input | %.0f s | %s |"
            % (
                t.name,
                t.what,
                ", ".join("`%s`" % e.__name__ for e in t.rejects),
                _size(t.base),
                t.per_byte,
                t.cpu_seconds,
                known,
            )
        )
    return "\n".join(lines) + "\n"


def test_fuzz_target_table_in_security_md_is_current() -> None:
    text = DOC.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "markers missing in docs/security.md"
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    expected = render(build_targets())
    assert shown == expected, "replace the table in docs/security.md with:\n" + expected
