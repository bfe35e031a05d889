"""`make run` installs only what running needs; `make test` adds the development toolchain.

Checked with `make -n` (print the recipes without running them) against a venv path that does
not exist, so every install step shows.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def recipes(target: str, tmp_path: Path) -> list[str]:
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            target,
            "VENV=%s" % (tmp_path / "venv"),
            "DIST=%s" % (tmp_path / "dist"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_run_installs_no_dev_toolchain(tmp_path: Path) -> None:
    lines = recipes("run", tmp_path)
    assert "sh tools/bootstrap.sh tools/debian-packages-run.txt" in lines
    assert any(line.endswith("/pip install -q -e .") for line in lines)
    assert not any("[dev]" in line or "debian-packages.txt" in line for line in lines)
    assert lines[-1].endswith("/waystation run ")
    run_packages = (ROOT / "tools/debian-packages-run.txt").read_text().split("\n")
    assert [p for p in run_packages if p and not p.startswith("#")] == ["python3", "python3-venv"]


def test_make_test_adds_the_dev_toolchain(tmp_path: Path) -> None:
    lines = recipes("test", tmp_path)
    assert any(line.endswith("/pip install -q -e '.[dev]'") for line in lines)
    assert "sh tools/bootstrap.sh tools/debian-packages.txt" in lines


def test_make_dist_builds_a_wheel_and_ships_unit_and_config(tmp_path: Path) -> None:
    lines = recipes("dist", tmp_path)
    assert any(" wheel -q --no-deps -w %s ." % (tmp_path / "dist") in line for line in lines)
    assert lines[-1] == "cp config/waystation.service config/waystation.toml %s/" % (
        tmp_path / "dist"
    )
