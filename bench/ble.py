"""BLE benchmark: fragmentation efficiency per MTU, and D-Bus messages per data packet.

Usage: python bench/ble.py [--quick]

Part 1, `"case": "fragmentation"`, one line per ATT MTU (23, 185, 247, 517): frames go through
BleLink (the link tag, node.proto.fragment's one-byte header) and the bytes of every packet are
counted. `packet_efficiency` is frame bytes / packet bytes for frames of the link's frame_hint
(the session's normal frame); `att_payload_efficiency` frame bytes / (packets x ATT payload),
which differs at MTU 517, where packets stop at profile.MAX_PACKET (510 < 514);
`small_frame_efficiency` the first for 100-byte frames (acks); `issue_goal` is issue 11's bar
(>= 0.97 of each ATT payload at MTU >= 185, judged on att_payload_efficiency).
Beside them, computed by the same packet arithmetic, the fragment headers of two BLE systems we
measure ourselves against (peers.md section 4.2 and 7.1): ble-reticulum (a 5-byte header per
fragment: mtu - 3 - 5 frame bytes per packet) and bitchat (fixed 469 frame bytes per fragment,
sized for MTU 512; given at MTU 517 only, as bitchat does not size fragments from the MTU).

Part 2, `"case": "dbus_per_packet"`: the real peripheral (dbus-fast) and a bleak central on
BlueZoo (a private dbus-daemon, tests/radio/bus.py), after the session-like warm-up, exchange
FRAMES frames each way; the relay's D-Bus messages (received: WriteValue calls and signals; sent:
PropertiesChanged notifications and the flush pings) are counted per data packet, with AcquireWrite/
AcquireNotify offered ("acquire") and not ("dbus"). Goal (issue 11): 0 with Acquire*.
BlueZoo has no radio: its times say nothing about BLE throughput (docs/ble.md gives the procedure
for a Pi and a phone).
"""

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from node.link import LinkQueue, PeerAddress
from node.radio.central import BleCentral
from node.radio.link import BleLink
from node.radio.peripheral import BlePeripheral
from node.radio.profile import ATT_HEADER, MAX_PACKET, frame_hint
from tests.radio.bus import PrivateBluez

MTUS = (23, 185, 247, 517)
MAX_FRAME = 1 << 18


def fragmentation(mtu: int) -> dict[str, object]:
    sent: list[bytes] = []

    async def send(packets: list[bytes]) -> None:
        sent.extend(packets)

    async def measure(size: int, count: int) -> float:
        sent.clear()
        link = BleLink("bench", 1, mtu, MAX_FRAME, send)
        await link.send([b"\x5a" * size] * count)
        return size * count / sum(len(p) for p in sent)

    hint = frame_hint(mtu, MAX_FRAME)
    normal = asyncio.run(measure(hint, 50))
    packets = len(sent)
    payload = mtu - ATT_HEADER
    # Of the whole ATT payload of each packet (packets stop at MAX_PACKET, under 514 at MTU 517)
    of_payload = hint * 50 / (packets * payload)
    small = asyncio.run(measure(100, 50))
    reticulum = (payload - 5) / payload
    row: dict[str, object] = {
        "case": "fragmentation",
        "mtu": mtu,
        "att_payload": payload,
        "max_packet": min(payload, MAX_PACKET),
        "frame_bytes": hint,
        "packet_efficiency": round(normal, 4),
        "att_payload_efficiency": round(of_payload, 4),
        "small_frame_efficiency": round(small, 4),
        "issue_goal": 0.97 if mtu >= 185 else None,
        "meets_goal": (of_payload >= 0.97) if mtu >= 185 else None,
        "reference_ble_reticulum": round(reticulum, 4),
    }
    if mtu >= 512:
        row["reference_bitchat"] = round(469 / payload, 4)
    return row


async def dbus_per_packet(acquire: bool, frames: int) -> dict[str, object]:
    peripheral = BlePeripheral("hci0", lambda: bytes(8), MAX_FRAME, acquire=acquire)
    accepted = LinkQueue(4)
    serving = asyncio.create_task(peripheral.serve(accepted))
    try:
        await asyncio.wait_for(peripheral.wait_registered(), 20)
        central = BleCentral("hci1", MAX_FRAME, connect_interval_s=0)
        link = await central.dial(PeerAddress("ble", "any"), 20)
        relay_link = await asyncio.wait_for(accepted.get(), 20)
        frame = b"\xa5" * 2000

        async def exchange(count: int) -> None:
            for _ in range(count):
                await link.send([frame])
                assert await relay_link.recv() == frame
                await relay_link.send([frame])
                assert await link.recv() == frame

        await exchange(5)  # warm-up: sockets acquired, subscriptions made
        before = dict(peripheral.stats)
        packets_before = relay_link.packets_in + relay_link.packets_out
        started = time.perf_counter()
        await exchange(frames)
        elapsed = time.perf_counter() - started
        after = peripheral.stats
        packets = relay_link.packets_in + relay_link.packets_out - packets_before

        def delta(name: str) -> int:
            return after.get(name, 0) - before.get(name, 0)

        messages = delta("dbus.in") + delta("dbus.notify") + delta("dbus.flush")
        await link.close()
        return {
            "case": "dbus_per_packet",
            "path": "acquire" if acquire else "dbus",
            "mtu": relay_link.mtu,
            "data_packets": packets,
            "dbus_messages": messages,
            "dbus_per_packet": round(messages / packets, 4),
            "goal": 0 if acquire else None,
            "bluezoo_frames_per_s_each_way": round(frames / elapsed, 1),
        }
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


def main() -> None:
    quick = "--quick" in sys.argv
    for mtu in MTUS:
        print(json.dumps(fragmentation(mtu)))
    for acquire in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            env = PrivateBluez(Path(tmp), adapters=2).start()
            try:
                print(json.dumps(asyncio.run(dbus_per_packet(acquire, 20 if quick else 200))))
            finally:
                env.stop()


if __name__ == "__main__":
    main()
