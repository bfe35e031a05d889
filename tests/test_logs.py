"""Log lines: one structured line each, and hostile-peer warnings rate-limited."""

from __future__ import annotations

import io
import logging
import os
import re

from node.app.logs import KeyValueFormatter, RateLimited, setup_logging

STAMP = re.compile(r"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=")


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


def test_lines_are_stamped_unless_stderr_is_the_journal(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    log_file = (tmp_path / "stderr").open("w")
    monkeypatch.setattr("sys.stderr", log_file)
    found = os.fstat(log_file.fileno())
    cases = [
        (None, True),  # a terminal or a file: stamped
        ("%d:%d" % (found.st_dev, found.st_ino), False),  # systemd's journal stream: not stamped
        ("%d:%d" % (found.st_dev, found.st_ino + 1), True),  # inherited, but stderr moved on
        ("garbage", True),
    ]
    lines = []
    for value, stamped in cases:
        if value is None:
            monkeypatch.delenv("JOURNAL_STREAM", raising=False)
        else:
            monkeypatch.setenv("JOURNAL_STREAM", value)
        setup_logging("info")
        logging.getLogger("waystation.t").info("case %s", value)
        log_file.flush()
        lines = (tmp_path / "stderr").read_text().splitlines()
        assert lines[-1].endswith('level=info logger=waystation.t msg="case %s"' % value)
        assert bool(STAMP.match(lines[-1])) is stamped, lines[-1]
    logging.getLogger("waystation").handlers.clear()
    log_file.close()


def test_a_stamp_is_utc_with_milliseconds() -> None:
    record = logging.LogRecord("waystation.x", logging.INFO, __file__, 1, "hi", (), None)
    record.created, record.msecs = 1796400000.25, 250.0
    assert KeyValueFormatter(timestamps=True).format(record) == (
        'time=2026-12-04T16:00:00.250Z level=info logger=waystation.x msg="hi"'
    )
