"""BleLink, the INFO value and the pairing agent, without radios where none is needed."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import LinkError, RemoteProtocolError
from node.proto.fragment import FIRST, LAST
from node.radio.link import BleLink
from node.radio.profile import (
    INFO_SIZE,
    MAX_MTU,
    MAX_PACKET,
    MIN_INFO_SIZE,
    MIN_MTU,
    PROTOCOL_VERSION,
    Info,
    fragment_room,
    frame_hint,
)
from tests.radio.bus import PrivateBluez
from tests.radio.helpers import relay_radio


def pair(
    mtu: int, max_frame: int = 1 << 16, max_buffered: int = 2 << 20
) -> tuple[BleLink, BleLink]:
    """Two links wired back to back: what one sends, the other is fed, packet by packet."""
    links: list[BleLink] = []

    def sender(index: int):  # type: ignore[no-untyped-def]
        async def send(packets: list[bytes]) -> None:
            for packet in packets:
                assert len(packet) <= mtu - 3
                links[1 - index].feed(packet)

        return send

    for index in (0, 1):
        links.append(BleLink("t%d" % index, 7, mtu, max_frame, sender(index), None, max_buffered))
    return links[0], links[1]


@settings(max_examples=60, deadline=None)
@given(
    mtu=st.integers(MIN_MTU, MAX_MTU),
    frames=st.lists(st.binary(max_size=3000), max_size=8),
)
def test_frames_arrive_whole_and_in_order_at_any_mtu(mtu: int, frames: list[bytes]) -> None:
    async def main() -> list[bytes | None]:
        a, b = pair(mtu)
        await a.send(frames)
        b.feed_end("test over")
        return [await b.recv() for _ in range(len(frames) + 1)]

    assert asyncio.run(main()) == [*frames, None]


def test_a_lost_fragment_costs_its_frame_not_the_link() -> None:
    async def main() -> None:
        a, b = pair(23)
        await a.send([b"first frame"])
        two = a._fragmenter.fragment(b"second frame, two fragments", 19)
        assert len(two) == 2
        b.feed(bytes((7,)) + two[1])  # the second frame's FIRST fragment was lost on the air
        await a.send([b"third frame"])
        assert await b.recv() == b"first frame"
        assert await b.recv() == b"third frame"
        assert not b.failed
        assert b._reassembler.gaps >= 1

    asyncio.run(main())


def test_a_frame_past_its_limit_fails_that_link_after_the_good_frames() -> None:
    async def main() -> None:
        a, b = pair(23, max_frame=4096)
        await a.send([b"first frame"])
        b.feed(bytes((7, FIRST | 1)) + b"x")
        for counter in range(2, 400):  # one byte a fragment, past max_fragments
            b.feed(bytes((7, counter & 0x3F)) + b"x")
        assert await b.recv() == b"first frame"
        with pytest.raises(RemoteProtocolError) as caught:
            await b.recv()
        assert "fragments" in caught.value.message and b.failed

    asyncio.run(main())


@pytest.mark.parametrize(
    "packet, words",
    [(b"", "0 bytes"), (bytes((8, FIRST | LAST)) + b"x", "tag 8"), (bytes((7,)), "1 bytes")],
)
def test_wrong_tag_or_empty_packet_fails_the_link(packet: bytes, words: str) -> None:
    async def main() -> None:
        _, b = pair(100)
        b.feed(packet)
        with pytest.raises(RemoteProtocolError) as caught:
            await b.recv()
        assert words in caught.value.message

    asyncio.run(main())


def test_oversize_frame_and_unread_flood_are_refused() -> None:
    async def main() -> None:
        a, b = pair(517, max_frame=1000)
        await a.send([b"y" * 1001])
        with pytest.raises(RemoteProtocolError) as caught:
            await b.recv()
        assert caught.value.reason == "too-large"
        a, b = pair(517, max_buffered=5000)
        await a.send([b"z" * 1000] * 6)  # nobody reads: the sixth frame breaks the bound
        for _ in range(5):
            assert await b.recv() == b"z" * 1000
        with pytest.raises(RemoteProtocolError) as caught:
            await b.recv()
        assert caught.value.reason == "flow"

    asyncio.run(main())


def test_an_end_mid_frame_is_a_lost_link_and_between_frames_a_clean_one() -> None:
    async def main() -> None:
        _, b = pair(23)
        b.feed(bytes((7, FIRST | 0)) + b"half a frame")
        b.feed_end("central disconnected")
        with pytest.raises(LinkError) as caught:
            await b.recv()
        assert "middle of a frame" in str(caught.value)

    asyncio.run(main())


def test_close_waits_for_a_disconnect_as_slow_as_bluetoothds() -> None:
    """bluetoothd answers Device1.Disconnect after its 2 s DISCONNECT_TIMER (more under TCG):
    the link's close must not cut it short, or the LE connection stays up (issue 11).

    The fake disconnect moves the loop's clock on by 2.5 s instead of sleeping: a close bounded
    below that would be cancelled at its next step, with no wall-clock wait in the test.
    """
    disconnected = asyncio.Event()

    async def disconnect() -> None:
        loop = asyncio.get_running_loop()
        now = loop.time
        loop.time = lambda: now() + 2.5  # type: ignore[method-assign]
        for _ in range(3):  # let the loop run its due timers
            await asyncio.sleep(0)
        disconnected.set()

    async def send(packets: list[bytes]) -> None:
        raise AssertionError("nothing is sent")

    async def main() -> None:
        link = BleLink("slow", 7, 23, 1 << 16, send, disconnect)
        await link.close()
        assert disconnected.is_set()

    asyncio.run(main())


@given(
    link_id=st.integers(0, 255),
    max_frame=st.integers(0, 2**32 - 1),
    token=st.binary(min_size=8, max_size=8),
    mtu=st.integers(0, 517),
)
def test_info_value_round_trip(link_id: int, max_frame: int, token: bytes, mtu: int) -> None:
    info = Info(PROTOCOL_VERSION, link_id, max_frame, token, mtu)
    value = info.encode()
    assert len(value) == INFO_SIZE <= MIN_MTU - 3  # one read at the smallest MTU
    assert Info.decode(value) == info
    assert Info.decode(value[:MIN_INFO_SIZE]) == Info(PROTOCOL_VERSION, link_id, max_frame, token)
    assert Info.decode(value + b"later") == info  # fields added later are ignored


@pytest.mark.parametrize(
    "value, reason", [(b"\x01\x02", "malformed"), (bytes([9]) + bytes(13), "version")]
)
def test_bad_info_values(value: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        Info.decode(value)
    assert caught.value.reason == reason


def test_fragment_room_and_frame_hint() -> None:
    assert fragment_room(23) == 19 and fragment_room(517) == MAX_PACKET - 1 == 509
    assert fragment_room(10) == 19 and fragment_room(9999) == 509  # clamped to 23..517
    assert fragment_room(514) == 509 and fragment_room(513) == 509 and fragment_room(512) == 508
    assert frame_hint(23, 1 << 18) == 1024 and frame_hint(517, 1 << 18) == 8 * 508
    assert frame_hint(517, 2000) == 2000


@pytest.mark.parametrize(
    "member, signature, body",
    [
        ("RequestPinCode", "o", ["/org/bluez/hci0/dev_00_11_22_33_44_55"]),
        ("RequestPasskey", "o", ["/org/bluez/hci0/dev_00_11_22_33_44_55"]),
        ("RequestConfirmation", "ou", ["/org/bluez/hci0/dev_00_11_22_33_44_55", 123456]),
    ],
)
def test_agent_never_accepts_a_pin_or_passkey(
    bluez: PrivateBluez, member: str, signature: str, body: list[object]
) -> None:
    async def main() -> None:
        async with relay_radio() as radio:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            relay_bus = radio.peripheral._bus
            assert relay_bus is not None and relay_bus.unique_name
            reply = await bus.call(
                Message(
                    destination=relay_bus.unique_name, path=radio.peripheral.agent_path,
                    interface="org.bluez.Agent1", member=member, signature=signature, body=body,
                )
            )  # fmt: skip
            bus.disconnect()
            assert reply is not None and reply.message_type == MessageType.ERROR
            assert reply.error_name == "org.bluez.Error.Rejected"
            assert radio.peripheral.agent.refused == 1

    asyncio.run(main())


def test_info_tells_each_central_the_mtu_bluez_passed_with_its_read() -> None:
    """The `mtu` option of INFO's ReadValue (bluetoothd passes the connection's ATT MTU) comes
    back in the value, capped at max_mtu; without the option the relay says 0 (unknown)."""
    from dbus_fast import Variant

    from node.link import LinkQueue
    from node.radio.peripheral import BlePeripheral

    relay = BlePeripheral("hci0", lambda: bytes(8), 4096, acquire=True, max_mtu=247)
    relay._accepted, relay._up = LinkQueue(4), True
    for i, (options, said) in enumerate(
        [({"mtu": Variant("q", 185)}, 185), ({"mtu": Variant("q", 517)}, 247), ({}, 0)]
    ):
        device = {"device": Variant("o", "/org/bluez/hci0/dev_%d" % i)}
        info = Info.decode(relay.read_info({**device, **options}))
        assert (info.link_id, info.mtu) == (i + 1, said)
        again = Info.decode(relay.read_info({**device, **options}))  # the same link, same MTU
        assert (again.link_id, again.mtu) == (i + 1, said)


def test_bluez_566_shared_sockets_are_demultiplexed_by_the_tag() -> None:
    """BlueZ 5.66 acquires ONE write socket and ONE notify socket for all centrals. Played here
    against the peripheral's handlers (BlueZoo acts like >= 5.69): packets of two centrals
    share both sockets and still reach the right links; one central leaving keeps the socket."""
    from dbus_fast import Variant

    from node.link import LinkQueue
    from node.radio.peripheral import BlePeripheral

    async def main() -> None:
        relay = BlePeripheral("hci0", lambda: bytes(8), 4096, acquire=True)
        accepted = LinkQueue(4)
        relay._accepted, relay._up = accepted, True
        devices = ["/org/bluez/hci0/dev_%d" % i for i in (1, 2)]
        for device in devices:
            relay.read_info({"device": Variant("o", device), "mtu": Variant("q", 100)})
        one, two = await accepted.get(), await accepted.get()
        assert (one.link_id, two.link_id) == (1, 2)
        first = {"device": Variant("o", devices[0]), "mtu": Variant("q", 100)}
        write_fd, _ = relay.acquire_write(first)  # bluetoothd: one socket, all centrals
        notify_fd, mtu = relay.acquire_notify(first)
        assert mtu == 100
        loop = asyncio.get_running_loop()
        bluetoothd_write = socket.socket(fileno=os.dup(write_fd))
        bluetoothd_notify = socket.socket(fileno=os.dup(notify_fd))
        bluetoothd_notify.setblocking(False)
        for link_id, text in ((2, b"to two"), (1, b"to one")):
            bluetoothd_write.send(bytes((link_id, FIRST | LAST)) + text)
        assert await asyncio.wait_for(one.recv(), 5) == b"to one"
        assert await asyncio.wait_for(two.recv(), 5) == b"to two"
        await two.send([b"from relay"])  # device 2 never acquired: the shared socket
        packet = await asyncio.wait_for(loop.sock_recv(bluetoothd_notify, 200), 5)
        assert packet == bytes((2, FIRST | LAST)) + b"from relay"
        relay._device_gone(devices[0], "central disconnected")  # the socket's first owner
        assert await one.recv() is None
        await two.send([b"still here"])
        packet = await asyncio.wait_for(loop.sock_recv(bluetoothd_notify, 200), 5)
        assert packet[2:] == b"still here"
        relay._device_gone(devices[1], "central disconnected")
        assert relay._notify_socks == {} and relay._write_socks == []
        bluetoothd_write.close()
        bluetoothd_notify.close()

    asyncio.run(main())


def test_a_central_connected_without_a_link_is_disconnected_after_idle_central_s() -> None:
    """bluetoothd 5.66 can leave the relay connected to a central that gave up (level 2): the
    adapter then stops advertising, so a connection without an INFO read ends after a while."""
    from dbus_fast import Variant

    from node.radio.peripheral import BlePeripheral

    async def main() -> None:
        relay = BlePeripheral("hci0", lambda: bytes(8), 4096, idle_central_s=0.0)
        relay._bluez_owner = ":1.5"
        central, other = "/org/bluez/hci0/dev_00_11_22_33_44_55", "/org/bluez/hci1/dev_01"
        changed = ["org.bluez.Device1", {"Connected": Variant("b", True)}, []]
        relay._on_signal(":1.5", "PropertiesChanged", central, changed)
        relay._on_signal(":1.5", "PropertiesChanged", other, changed)  # not our adapter
        relay._on_signal(":1.6", "PropertiesChanged", central + "x", changed)  # not bluetoothd
        assert list(relay._idle) == [central]
        await relay._disconnect_idle()  # no bus here: the Disconnect call fails quietly
        assert relay.stats.get("ble.centrals.idle") == 1 and not relay._idle
        relay._on_signal(":1.5", "PropertiesChanged", central, changed)
        gone = ["org.bluez.Device1", {"Connected": Variant("b", False)}, []]
        relay._on_signal(":1.5", "PropertiesChanged", central, gone)
        assert not relay._idle  # it left by itself

    asyncio.run(main())
