"""Dialing a relay over Web Bluetooth: the project's own BleLink on a browser GATT connection.

Theory of operation
-------------------
The page's JavaScript (web/src/ble.mjs) does only what a browser must: choose the device
(`requestDevice`), connect, read INFO, subscribe to DATA_OUT, and write packets to DATA_IN with
write-without-response. It hands Python a *gatt* object: ``info`` (the INFO value bytes),
``label``, ``write(packets)`` (a Promise that resolves once the packets are written, in order),
``listen(on_packet, on_end)`` (notifications, and the end of the connection, with a reason), and
``close()``. Everything else is node.radio: INFO is decoded by node.radio.profile, and the link is
node.radio.link.BleLink, the fragmenter and reassembler of L0 at the link's MTU.

Web Bluetooth has no MTU API (docs/ble.md, "What Web Bluetooth cannot do"), but the relay can
see it: BlueZ passes the connection's ATT MTU with every read, and the relay puts it in the INFO
value this central read. Packets are cut for that MTU; for the smallest (23) when the relay does
not say (an older relay), or for `mtu` when the caller fixes one. The INFO value read is kept in
`info` (its token is how the member recognises a paired relay). Notifications tagged for
another central (BlueZ 5.66 sends every central every notification) are dropped here, as
node.radio.central does.
"""

from typing import Any

from node.errors import LinkError, RemoteProtocolError
from node.link import PeerAddress
from node.radio.link import BleLink
from node.radio.profile import MIN_MTU, NO_LINK, Info
from waystation_web.ffi import JsException, create_proxy, to_js

WEB_BLE_ADDRESS = "ble:web"


class WebBleDialer:
    """Dials ``ble:web`` (the device the person chose) through a JavaScript GATT opener.

    Args:
        open_gatt: JavaScript ``(timeoutMs) => Promise<gatt>`` (see the module docstring).
        max_frame: the largest frame accepted from the relay (bytes).
        mtu: the ATT MTU to cut packets for; 0: the one the relay's INFO says (else 23).

    Attributes:
        info: the INFO value read by the last dial (None before).
    """

    kind = "ble"

    def __init__(self, open_gatt: Any, max_frame: int, mtu: int = 0) -> None:
        self._open = open_gatt
        self._max_frame = max_frame
        self._mtu = mtu
        self.info: Info | None = None

    async def dial(self, address: PeerAddress, timeout: float) -> BleLink:
        """A link to the chosen relay within `timeout` seconds.

        Raises:
            LinkError: not a ble address, the connection failed, or the relay has no room.
            RemoteProtocolError: the INFO value is not ours.
        """
        if address.kind != self.kind:
            raise LinkError("cannot dial %s over Web Bluetooth" % address)
        try:
            gatt = await self._open(int(timeout * 1000))
        except JsException as exc:
            raise LinkError("cannot connect over Bluetooth: %s" % exc, "JsException") from None
        try:
            info = self.info = Info.decode(bytes(gatt.info.to_bytes()))
            if info.link_id == NO_LINK:
                raise LinkError("the relay serves as many phones as it can; try again soon", "full")
        except (LinkError, RemoteProtocolError):
            await gatt.close()
            raise
        mtu = self._mtu or info.mtu or MIN_MTU
        return _attach(gatt, info, min(self._max_frame, info.max_frame), mtu)


def _attach(gatt: Any, info: Info, max_frame: int, mtu: int) -> BleLink:
    async def send_packets(packets: list[bytes]) -> None:
        try:
            await gatt.write(to_js(packets))
        except JsException as exc:
            raise LinkError("write failed on %s: %s" % (gatt.label, exc), "JsException") from None

    async def on_close() -> None:
        try:
            await gatt.close()
        finally:
            on_packet.destroy()
            on_end.destroy()

    link = BleLink(str(gatt.label), info.link_id, mtu, max_frame, send_packets, on_close)

    def packet(value: Any) -> None:
        data = bytes(value.to_bytes())
        if data and data[0] == info.link_id:  # another central's notification otherwise
            link.feed(data)

    on_packet = create_proxy(packet)
    on_end = create_proxy(lambda why: link.feed_end(str(why)))
    gatt.listen(on_packet, on_end)
    return link
