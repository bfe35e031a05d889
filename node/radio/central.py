"""The BLE central (L1, bleak): a `Dialer` of BLE links to relays (and phones) that advertise.

Theory of operation
-------------------
`dial(PeerAddress("ble", WHERE))` where WHERE is a device address (``AA:BB:CC:DD:EE:FF``) or
``any`` (the first relay found):

1. Limits first: at most `max_links` links from this central; connections at most one per
   `connect_interval_s` (a relay that drops us is not hammered).
2. Scan on the configured adapter for the service UUID, in the advertised UUIDs or in the service
   data (legacy advertisements carry the UUID only there, node.radio.objects.Advertisement),
   ignoring devices weaker than `min_rssi` and, when `want_token` is given, relays whose token
   it rejects (a paired phone looks for its own relay). Scans run in SCAN_WINDOW_S windows with
   BlueZ's DuplicateData filter on, so a changed advertisement is reported again.
3. Connect, read INFO (version, our link id, the relay's maximum frame, its token) and take the
   data characteristics from the service of the INFO characteristic that answered; link id 0
   means the relay is full: disconnect and fail. A failed scan-connect-subscribe is tried again,
   CONNECT_ATTEMPTS times per dial.
4. Subscribe to DATA_OUT with StartNotify, whose reply waits for the subscription (bluetoothd
   answers AcquireNotify before it); the ATT payload comes from bleak's
   `max_write_without_response_size` (BlueZ's negotiated MTU - 3).
5. The link sends with write-without-response, one packet per write, awaiting each (bleak's
   D-Bus call return is the backpressure); only its very first packet is a write request, so
   that bluetoothd has acquired the relay's write socket before any write command follows
   (see `_open`). A disconnect ends the link (BleLink.feed_end).

Every bleak/D-Bus error leaves as LinkError through node.radio.errors.translated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bleak import BleakClient, BleakScanner
from bleak.args.bluez import BlueZClientArgs, BlueZScannerArgs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from node.errors import LinkError
from node.link import PeerAddress
from node.radio.errors import translated
from node.radio.link import BleLink
from node.radio.profile import (
    ATT_HEADER,
    DATA_IN_UUID,
    DATA_OUT_UUID,
    INFO_UUID,
    MAX_MTU,
    MIN_MTU,
    NO_LINK,
    SERVICE_UUID,
    Info,
)

log = logging.getLogger("waystation.ble")

ANY = "any"
SCAN_WINDOW_S = 20.0  # one discovery; the next window starts a fresh one
CONNECT_ATTEMPTS = 3  # scan + connect + subscribe, for one dial
FINAL_CAUSES = ("Busy", "NoChar", "version")  # a retry would get the same answer


def advertised_token(adv: AdvertisementData) -> bytes | None:
    """The relay token in an advertisement of our service, or None if it is not one of ours."""
    data = adv.service_data.get(SERVICE_UUID)
    if data is not None:
        return bytes(data)
    if SERVICE_UUID in (u.lower() for u in adv.service_uuids):
        return b""
    return None


class BleCentral:
    """Opens BLE links to relays from one adapter.

    Args:
        adapter: the BlueZ adapter name, e.g. ``hci1``.
        max_frame: the largest frame accepted from a relay.
        max_links: links open at once through this central.
        min_rssi: ignore advertisers weaker than this (dBm).
        connect_interval_s: at least this long between two connection attempts.
        max_mtu: the largest ATT MTU used (23..517).
        want_token: if given, only relays whose advertised token it accepts are dialled.
    """

    kind = "ble"

    def __init__(
        self,
        adapter: str,
        max_frame: int,
        max_links: int = 4,
        min_rssi: int = -90,
        connect_interval_s: float = 0.5,
        max_mtu: int = MAX_MTU,
        want_token: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.adapter = adapter
        self.max_frame = max_frame
        self.max_links = max_links
        self.min_rssi = min_rssi
        self.connect_interval_s = connect_interval_s
        self.max_mtu = max(MIN_MTU, min(MAX_MTU, max_mtu))
        self.want_token = want_token
        self._links: set[BleLink] = set()
        self._last_attempt = float("-inf")
        self.retries = 0  # connection attempts that failed and were tried again
        self.relay_token = b""
        self.foreign_packets = 0  # notifications for other centrals' links, dropped

    def _wanted(self, where: str, device: BLEDevice, adv: AdvertisementData) -> bool:
        token = advertised_token(adv)
        if token is None or adv.rssi < self.min_rssi:
            return False
        if where != ANY and device.address.upper() != where.upper():
            return False
        return self.want_token is None or self.want_token(token)

    async def dial(self, address: PeerAddress, timeout: float) -> BleLink:
        """A link to the relay at `address` (``ble:AA:BB:CC:DD:EE:FF`` or ``ble:any``).

        Raises:
            LinkError: over the link limit, nothing found, connection failed, relay full.
        """
        if address.kind != "ble":
            raise LinkError("%s is not a BLE address" % address, "BadAddress")
        if len(self._links) >= self.max_links:
            raise LinkError("already %d BLE links open (max_links)" % len(self._links), "Limit")
        wait = self._last_attempt + self.connect_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # connection rate limit, not a wait for a peer
        self._last_attempt = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                return await self._dial(address.where)
        except TimeoutError as exc:
            raise LinkError(
                "no BLE link to %s within %.1f s" % (address, timeout), "Timeout"
            ) from exc

    async def _dial(self, where: str) -> BleLink:
        """Scan, connect and open; a failed connection or subscription is retried (bounded)."""
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            device = await self._scan(where)
            try:
                return await self._connect(device)
            except LinkError as exc:
                if attempt == CONNECT_ATTEMPTS or exc.cause in FINAL_CAUSES:
                    raise
                log.info("BLE %s: attempt %d failed: %s (trying again)", self.adapter, attempt, exc)
                self.retries += 1
                await asyncio.sleep(self.connect_interval_s)  # the rate limit, between attempts
        raise AssertionError("unreachable")

    async def _scan(self, where: str) -> BLEDevice:
        """The first wanted advertiser, scanning in SCAN_WINDOW_S windows (dial's timeout ends it).

        BlueZ reports a device once per discovery unless DuplicateData is on: a relay whose
        advertisement changed (a new token, a new resolvable address) is seen again, and each
        window is a fresh discovery.
        """
        scanner_args = BlueZScannerArgs(adapter=self.adapter, filters={"DuplicateData": True})
        while True:
            with translated("scan on " + self.adapter):
                device = await BleakScanner.find_device_by_filter(
                    lambda d, a: self._wanted(where, d, a),
                    timeout=SCAN_WINDOW_S,
                    bluez=scanner_args,
                )
            if device is not None:
                log.debug("BLE %s: found relay %s", self.adapter, device.address)
                return device

    async def _connect(self, device: BLEDevice) -> BleLink:
        link: BleLink | None = None

        def disconnected(_client: BleakClient) -> None:
            if link is not None:
                link.feed_end("relay disconnected")

        client = BleakClient(
            device,
            disconnected_callback=disconnected,
            bluez=BlueZClientArgs(adapter=self.adapter),
        )
        with translated("connect to " + device.address):
            await client.connect()
        try:
            link = await self._open(client, device)
        except BaseException:
            with translated("disconnect from " + device.address):
                await client.disconnect()
            raise
        return link

    async def _read_info(
        self, client: BleakClient
    ) -> tuple[Info, BleakGATTCharacteristic, BleakGATTCharacteristic]:
        """Read INFO, and take the data characteristics from the service that holds it.

        After a reconnection (or a relay's re-registration) bluetoothd can still show the old
        instance of our service beside the new one: the UUIDs alone are ambiguous, so the INFO
        characteristic that answers a read (the newest first) names the service to use.
        """
        infos = sorted(
            (c for c in client.services.characteristics.values() if c.uuid == INFO_UUID),
            key=lambda c: c.handle,
            reverse=True,
        )
        if not infos:
            raise LinkError("the device offers no Waystation info characteristic", "NoChar")
        error: LinkError | None = None
        for char in infos:
            try:
                with translated("read the relay's info"):
                    value = bytes(await client.read_gatt_char(char))
            except LinkError as exc:
                error = exc
                continue
            info = Info.decode(value)
            service = client.services.get_service(char.service_handle)
            data_in = service.get_characteristic(DATA_IN_UUID) if service else None
            data_out = service.get_characteristic(DATA_OUT_UUID) if service else None
            if data_in is None or data_out is None:
                raise LinkError("the relay's service lacks a data characteristic", "NoChar")
            return info, data_in, data_out
        assert error is not None
        raise error

    async def _open(self, client: BleakClient, device: BLEDevice) -> BleLink:
        info, data_in, data_out = await self._read_info(client)
        if info.link_id == NO_LINK:
            raise LinkError("relay %s has no room for another link" % device.address, "Busy")
        mtu = min(self.max_mtu, data_in.max_write_without_response_size + ATT_HEADER)
        link: BleLink | None = None
        acknowledged = False  # the first packet goes as a write request (see below)

        async def send(packets: list[bytes]) -> None:
            # bluetoothd (5.66 and later) acquires the relay's write socket on the first write
            # and keeps only a pointer to that write's value until AcquireWrite returns: a write
            # command that arrives meanwhile overwrites it, so the relay gets the second packet
            # twice and never the first. A write request is answered only once the socket is
            # acquired and the value sent into it, and we wait for that answer.
            nonlocal acknowledged
            with translated("write to " + device.address):
                for packet in packets:
                    await client.write_gatt_char(data_in, packet, response=not acknowledged)
                    acknowledged = True

        async def close() -> None:
            self._links.discard(link)
            with translated("disconnect from " + device.address):
                await client.disconnect()

        label = "ble:%s/%s#%d" % (self.adapter, device.address, info.link_id)
        link = BleLink(label, info.link_id, mtu, min(self.max_frame, info.max_frame), send, close)
        self.relay_token = info.token

        def on_notify(_char: object, data: bytearray) -> None:
            # BlueZ 5.66 notifies every subscribed central: another central's packets (their
            # tag) are not ours to read, and not an error of the relay's.
            if data and data[0] != info.link_id:
                self.foreign_packets += 1
                return
            link.feed(bytes(data))

        # StartNotify, not AcquireNotify: bluetoothd 5.66 answers AcquireNotify before the
        # relay has seen our subscription (the CCC write), so the relay's first notifications
        # could be lost; StartNotify's reply comes once the CCC write is acknowledged. Only
        # then is the link handed out, so nothing is written before we are subscribed.
        with translated("subscribe to notifications"):
            await client.start_notify(data_out, on_notify, bluez={"use_start_notify": True})
        log.debug("BLE %s: link %s open at MTU %d", self.adapter, label, mtu)
        self._links.add(link)
        return link
