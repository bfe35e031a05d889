"""Pairing a phone over BLE (issue 12 §2): a real `waystation run` with [radio.ble] on hci0 and
`waystation peer pair --ble` / `peer sync --ble` as the phone on hci1, over BlueZoo.

The relay carries only paired devices' logs (community_mode = false), so the paired phone's
logs being carried, pinned, shows that the relay knew the phone by the key it paired over BLE.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from node.app.control import request
from tests.integration.procs import Member, Relay
from tests.radio.bus import PrivateBluez

REGISTERED = re.compile(r"BLE GATT service registered on hci0")
DEADLINE = "30"


def test_a_phone_pairs_over_ble_and_its_logs_are_then_carried_for_it(
    bluez: PrivateBluez, tmp_path: Path
) -> None:
    config = tmp_path / "waystation.toml"
    config.write_text(
        '[radio.ble]\nenabled = true\nadapter = "hci0"\n[store]\ncommit_interval_ms = 0\n'
        "[relay]\ncommunity_mode = false\n"
    )
    with Relay(tmp_path / "relay", config=config) as relay:
        relay.wait_for_line(REGISTERED, 20)
        phone = Member(tmp_path / "phone", "phone")
        phone.init()
        window = request(relay.data_dir, "pair.open", {})

        def pair(code: str) -> tuple[int, str, str]:
            done = phone.run(
                "pair", "--ble", "--adapter", "hci1", "--code", code, "--name", "Ana's phone",
                "--fingerprint", str(window["fingerprint"]), "--timeout", DEADLINE, check=False,
            )  # fmt: skip
            return done.returncode, done.stdout, done.stderr

        wrong = "%08d" % ((int(str(window["code"]).replace("-", "")) + 1) % 10**8)
        status, _, err = pair(wrong)
        assert status == 3 and "wrong code" in err, err
        status, out, err = pair(str(window["code"]))
        assert status == 0, err
        assert out == "paired with relay %s at a relay over BLE\n" % window["fingerprint"]
        pins = json.loads((phone.data_dir / "relays.json").read_text())
        assert pins["ble:any"]["fingerprint"] == window["fingerprint"]
        assert len(bytes.fromhex(pins["ble:any"]["discovery_key"])) == 32  # given in RESULT

        group = phone.create_group("held for Ana")
        phone.send(group, "kept by the relay")
        synced = phone.run("sync", "--ble", "--adapter", "hci1", "--timeout", DEADLINE)
        # "your relay": the central dialled only a relay whose advertised token the paired
        # relay's discovery key gives (node.app.pair_client.RelayPin.knows_token)
        assert "synced with your relay over BLE" in synced.stdout, synced
        devices = request(relay.data_dir, "devices.list", {})["devices"]
        assert isinstance(devices, list) and len(devices) == 1
        assert devices[0]["name"] == "Ana's phone" and devices[0]["logs"] == 2
        assert request(relay.data_dir, "status", {})["logs"] == 2
