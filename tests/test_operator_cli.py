"""`waystation identity` and `waystation status` argument handling, as real child processes."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

WAYSTATION = str(Path(sys.executable).with_name("waystation"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WAYSTATION, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_identity_never_creates_a_key_unless_asked(tmp_path: Path) -> None:
    data = tmp_path / "relay"
    missing = run("identity", "--data", str(data))
    assert missing.returncode == 3
    assert missing.stdout == ""
    assert missing.stderr == (
        "waystation: no node key in %s (the relay creates one on its first start; "
        "`waystation identity --create` makes one now)\n" % data
    )
    assert not data.exists()

    created = run("identity", "--data", str(data), "--create")
    assert created.returncode == 0, created.stderr
    fingerprint = created.stdout.splitlines()[0]
    assert fingerprint.startswith("node ") and len(fingerprint.split()[1]) == 39
    assert created.stdout.splitlines()[1] == "data %s" % data
    key = data / "node.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32

    again = run("identity", "--data", str(data))
    assert again.returncode == 0 and again.stdout.splitlines()[0] == fingerprint

    # The one fingerprint is of the link key, the Noise static key peers see in the handshake.
    from node.crypto._nacl import NaclSuite
    from node.proto.pairing import key_fingerprint

    suite = NaclSuite()
    _, secret = suite.ed25519_keypair(key.read_bytes())
    link_key = suite.x25519_public(suite.ed25519_sk_to_x25519(secret))
    assert fingerprint == "node " + key_fingerprint(suite, link_key)


def test_identity_names_a_damaged_key(tmp_path: Path) -> None:
    (tmp_path / "node.key").write_bytes(b"short")
    damaged = run("identity", "--data", str(tmp_path))
    assert damaged.returncode == 2
    assert damaged.stderr == (
        "waystation: node key %s is 5 bytes, expected a 32-byte seed\n" % (tmp_path / "node.key")
    )


def test_status_refuses_a_bad_timeout_by_its_flag_name(tmp_path: Path) -> None:
    for bad, why in (("-1", "must be in (0, 3600] seconds, got -1"), ("soon", "'soon' is not a")):
        done = run("status", "--data", str(tmp_path), "--timeout", bad)
        assert done.returncode == 2
        assert "argument --timeout: " + why in done.stderr
