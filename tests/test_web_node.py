"""The web app's Node tests (`node --test web/tests/`) as one pytest test, so `make test` runs them.

They check the libsodium.js crypto suite against every vector in tests/vectors and against the
PyNaCl suite, inside Pyodide (web/tests/*.test.mjs). The npm packages come from
web/package-lock.json (`npm ci`, tests/web_helpers.py).
"""

from __future__ import annotations

import re
import subprocess

from tests.web_helpers import NODE, WEB, npm_ci


def test_node_test_runner_passes() -> None:
    npm_ci()
    done = subprocess.run(
        [NODE, "--test", "tests/"],
        cwd=WEB,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    passed = re.search(r"^# pass (\d+)$", report, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", report, re.MULTILINE)
    assert passed and failed, report
    assert int(failed.group(1)) == 0, report
    assert int(passed.group(1)) >= 4, report
