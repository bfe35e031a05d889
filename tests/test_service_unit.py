"""config/waystation.service: `systemd-analyze verify` and `security --offline` pass on it.

`verify` checks the unit the way systemd would load it (keys, values, that ExecStart= is an
executable), so it runs against a scratch root holding the host's system units, the unit under
test and a stand-in for the installed program (tests/integration/test_install_debian.py installs
the real program from a wheel in a fresh Debian root and verifies the unit there too).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "config" / "waystation.service"
PROGRAM = "/opt/waystation/bin/waystation"
MAX_EXPOSURE = 2.0  # systemd-analyze security: "OK" is below 3.0; today's unit scores 1.3


def scratch_root(tmp_path: Path, unit_text: str) -> Path:
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    program = root / PROGRAM.lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "waystation.service").write_text(unit_text)
    return root


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze missing: tools/bootstrap.sh installs the Debian package systemd"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_verifies_clean(tmp_path: Path) -> None:
    root = scratch_root(tmp_path, UNIT.read_text())
    done = analyze("verify", "--root=%s" % root, "waystation.service")
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The clean result above means something: a misspelt key is reported."""
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict")
    done = analyze("verify", "--root=%s" % scratch_root(tmp_path, broken), "waystation.service")
    assert "Unknown key 'ProtectSystm'" in done.stderr


def test_unit_is_hardened(tmp_path: Path) -> None:
    root = scratch_root(tmp_path, UNIT.read_text())
    done = analyze("security", "--offline=yes", "--root=%s" % root, "waystation.service")
    assert done.returncode == 0, done.stderr
    match = re.search(r"Overall exposure level for waystation\.service: (\d+\.\d+)", done.stdout)
    assert match, done.stdout
    assert float(match.group(1)) <= MAX_EXPOSURE, done.stdout


def test_unit_has_what_the_operator_relies_on() -> None:
    unit = directives(UNIT.read_text())
    assert unit["Type"] == ["notify"]
    assert unit["Restart"] == ["on-failure"]
    assert int(unit["WatchdogSec"][0]) >= 20  # the daemon pings every 10 s at most
    assert unit["DynamicUser"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    [state] = unit["StateDirectory"]
    [exec_start] = unit["ExecStart"]
    argv = exec_start.split()
    assert argv[:2] == [PROGRAM, "run"]
    assert argv[argv.index("--data") + 1] == "/var/lib/" + state
    [config_dir] = unit["ConfigurationDirectory"]
    assert argv[argv.index("--config") + 1] == "/etc/%s/waystation.toml" % config_dir


@pytest.mark.parametrize("family", ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"])
def test_unit_allows_the_sockets_the_relay_uses(family: str) -> None:
    assert family in directives(UNIT.read_text())["RestrictAddressFamilies"][0].split()
