"""Real processes over BlueZoo: `waystation run` with [radio.ble] on hci0, and two desktop
members acting as phones with `waystation peer sync --ble` on hci1 and hci2."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.procs import Member, Relay
from tests.radio.bus import PrivateBluez

REGISTERED = re.compile(r"BLE GATT service registered on hci0")


def test_two_members_exchange_a_message_through_the_relay_over_ble(
    bluez: PrivateBluez, tmp_path: Path
) -> None:
    config = tmp_path / "waystation.toml"
    config.write_text(
        '[radio.ble]\nenabled = true\nadapter = "hci0"\n[store]\ncommit_interval_ms = 0\n'
    )
    with Relay(tmp_path / "relay", config=config) as relay:
        relay.wait_for_line(REGISTERED, 20)
        alice, bob = Member(tmp_path / "alice", "Alice"), Member(tmp_path / "bob", "Bob")
        alice.init()
        bob.init()
        group = alice.create_group("friends")
        bob.join(alice.invite(group))

        def sync(member: Member, adapter: str) -> str:
            done = member.run("sync", "--ble", "--adapter", adapter, "--timeout", "30")
            return str(done.stdout)

        assert "synced with a relay over BLE" in sync(bob, "hci2")  # bob announces himself
        sync(alice, "hci1")  # alice meets bob and sends him her chain key
        alice.send(group, "hello over the air")
        sync(alice, "hci1")
        sync(bob, "hci2")
        texts = [message["body"] for message in bob.read(group)]
        assert "hello over the air" in texts, texts
        assert re.search(r"ble:hci0/dev_\w+#\d+ closed: ok", relay.log)
