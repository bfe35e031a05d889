"""The web app in a real browser over Web Bluetooth, end to end (issue 15, docs/web.md).

Debian's headless Chromium (puppeteer-core, web/tests/browser_peer.mjs) runs the built app with
Web Bluetooth enabled; BlueZoo (with its Chromium fixes, tests/radio/bluezoo_run.py --browser) is
the BlueZ it talks to; the relay is a real `waystation run` whose GATT server is on hci1 (Chromium
takes hci0 by itself). A desktop member (`waystation peer`) reaches the same relay over TCP.
The page creates an account, joins the desktop member's group from its invitation, pairs with the
relay on the code its console gives (`waystation pair`; a wrong code first, refused), syncs over
Bluetooth (the device chooser answered as a person would) as the paired device, recognised by
the relay's token, in packets cut for the MTU the relay's INFO says, reads the desktop member's
message, replies, syncs again; the desktop member reads the reply.

WAYSTATION_WEB_SCREENSHOTS=DIR saves the page's screens there (docs/web/ holds the committed ones).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app.control import request
from tests.integration.procs import Member, Relay
from tests.radio.bus import PrivateBluez
from tests.web_helpers import WebPeer

REGISTERED = re.compile(r"BLE GATT service registered on hci1")
CHROMIUM = os.environ.get("WAYSTATION_CHROMIUM", "/usr/bin/chromium")
BROWSER_DEADLINE_S = 180.0

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="no chromium")


@pytest.fixture
def browser_bluez(tmp_path: Path) -> Iterator[PrivateBluez]:
    env = PrivateBluez(tmp_path, adapters=2, browser=True).start()
    try:
        yield env
    finally:
        env.stop()


def _bodies(messages: list[dict[str, str]]) -> list[str]:
    return [m["body"] for m in messages]


def test_browser_joins_syncs_over_web_bluetooth_reads_and_replies(
    browser_bluez: PrivateBluez, tmp_path: Path
) -> None:
    shots = os.environ.get("WAYSTATION_WEB_SCREENSHOTS")
    config = tmp_path / "waystation.toml"
    config.write_text(
        '[radio.ble]\nenabled = true\nadapter = "hci1"\n[store]\ncommit_interval_ms = 0\n'
    )
    with (
        Relay(tmp_path / "relay", config=config) as relay,
        WebPeer(tmp_path, "browser_peer.mjs", BROWSER_DEADLINE_S) as page,
    ):
        relay.wait_for_line(REGISTERED, 20)
        alice = Member(tmp_path / "alice", "Alice")
        alice.init()
        group = alice.create_group("allotment")
        alice.sync(relay.address)

        page.call("init", name="Bea")
        assert page.call("join", invitation=alice.invite(group)) == group
        window = request(relay.data_dir, "pair.open", {})
        code, fingerprint = str(window["code"]), str(window["fingerprint"])
        wrong = "%08d" % ((int(code.replace("-", "")) + 1) % 10**8)
        refused = page.call("pair", code=wrong, fingerprint=fingerprint, name="Bea's phone")
        assert not refused["ok"] and "wrong code" in refused["text"], refused
        paired = page.call("pair", code=code, fingerprint=fingerprint, name="Bea's phone")
        assert paired["ok"] and fingerprint in paired["text"], paired
        first = page.call("sync", choose=False)  # Bea announces herself, as the paired phone
        assert first["ok"], first
        # the relay was recognised by its token (the discovery key it gave at pairing), and the
        # page cut its packets for the MTU the relay saw on the read (BlueZoo: max_mtu, 517)
        assert first["relay"] == fingerprint and "your relay" in first["text"], first
        assert first["mtu"] == 517, first
        devices = request(relay.data_dir, "devices.list", {})["devices"]
        assert isinstance(devices, list) and [d["name"] for d in devices] == ["Bea's phone"]
        assert devices[0]["logs"] >= 1, devices  # the relay knew the page by its paired key
        alice.sync(relay.address)  # Alice meets Bea and sends her chain key
        alice.send(group, "beans at six")
        alice.sync(relay.address)

        second = page.call("sync", choose=True)  # chosen again, as after a reload
        assert second["ok"] and second["relay"] == fingerprint, second
        read = page.call("read", group=group)
        assert "beans at six" in _bodies(read), read
        assert [m["author"] for m in read if m["body"] == "beans at six"] == ["Alice"]
        page.call("send", group=group, text="on my way ✓")
        if shots:
            page.call("screenshot", path=str(Path(shots).resolve() / "web-messages.png"))
        third = page.call("sync", choose=False)
        assert third["ok"], third
        if shots:
            page.call("screenshot", path=str(Path(shots).resolve() / "web-synced.png"))

        alice.sync(relay.address)
        mine = alice.read(group)
        assert "on my way ✓" in _bodies(mine), mine
        assert [m["author"] for m in mine if m["body"] == "on my way ✓"] == ["Bea"]
    assert re.search(r"ble:hci1/dev_\w+#\d+ closed: ok", relay.log), relay.log
