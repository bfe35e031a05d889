"""The web app syncing N messages over Web Bluetooth, beside the desktop member doing the same.

Usage:
    python bench/web_sync.py [--messages 1000]

One run, all real parts, as tests/radio/test_web_ble.py: a private dbus-daemon and BlueZoo (with
its Chromium fixes) with three adapters; a `waystation run` relay whose GATT server is on hci1;
Debian's headless Chromium (hci0) running the built app (web/tests/browser_peer.mjs). Alice
(built in this process) writes N messages in a group and syncs them to the relay over TCP, after
the two readers joined her group and synced once (so she gave them her chain key, and only the N
are new); then each reader syncs and opens (decrypts) the N:

    web     the page's "Sync again" over Web Bluetooth: wall time from the click to the outcome
            shown (Pyodide: Noise, reconciliation, SQLite, processing the N messages), then the
            page's JS heap (CDP Performance.getMetrics, JSHeapUsedSize) and Pyodide's wasm
            memory; `mtu` is what the page cut its packets for (INFO, docs/ble.md §1.1)
    native  the reference, measured in the same run: `waystation peer sync --ble --adapter hci2`
            (CPython + PyNaCl, bleak), wall time of the process (interpreter start and a BLE
            scan included) and its peak RSS (GNU time's %M)

BlueZoo carries packets over D-Bus with no radio timing, so both figures are CPU cost on this
machine, not air time (docs/ble.md §6 for hardware). One JSON line per side.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.app.peer_cli import open_member  # noqa: E402
from node.app.peer_session import PeerSession  # noqa: E402
from tests.integration.procs import WAYSTATION, Member, Relay, child_env  # noqa: E402
from tests.radio.bus import PrivateBluez  # noqa: E402
from tests.web_helpers import WebPeer  # noqa: E402

REGISTERED = re.compile(r"BLE GATT service registered on hci1")
DEADLINE_S = 600.0


def native_sync(data: Path) -> tuple[float, float, str]:
    """`waystation peer sync --ble` on hci2: wall seconds, peak RSS (MB, GNU time), what it said."""
    argv = ["/usr/bin/time", "-f", "%M", WAYSTATION, "peer", "sync", "--data", str(data),
            "--ble", "--adapter", "hci2", "--timeout", str(DEADLINE_S)]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(
        argv, capture_output=True, text=True, env=child_env(data.parent), timeout=DEADLINE_S
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit("peer sync failed: %s %s" % (done.stdout, done.stderr))
    rss_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    return seconds, rss_mb, done.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    n = parser.parse_args().messages
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bluez = PrivateBluez(tmp, adapters=3, browser=True).start()
        config = tmp / "waystation.toml"
        config.write_text(
            '[radio.ble]\nenabled = true\nadapter = "hci1"\n[store]\ncommit_interval_ms = 0\n'
        )
        try:
            with (
                Relay(tmp / "relay", config=config) as relay,
                WebPeer(tmp, "browser_peer.mjs", DEADLINE_S) as page,
            ):
                relay.wait_for_line(REGISTERED, 20)
                alice_dir, bob_dir = tmp / "alice", tmp / "bob"
                PeerSession(alice_dir, create_name="Alice").close()
                PeerSession(bob_dir, create_name="Bob").close()
                with open_member(alice_dir) as alice:
                    group = alice.client.create_group("bench", time.time())
                    invitation = alice.client.invitation(group)
                Member(alice_dir, "Alice").sync(relay.address)
                bob = Member(bob_dir, "Bob")
                bob.join(invitation)
                native_sync(bob_dir)  # before the N: only they are new in the timed sync
                page.call("init", name="Bea")
                page.call("join", invitation=invitation)
                warm = page.call("sync", choose=True)
                assert warm["ok"], warm
                Member(alice_dir, "Alice").sync(relay.address)  # meets Bob and Bea: chain keys
                built = time.perf_counter()
                with open_member(alice_dir) as alice:
                    for i in range(n):
                        alice.client.send(group, "message %d of the bench" % i, time.time())
                built = time.perf_counter() - built
                Member(alice_dir, "Alice").sync(relay.address)

                start = time.perf_counter()
                synced = page.call("sync", choose=False)
                web_s = time.perf_counter() - start
                assert synced["ok"], synced
                metrics = page.call("metrics")
                native_s, native_mb, native_said = native_sync(bob_dir)
        finally:
            bluez.stop()
    common = {"case": "web-sync", "messages": n, "alice_build_s": round(built, 1)}
    print(json.dumps(common | {
        "side": "web (Pyodide in headless Chromium, Web Bluetooth)", "sync_s": round(web_s, 2),
        "received": synced["text"], "mtu": synced["mtu"], **metrics,
    }))  # fmt: skip
    print(json.dumps(common | {
        "side": "native (waystation peer sync --ble, CPython)", "sync_s": round(native_s, 2),
        "received": native_said, "rss_mb": round(native_mb, 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
