"""Pairing phones with a relay, end to end: real `waystation run` and `waystation peer` processes.

The relay runs with community_mode = false, so it carries only the logs of paired devices (and
entries for logs it already carries): a paired phone's logs are held (pinned) for it and
delivered when it returns. Codes come from the relay's control socket (`pair.open`), as the
console shows them. Expiry and revocation of a live session are tested in process with a clock
(tests/test_pairing_link.py); every state x input of the exchange in
tests/property/test_pairing_states.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.app.control import CommandError, request
from tests.integration.procs import (
    WAYSTATION,
    Member,
    Relay,
    child_env,
    link_fingerprint,
    wait_until,
)

DEADLINE_S = 30.0
PAIRED = re.compile(r"paired with relay ([0-9a-f-]{39}) at ")


def members_only(tmp_path: Path) -> Path:
    config = tmp_path / "paired-only.toml"
    config.write_text("[relay]\ncommunity_mode = false\n")
    return config


def open_window(relay: Relay) -> dict[str, Any]:
    result = request(relay.data_dir, "pair.open", {})
    assert isinstance(result, dict)
    return result


def pair(member: Member, relay: Relay, code: str, *extra: str) -> Any:
    return member.run("pair", "--code", code, "--relay", relay.address, *extra, check=False)


def wrong(code: str) -> str:
    return "%08d" % ((int(code.replace("-", "")) + 1) % 10**8)


def test_pairing_wrong_codes_and_pins(tmp_path: Path) -> None:
    with Relay(tmp_path / "relay", config=members_only(tmp_path)) as relay:
        alice = Member(tmp_path / "alice", "alice")
        alice.init()
        window = open_window(relay)
        assert re.fullmatch(r"\d{4}-\d{4}", window["code"])
        # One fingerprint everywhere: the window's (and QR code's), the start-up log line, status,
        # `waystation identity`, the one relay.trusted lists.
        fingerprint = window["fingerprint"]
        assert fingerprint == link_fingerprint(relay.data_dir)
        assert "relay %s listening on" % fingerprint in relay.log
        assert request(relay.data_dir, "status", {})["fingerprint"] == fingerprint
        identity = subprocess.run(
            [WAYSTATION, "identity", "--data", str(relay.data_dir)],
            capture_output=True, text=True, timeout=DEADLINE_S, env=child_env(tmp_path),
        )  # fmt: skip
        assert identity.stdout.splitlines()[0] == "node " + fingerprint
        assert window["qr_payload"] == "waystation-pair:%s:%s" % (
            window["fingerprint"],
            window["code"],
        )
        assert "▀" in window["qr_text"] or "▄" in window["qr_text"]  # drawn for a terminal

        # Three wrong codes close the window; then even the right code is refused.
        for left in (2, 1, 0):
            done = pair(alice, relay, wrong(window["code"]))
            assert done.returncode == 3 and "wrong code" in done.stderr, done.stderr
            status = request(relay.data_dir, "pair.status", {})
            assert isinstance(status, dict) and status["attempts_left"] == left
        assert status["open"] is False and status["closed"] == "attempts"
        done = pair(alice, relay, window["code"])
        assert done.returncode == 3 and "no pairing window" in done.stderr

        # A new window, the right code, the fingerprint from the QR code.
        window = open_window(relay)
        done = pair(alice, relay, window["code"], "--fingerprint", window["fingerprint"])
        assert done.returncode == 0, done.stderr
        assert PAIRED.search(done.stdout).group(1) == window["fingerprint"]  # type: ignore[union-attr]
        devices = request(relay.data_dir, "devices.list", {})
        assert isinstance(devices, dict)
        [device] = devices["devices"]
        assert device["name"] == "member" and device["kind"] == "device"

        # --pin with another fingerprint than the one pairing recorded: refused, clearly.
        other = "0000-0000-0000-0000-0000-0000-0000-0000"
        done = alice.run("sync", "--relay", relay.address, "--pin", other, check=False)
        assert done.returncode == 1 and "is pinned to %s already" % window["fingerprint"] in (
            done.stderr
        )
        port = relay.port
        relay.terminate()

    # Another relay (another key) at the same address: the pinned member refuses it.
    with Relay(tmp_path / "impostor", listen="127.0.0.1:%d" % port) as impostor:
        done = alice.run("sync", "--relay", impostor.address, "--timeout", "10", check=False)
        assert done.returncode == 3
        assert "is not the pinned %s" % window["fingerprint"] in done.stderr, done.stderr

    # An unpaired member pins by --pin: the right fingerprint syncs, a wrong one is refused.
    with Relay(tmp_path / "relay", config=members_only(tmp_path)) as relay:
        carol = Member(tmp_path / "carol", "carol")
        carol.init()
        done = carol.run("sync", "--relay", relay.address, "--pin", other, check=False)
        assert done.returncode == 3 and "is not the pinned %s" % other in done.stderr
        carol2 = Member(tmp_path / "carol2", "carol2")
        carol2.init()
        assert "synced" in carol2.run(
            "sync", "--relay", relay.address, "--pin", window["fingerprint"]
        ).stdout


def test_paired_phone_logs_are_held_and_delivered_when_it_returns(tmp_path: Path) -> None:
    with Relay(tmp_path / "relay", config=members_only(tmp_path)) as relay:
        alice, bob, dave = (Member(tmp_path / n, n) for n in ("alice", "bob", "dave"))
        for member in (alice, bob, dave):
            member.init()
        assert pair(alice, relay, open_window(relay)["code"]).returncode == 0
        group = alice.create_group("held for alice")
        alice.sync(relay.address)
        devices = request(relay.data_dir, "devices.list", {})
        assert isinstance(devices, dict) and devices["devices"][0]["logs"] == 2

        # An unpaired member's own group is not carried (community_mode = false) ...
        lonely = dave.create_group("not carried")
        dave.send(lonely, "nobody keeps this")
        dave.sync(relay.address)
        status = subprocess.run(
            [WAYSTATION, "status", "--data", str(relay.data_dir), "--json"],
            capture_output=True, text=True, timeout=DEADLINE_S, env=child_env(tmp_path),
        )  # fmt: skip
        assert status.returncode == 0 and '"logs": 2' in status.stdout

        # ... while a second device pairs as the first one syncs, and bob writes to alice's group.
        window = open_window(relay)
        alice.send(group, "alice syncs while bob pairs")
        syncing = subprocess.Popen(
            [WAYSTATION, "peer", "sync", "--data", str(alice.data_dir), "--relay", relay.address],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(tmp_path),
        )  # fmt: skip
        paired = pair(bob, relay, window["code"], "--name", "bob's phone")
        out, err = syncing.communicate(timeout=DEADLINE_S)
        assert syncing.returncode == 0 and "synced" in out, err
        assert paired.returncode == 0, paired.stderr
        names = request(relay.data_dir, "devices.list", {})
        assert isinstance(names, dict)
        assert sorted(d["name"] for d in names["devices"]) == ["bob's phone", "member"]

        assert bob.join(alice.invite(group)) == group
        bob.sync(relay.address)
        bob.send(group, "held until alice returns")
        bob.sync(relay.address)
        alice.sync(relay.address)  # alice returns
        bodies = [m["body"] for m in alice.read(group)]
        assert "held until alice returns" in bodies

        revoked = request(relay.data_dir, "devices.revoke", {"device": "bob's phone"})
        assert revoked == {"revoked": "bob's phone", "logs_unpinned": 0, "links_closed": 0}
        left = request(relay.data_dir, "devices.list", {})
        assert isinstance(left, dict) and [d["name"] for d in left["devices"]] == ["member"]


def relay_logs(relay: Relay) -> int:
    report = request(relay.data_dir, "status", {})
    assert isinstance(report, dict)
    return int(report["logs"])


def test_two_relays_pair_by_code_and_then_sync_as_relays(tmp_path: Path) -> None:
    fast = tmp_path / "fast.toml"
    fast.write_text("[lan]\nsync_interval_s = 1\n")
    with (
        Relay(tmp_path / "r1") as r1,
        Relay(tmp_path / "r2", peers=[r1.address], config=fast) as r2,
    ):
        alice = Member(tmp_path / "alice", "alice")
        alice.init()
        alice.send(alice.create_group("crosses two relays"), "hello")
        alice.sync(r1.address)
        # Before pairing, r2's syncs with r1 get no list of r1's logs: r2 only claims the role.
        r2.wait_for_line(re.compile(r"tcp:%s closed: ok" % re.escape(r1.address)), DEADLINE_S)
        assert relay_logs(r2) == 0

        with pytest.raises(CommandError, match="code"):
            request(r2.data_dir, "pair.join", {"relay": r1.address, "code": "12"})
        window = open_window(r1)
        started = request(r2.data_dir, "pair.join", {"relay": r1.address, "code": window["code"]})
        assert started == {"relay": r1.address, "state": "running"}
        r2.wait_for_line(re.compile(r"paired with relay %s" % re.escape(r1.address)), DEADLINE_S)
        status = request(r2.data_dir, "pair.status", {})
        assert isinstance(status, dict)
        assert status["join"] == {
            "relay": r1.address,
            "state": "paired",
            "fingerprint": window["fingerprint"],
        }
        for relay in (r1, r2):
            devices = request(relay.data_dir, "devices.list", {})
            assert isinstance(devices, dict)
            assert [d["kind"] for d in devices["devices"]] == ["relay"]
        wait_until(lambda: relay_logs(r2) == 2, DEADLINE_S, "r1's logs reach r2 once paired")


def admin(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`waystation pair …` / `waystation devices …` against the relay of `data_dir`."""
    return subprocess.run(
        [WAYSTATION, *args, "--data", str(data_dir)],
        capture_output=True, text=True, timeout=DEADLINE_S, env=child_env(data_dir.parent),
    )  # fmt: skip


