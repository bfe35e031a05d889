"""Log lines: one structured line each, and hostile-peer warnings rate-limited."""

from __future__ import annotations

import io
import logging

from node.app.logs import KeyValueFormatter, RateLimited, setup_logging


def test_key_value_line_escapes_quotes_and_newlines() -> None:
    record = logging.LogRecord("waystation.x", logging.INFO, __file__, 1, 'a "b"\nc', (), None)
    assert KeyValueFormatter().format(record) == (
        'level=info logger=waystation.x msg="a \\"b\\"\\nc"'
    )


def test_a_flood_of_bad_links_costs_a_few_lines(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging("info")
    link_log = logging.getLogger("waystation.link")
    assert any(isinstance(f, RateLimited) for f in link_log.filters)
    for i in range(100):
        link_log.warning("%s: %s (%s)", "tcp:10.0.0.%d:1" % i, "garbage", "malformed")
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) <= 30
    # Another kind of message still gets through.
    link_log.warning("different template %d", 1)
    assert len(stream.getvalue().splitlines()) == len(lines) + 1
    logging.getLogger("waystation").handlers.clear()
