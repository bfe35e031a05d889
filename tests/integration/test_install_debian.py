"""The install of docs/operations.md, run verbatim in a fresh Debian bookworm root.

`make dist` builds the wheel, the unit and the example configuration; mmdebstrap makes a minimal
Debian root (with systemd and ca-certificates, as on a Raspberry Pi OS Lite machine); the shell
block of "Install as a service" runs in it as root with chroot. Then, in that root: the installed
program answers `--version`, `systemd-analyze verify` passes on the installed unit (with the real
program at its ExecStart path), the unit is enabled, and a relay started with the unit's own
--config and --data answers `waystation status` and stops cleanly on SIGTERM.

Needs root, mmdebstrap and chroot (tools/debian-packages.txt) and the network to Debian's archive
and PyPI. It takes one to three minutes. Where it cannot run it is skipped, except under CI
(CI=true), where it fails: CI must run it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs" / "operations.md"
MARKER = "<!-- tests/integration/test_install_debian.py runs this block verbatim"
MIRROR = "http://deb.debian.org/debian"
DEADLINE_S = 60.0
LISTENING = re.compile(r'msg="relay (\S+) listening on 127\.0\.0\.1:(\d+)')

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def install_block() -> str:
    """The shell block that follows the marker in docs/operations.md."""
    text = DOCS.read_text()
    after = text[text.index(MARKER) :]
    match = re.search(r"```sh\n(.*?)```", after, re.S)
    assert match, "no ```sh block after the marker in docs/operations.md"
    return match.group(1)


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (mmdebstrap --mode=root, chroot)"
    for tool in ("mmdebstrap", "chroot", "make"):
        if shutil.which(tool) is None:
            return "%s is not installed (tools/debian-packages.txt)" % tool
    return None


def child_env() -> dict[str, str]:
    """A clean environment for the chroot, keeping only how this machine reaches the network."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        # pip's own CA bundle lacks what the system trusts; use the system's (copied in below).
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
    }
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def in_root(
    root: Path, *argv: str, timeout: float = DEADLINE_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(root), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    why = unavailable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail("the install test must run under CI: " + why)
        pytest.skip(why)
    base = tmp_path_factory.mktemp("operator-debian")
    root = base / "root"
    try:
        built = subprocess.run(
            ["mmdebstrap", "--mode=root", "--variant=minbase",
             "--include=systemd,ca-certificates", "bookworm", str(root), MIRROR],
            capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert built.returncode == 0, "mmdebstrap failed:\n" + built.stderr[-3000:]
        # The machine's name service and trusted CAs (it may reach Debian and PyPI through a
        # TLS-inspecting proxy that only the host trusts); nothing else of the host goes in.
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        certificates = "etc/ssl/certs/ca-certificates.crt"
        shutil.copy("/" + certificates, root / certificates)
        yield root
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_install_from_the_docs_in_a_fresh_debian_root(debian_root: Path) -> None:
    dist = debian_root / "root" / "dist"
    made = subprocess.run(
        ["make", "-s", "dist", "DIST=%s" % dist], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert sorted(p.name for p in dist.iterdir() if not p.name.endswith(".whl")) == [
        "waystation.service",
        "waystation.toml",
    ]

    add_systemctl_stand_in(debian_root)
    script = "cd /root/dist\n" + install_block()
    installed = in_root(debian_root, "/bin/sh", "-e", "-x", "-c", script, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    calls = (debian_root / SYSTEMCTL_CALLS.lstrip("/")).read_text().splitlines()
    assert calls == ["daemon-reload", "enable --now waystation"]

    version = in_root(debian_root, "waystation", "--version")
    assert version.returncode == 0 and re.fullmatch(r"waystation \d+\.\d+\.\d+\n", version.stdout)

    verified = in_root(debian_root, "systemd-analyze", "verify", "waystation.service")
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    wants = debian_root / "etc/systemd/system/multi-user.target.wants/waystation.service"
    assert wants.is_symlink()

    fingerprint, report = run_relay_like_the_unit(debian_root)
    assert report["fingerprint"] == fingerprint
    assert report["data_dir"] == "/var/lib/waystation"
    identity = in_root(debian_root, "waystation", "identity", "--data", "/var/lib/waystation")
    assert identity.stdout.splitlines()[0] == "node " + fingerprint


SYSTEMCTL_CALLS = "/root/systemctl-calls"


def add_systemctl_stand_in(root: Path) -> None:
    """No systemd runs as PID 1 in a chroot: systemctl there can enable a unit (offline) but not
    start one. A stand-in ahead of it on PATH records each call and runs the real systemctl
    offline without `--now`; the test then starts the relay exactly as the unit's ExecStart= says.
    """
    shim = root / "usr/local/sbin/systemctl"
    shim.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> %s\n'
        'for a; do shift; [ "$a" = --now ] || set -- "$@" "$a"; done\n'
        'SYSTEMD_OFFLINE=1 exec /usr/bin/systemctl "$@"\n' % SYSTEMCTL_CALLS
    )
    shim.chmod(0o755)


def run_relay_like_the_unit(root: Path) -> tuple[str, dict[str, object]]:
    """Start the relay with the unit's --config and --data (zeroconf off, a kernel-chosen port
    on loopback: the machine is shared), ask its status, stop it. Returns (fingerprint, report).
    """
    unit = (root / "etc/systemd/system/waystation.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    assert exec_start
    argv = exec_start.group(1).split()
    argv += ["--listen", "127.0.0.1:0", "--no-zeroconf"]
    relay = subprocess.Popen(
        ["chroot", str(root), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert relay.stderr is not None
        for line in relay.stderr:
            lines.append(line)
            if LISTENING.search(line):
                started.set()
        started.set()  # EOF: wake the waiter, which then sees no listening line

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(DEADLINE_S), "relay did not start within %.0f s" % DEADLINE_S
        match = next((m for m in map(LISTENING.search, lines) if m), None)
        assert match, "relay exited: %s" % "".join(lines)
        status = in_root(root, "waystation", "status", "--json")  # finds the service's directory
        assert status.returncode == 0, status.stderr
        report: dict[str, object] = json.loads(status.stdout)
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(DEADLINE_S) == 0, "".join(lines)
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
        reader.join(DEADLINE_S)
        assert relay.stderr is not None
        relay.stderr.close()
    stopped = time.time()
    final = json.loads((root / "var/lib/waystation/status.json").read_text())
    assert final["pid"] == report["pid"] and final["time"] <= stopped
    return match.group(1), report
