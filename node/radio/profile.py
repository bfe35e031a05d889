"""The Waystation GATT profile: UUIDs, the info value and the link tag (docs/ble.md).

Everything here is plain bytes in, bytes out; the peripheral (dbus-fast) and the central (bleak)
both use it, so the two sides cannot disagree about the profile.

Every data packet on the two data characteristics is ``link id (1 byte) || fragment`` where the
fragment is node.proto.fragment's (one header byte, then frame bytes). The link id exists because
BlueZ 5.66 (Debian bookworm) gives the GATT application one AcquireWrite socket and one
AcquireNotify socket per characteristic for *all* connected centrals, and sends every
PropertiesChanged notification to every subscribed central (fixed per device only in BlueZ 5.69,
commit 8eb1dee87): without a tag the relay could not tell two phones' writes apart, nor a phone
its own notifications from another's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from node.errors import RemoteProtocolError

SERVICE_UUID = "6b1d5a40-3c8e-4f7a-9b52-57a7c0de0001"
DATA_IN_UUID = "6b1d5a40-3c8e-4f7a-9b52-57a7c0de0002"  # central -> relay: write, write w/o response
DATA_OUT_UUID = "6b1d5a40-3c8e-4f7a-9b52-57a7c0de0003"  # relay -> central: notify
INFO_UUID = "6b1d5a40-3c8e-4f7a-9b52-57a7c0de0004"  # read: version, link id, max frame, token

PROTOCOL_VERSION = 1
TAG_SIZE = 1  # the link id before every fragment
NO_LINK = 0  # link id 0 is never assigned: an info value with it means "no room for you"
MAX_LINK_ID = 255
ATT_HEADER = 3  # opcode + handle of a write command / notification
MIN_MTU = 23
MAX_MTU = 517
# The longest packet (link id + fragment) we put in one ATT write or notification. The ATT payload
# at MTU 517 is 514 bytes, but BlueZ refuses an attribute value longer than 512 (the Core spec's
# limit, checked by bluetoothd 5.66 on writes and notifications alike): 510 keeps a margin of two.
MAX_PACKET = 510
TOKEN_SIZE = 8
MIN_INFO_SIZE = 1 + 1 + 4 + TOKEN_SIZE  # what relays before the MTU field send
INFO_SIZE = MIN_INFO_SIZE + 2  # with the MTU; fits the 22-byte read payload of the smallest MTU


@dataclass(frozen=True)
class Info:
    """The readable info value: what a central learns before it sends anything.

    Attributes:
        version: PROTOCOL_VERSION of the relay.
        link_id: the tag this central puts before its fragments and finds before its
            notifications (1..255); NO_LINK when the relay has no room for another central.
        max_frame: the largest frame (bytes) the relay reassembles.
        token: the relay's rotating token of the current period (node.crypto.rendezvous).
        mtu: the ATT MTU the relay sees on the reading central's connection (what BlueZ passed
            with the read), or 0 when the relay did not say (a value of MIN_INFO_SIZE bytes).
            A central that cannot learn its MTU (Web Bluetooth) cuts its packets for it.
    """

    version: int
    link_id: int
    max_frame: int
    token: bytes
    mtu: int = 0

    def encode(self) -> bytes:
        """The value bytes: version u8, link id u8, max frame u32 big-endian, token (8 bytes),
        ATT MTU u16 big-endian."""
        return (
            bytes((self.version, self.link_id))
            + self.max_frame.to_bytes(4, "big")
            + self.token[:TOKEN_SIZE].ljust(TOKEN_SIZE, b"\0")
            + self.mtu.to_bytes(2, "big")
        )

    @classmethod
    def decode(cls, value: bytes) -> Info:
        """Parse an info value read from a relay.

        A value of MIN_INFO_SIZE bytes (no MTU) is a relay from before the MTU field: mtu 0.
        Longer values may carry fields added later; they are ignored.

        Raises:
            RemoteProtocolError: too short or an unknown version.
        """
        if len(value) < MIN_INFO_SIZE:
            raise RemoteProtocolError(
                "info value is %d bytes, expected %d" % (len(value), INFO_SIZE)
            )
        if value[0] != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                "relay speaks BLE profile version %d, we speak %d" % (value[0], PROTOCOL_VERSION),
                "version",
            )
        info = cls(value[0], value[1], int.from_bytes(value[2:6], "big"), bytes(value[6:14]))
        if len(value) < INFO_SIZE:
            return info  # a relay from before the MTU field
        return replace(info, mtu=int.from_bytes(value[MIN_INFO_SIZE:INFO_SIZE], "big"))


def fragment_room(mtu: int) -> int:
    """Fragment bytes (fragment header included) that fit one packet at ATT MTU `mtu`.

    The packet (link id + fragment) fits both the ATT payload (MTU - 3) and MAX_PACKET.
    """
    mtu = max(MIN_MTU, min(MAX_MTU, mtu))
    return min(mtu - ATT_HEADER, MAX_PACKET) - TAG_SIZE


def frame_hint(mtu: int, max_frame: int) -> int:
    """The frame size a BLE link at `mtu` carries well (Link.frame_hint).

    Fragments cost their header whatever the frame size, so long frames waste nothing; but one
    frame holds the link until its last fragment is out, so a frame is kept to a short burst of
    about 8 packets, and never under 1 KiB (a Noise handshake or an entry must fit in one frame).
    """
    room = fragment_room(mtu) - 1
    return max(1024, min(max_frame, 8 * room))