def test_pair_and_devices_commands_over_the_control_socket(tmp_path: Path) -> None:
    nobody = admin(tmp_path / "no-relay", "pair")
    assert nobody.returncode == 3 and "no waystation daemon is running" in nobody.stderr
    with Relay(tmp_path / "relay", config=members_only(tmp_path)) as relay:
        opened = admin(relay.data_dir, "pair", "--seconds", "90")
        assert opened.returncode == 0, opened.stderr
        assert opened.stdout.startswith("pairing window open for 90 s, 3 attempts\n")
        code = re.search(r"^code +(\d{4}-\d{4})$", opened.stdout, re.M)
        shown = re.search(r"^fingerprint +([0-9a-f-]{39})$", opened.stdout, re.M)
        assert code and shown and shown.group(1) == link_fingerprint(relay.data_dir)
        assert "▀" in opened.stdout or "▄" in opened.stdout  # the QR code, in the terminal
        status = json.loads(admin(relay.data_dir, "pair", "status", "--json").stdout)
        assert status["open"] is True and status["attempts_left"] == 3

        alice = Member(tmp_path / "alice", "alice")
        alice.init()
        paired = pair(alice, relay, code.group(1), "--fingerprint", shown.group(1))
        assert paired.returncode == 0, paired.stderr
        assert admin(relay.data_dir, "pair", "status").stdout.startswith(
            "no pairing window open (paired)\n"
        )
        listing = admin(relay.data_dir, "devices")
        assert listing.returncode == 0 and listing.stdout.startswith("NAME ")
        [row] = json.loads(admin(relay.data_dir, "devices", "list", "--json").stdout)["devices"]
        assert row["name"] == "member" and row["kind"] == "device"
        assert row["fingerprint"] in listing.stdout

        renamed = admin(relay.data_dir, "devices", "rename", row["fingerprint"][:9], "Ana")
        assert renamed.returncode == 0 and renamed.stdout.startswith("Ana "), renamed.stderr
        quota = admin(relay.data_dir, "devices", "set-quota", "Ana", "2M", "--json")
        assert quota.returncode == 0 and json.loads(quota.stdout)["quota"] == 2 << 20
        unsized = admin(relay.data_dir, "devices", "set-quota", "Ana", "lots")
        assert unsized.returncode == 2 and "is not a size" in unsized.stderr
        unknown = admin(relay.data_dir, "devices", "revoke", "Bob")
        assert unknown.returncode == 1 and "'Bob': no such device" in unknown.stderr
        revoked = admin(relay.data_dir, "devices", "revoke", "Ana")
        assert revoked.stdout == "revoked Ana: 0 log(s) unpinned, 0 link(s) closed\n"
        assert admin(relay.data_dir, "devices").stdout == "no paired devices or relays\n"
