"""The relay's BLE GATT peripheral (L1): a `Listener` of BLE links over BlueZ's D-Bus API.

Theory of operation
-------------------
States: DOWN (nothing registered with bluetoothd) and UP (application, advertisement and agent
registered on the adapter). `serve` connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS is
honoured), exports the object tree of node.radio.objects once, and goes UP; failing that first
time it raises LinkError (no bluetoothd, no adapter). After that it never gives up:

    event                                       DOWN                       UP
    org.bluez gets an owner (bluetoothd start)  register -> UP             (re-)register -> UP
    org.bluez loses its owner (stop, crash)     -                          drop links -> DOWN
    Adapter1 of our adapter removed             -                          drop links -> DOWN
    Adapter1 of our adapter added               register -> UP             -
    registration fails                          retry every RETRY_S        -
    token period changed                        -                          re-advertise

Links. A central becomes a link when it reads the INFO characteristic: the relay gives its device
a link id (1..255) and hands a BleLink to the daemon's LinkQueue, or answers link id 0 when
`max_links` links are open (one link per device: a second read returns the same id), or when
the daemon's admission refuses the central (its source is its Bluetooth address: each central
has its own per-source limits, central_source). Packets carry that id (node.radio.profile
explains why BlueZ 5.66 makes it necessary).

Data path. Packets arrive as WriteValue calls (the `device` option names the central) or, once
bluetoothd has called AcquireWrite, on a SOCK_SEQPACKET socket of ours, one per datagram, routed
by the tag. Outbound packets go into the AcquireNotify socket of the central's device (5.69) or
the one shared socket (5.66), else as PropertiesChanged signals with a bus round trip every
PROPERTIES_FLUSH. With both sockets the steady state costs no D-Bus message per packet.

Endings. A central's Device1.Connected turning false (or its object vanishing) ends its link:
cleanly between frames, LinkError mid-frame. A link the daemon closes (session over or failed)
also disconnects its central, and so does a central connected `idle_central_s` without a link.
Sockets are closed when no link uses them any more (*Acquired back to false).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from node.errors import LinkError
from node.link import LinkQueue
from node.radio.errors import NOT_PERMITTED, BluezError, already_there_is_fine, translated
from node.radio.link import BleLink
from node.radio.objects import (
    Advertisement,
    DataInAcquire,
    DataInCharacteristic,
    DataOutAcquire,
    DataOutCharacteristic,
    GattService,
    InfoCharacteristic,
    Options,
    PairingAgent,
)
from node.radio.profile import MAX_LINK_ID, MAX_MTU, MIN_MTU, NO_LINK, PROTOCOL_VERSION, Info

log = logging.getLogger("waystation.ble")

BLUEZ = "org.bluez"
RETRY_S = 1.0  # while DOWN after a failed registration
SUBSCRIBE_WAIT_S = 5.0  # a link's first notification waits this long for the subscription
IDLE_CENTRAL_S = 20.0  # a central connected this long without reading INFO is disconnected
PROPERTIES_FLUSH = 16  # PropertiesChanged notifications between two bus round trips
LEGACY_ADV_BYTES = 31
ADV_BYTES_BOTH = 3 + 18 + 26  # flags + 128-bit UUID list + service data (UUID + 8-byte token)
RECV_BYTES = 1024  # larger than any packet (profile.MAX_PACKET)


def central_source(device: str) -> str:
    """The admission source of a central: its Bluetooth address, from BlueZ's device path
    (/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF -> ble:AA:BB:CC:DD:EE:FF). Each central is its own
    source for the per-source limits; a phone that changes its random address is a new one."""
    name = device.rsplit("/", 1)[-1]
    return "ble:" + (name[4:].replace("_", ":") if name.startswith("dev_") else name)


class BlePeripheral:
    """The GATT server on one adapter, handing each connected central to the daemon as a Link.

    Args:
        adapter: the BlueZ adapter name, e.g. ``hci0``.
        token: the rotating token of the current period (advertised, and in INFO).
        max_frame: the largest frame a central may send.
        max_links: centrals served at once.
        max_mtu: the largest ATT MTU used (23..517).
        acquire: offer AcquireWrite/AcquireNotify (sockets) instead of one D-Bus message per packet.
        advertising_interval_ms: advertising interval.
        token_check_s: how often the token is checked for a new period.
        idle_central_s: a central connected this long without a link (no INFO read) is
            disconnected: while connected it can keep the adapter from advertising.
        root: the D-Bus path under which our objects live (one per process and adapter).
    """

    kind = "ble"

    def __init__(
        self,
        adapter: str,
        token: Callable[[], bytes],
        max_frame: int,
        max_links: int = 4,
        max_mtu: int = MAX_MTU,
        acquire: bool = True,
        advertising_interval_ms: int = 200,
        token_check_s: float = 60.0,
        idle_central_s: float = IDLE_CENTRAL_S,
        root: str = "/org/waystation/ble",
    ) -> None:
        self.adapter = adapter
        self.adapter_path = "/org/bluez/" + adapter
        self._token = token
        self.max_frame = max_frame
        self.max_links = max(1, min(max_links, MAX_LINK_ID))
        self.max_mtu = max(MIN_MTU, min(MAX_MTU, max_mtu))
        self.acquire = acquire
        self._token_check_s = token_check_s
        self._idle_central_s = idle_central_s
        self._idle: dict[str, float] = {}  # connected device -> when, until it reads INFO
        app = "%s/%s/app" % (root, adapter)
        self.app_path = app
        self.adv_path = "%s/%s/adv" % (root, adapter)
        self.agent_path = "%s/%s/agent" % (root, adapter)
        service_path = app + "/service0"
        self._service_path = service_path
        self.data_in: DataInCharacteristic = (DataInAcquire if acquire else DataInCharacteristic)(
            service_path, self, self.max_mtu
        )
        self.data_out: DataOutCharacteristic = (
            DataOutAcquire if acquire else DataOutCharacteristic
        )(service_path, self, self.max_mtu)
        self.info = InfoCharacteristic(service_path, self, self.max_mtu)
        self._adv_interval_ms = advertising_interval_ms
        self.advertisement = Advertisement(b"", False, advertising_interval_ms)
        self.agent = PairingAgent()
        self.stats: dict[str, int] = {}
        self._bus: MessageBus | None = None
        self._accepted: LinkQueue | None = None
        self._up = False
        self._changed = asyncio.Event()
        self._links_by_id: dict[int, BleLink] = {}
        self._links_by_device: dict[str, BleLink] = {}
        self._device_of: dict[int, str] = {}
        self._next_id = 1
        self._notifying = False
        self._subscribed = asyncio.Event()  # set on each AcquireNotify or StartNotify
        self._write_socks: list[socket.socket] = []
        self._notify_socks: dict[str, socket.socket] = {}
        self._remote_ends: list[socket.socket] = []
        self._unflushed = 0
        self._bluez_owner = ""  # bluetoothd's unique bus name: the only sender of its signals
        self.registrations = 0
        self._registered = asyncio.Condition()

    def count(self, name: str, n: int = 1) -> None:
        """Add to a counter in `stats` (read by tests, bench/ble.py and the daemon's status)."""
        self.stats[name] = self.stats.get(name, 0) + n

    @property
    def links(self) -> list[BleLink]:
        """The links open now."""
        return list(self._links_by_id.values())

    async def wait_registered(self, count: int = 1) -> None:
        """Wait until the service has been registered `count` times (1: first start)."""
        async with self._registered:
            await self._registered.wait_for(lambda: self.registrations >= count)

    # -- lifecycle ---------------------------------------------------------------------------

    async def serve(self, accepted: LinkQueue) -> None:
        """Register with bluetoothd and hand centrals to `accepted` until cancelled.

        Raises:
            LinkError: no system bus, no bluetoothd, or the adapter is missing at start.
        """
        self._accepted = accepted
        with translated("connect to the system bus"):
            bus = await MessageBus(bus_type=BusType.SYSTEM, negotiate_unix_fd=True).connect()
        self._bus = bus
        try:
            self._export(bus)
            bus.add_message_handler(self._on_message)
            for rule in (
                "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                "arg0='org.bluez'",
                "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager'",
                "type='signal',sender='org.bluez',member='PropertiesChanged',"
                "path_namespace='%s'" % self.adapter_path,
            ):
                await self._call(
                    "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                    "AddMatch", "s", [rule], "watch BlueZ",
                )  # fmt: skip
            await self._register()
            await self._watch()
        finally:
            self._down("the relay stopped")
            bus.disconnect()
            self._bus = None

    def _export(self, bus: MessageBus) -> None:
        bus.export(self._service_path, GattService())
        bus.export(self._service_path + "/char0", self.data_in)
        bus.export(self._service_path + "/char1", self.data_out)
        bus.export(self._service_path + "/char2", self.info)
        bus.export(self.adv_path, self.advertisement)
        bus.export(self.agent_path, self.agent)

    async def _watch(self) -> None:
        while True:
            wait = self._token_check_s if self._up else RETRY_S
            if self._idle and self._up:
                due = min(self._idle.values()) + self._idle_central_s - time.monotonic()
                wait = max(0.0, min(wait, due))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            self._changed.clear()
            try:
                if not self._up:
                    await self._register()
                    continue
                await self._disconnect_idle()
                if self._token() != self.advertisement.token:
                    await self._advertise(again=True)
            except LinkError as exc:
                self.count("ble.register_failed")
                log.warning("BLE on %s: %s (retrying)", self.adapter, exc)
                self._down("registration failed")

    async def _disconnect_idle(self) -> None:
        """Disconnect centrals without a link after idle_central_s: they stop advertising."""
        due = time.monotonic() - self._idle_central_s
        for device in [d for d, since in self._idle.items() if since <= due]:
            del self._idle[device]
            self.count("ble.centrals.idle")
            log.info("BLE %s: disconnecting %s: no link", self.adapter, device)
            await self._disconnect(device)

    async def _register(self) -> None:
        adapter = self.adapter
        reply = await self._call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
            "GetNameOwner", "s", [BLUEZ], "find bluetoothd on the bus",
        )  # fmt: skip
        self._bluez_owner = str(reply.body[0])
        await self._call(
            BLUEZ, self.adapter_path, "org.freedesktop.DBus.Properties", "Set", "ssv",
            ["org.bluez.Adapter1", "Powered", Variant("b", True)], "power on " + adapter,
        )  # fmt: skip
        # A retry after a partial registration finds some of ours still there: that is fine.
        with already_there_is_fine():
            await self._call(
                BLUEZ, self.adapter_path, "org.bluez.GattManager1", "RegisterApplication",
                "oa{sv}", [self.app_path, {}], "register the GATT application on " + adapter,
            )  # fmt: skip
        with already_there_is_fine():
            await self._advertise(again=False)
        with already_there_is_fine():
            await self._call(
                BLUEZ, "/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os",
                [self.agent_path, "NoInputNoOutput"], "register the pairing agent",
            )  # fmt: skip
        self._up = True
        async with self._registered:
            self.registrations += 1
            self._registered.notify_all()
        self.count("ble.registered")
        log.info("BLE GATT service registered on %s", adapter)

    async def _advertise(self, again: bool) -> None:
        manager = "org.bluez.LEAdvertisingManager1"
        if again:
            with contextlib.suppress(LinkError):
                await self._call(
                    BLUEZ, self.adapter_path, manager, "UnregisterAdvertisement", "o",
                    [self.adv_path], "stop advertising",
                )  # fmt: skip
        room = LEGACY_ADV_BYTES
        with contextlib.suppress(LinkError):
            reply = await self._call(
                BLUEZ, self.adapter_path, "org.freedesktop.DBus.Properties", "Get", "ss",
                [manager, "SupportedCapabilities"], "read advertising capabilities",
            )  # fmt: skip
            caps = reply.body[0].value
            if "MaxAdvLen" in caps:
                room = int(caps["MaxAdvLen"].value)
        self.advertisement = Advertisement(
            self._token(), room < ADV_BYTES_BOTH, self._adv_interval_ms
        )
        assert self._bus is not None
        self._bus.unexport(self.adv_path)
        self._bus.export(self.adv_path, self.advertisement)
        await self._call(
            BLUEZ, self.adapter_path, manager, "RegisterAdvertisement", "oa{sv}",
            [self.adv_path, {}], "advertise on " + self.adapter,
        )  # fmt: skip

    def _down(self, why: str) -> None:
        """Everything bluetoothd held for us is gone: end every link, close every socket."""
        self._up = False
        self._notifying = False
        self._idle.clear()
        for link_id in list(self._links_by_id):
            self._end_link(link_id, why)
        self._close_sockets()

    def _close_sockets(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._write_socks:
            loop.remove_reader(sock.fileno())
        for sock in [*self._write_socks, *self._notify_socks.values(), *self._remote_ends]:
            sock.close()
        self._write_socks.clear()
        self._notify_socks.clear()
        self._remote_ends.clear()
        for char in (self.data_in, self.data_out):
            if isinstance(char, DataInAcquire | DataOutAcquire):
                char.released()

    def _end_link(self, link_id: int, why: str) -> None:
        link = self._links_by_id.pop(link_id, None)
        device = self._device_of.pop(link_id, None)
        if device is not None:
            self._links_by_device.pop(device, None)
            # BlueZ 5.66 acquires one notify socket for all centrals (keyed by whichever device
            # subscribed first): it stays while other links use it.
            shared = len(self._notify_socks) == 1 and len(self._links_by_id) > 0
            sock = None if shared else self._notify_socks.pop(device, None)
            if sock is not None:
                sock.close()
        if link is not None:
            log.debug("BLE %s: link %s ended: %s", self.adapter, link.label, why)
            link.feed_end(why)
        if not self._links_by_id:
            self._close_sockets()

    # -- D-Bus plumbing ----------------------------------------------------------------------

    async def _call(
        self, dest: str, path: str, iface: str, member: str, sig: str, body: list[Any], what: str
    ) -> Message:
        """One method call; an error reply or a broken bus becomes LinkError (errors.py)."""
        bus = self._bus
        if bus is None:
            raise LinkError("cannot %s: not connected to the system bus" % what, "NoBus")
        with translated(what):
            reply = await bus.call(
                Message(
                    destination=dest, path=path, interface=iface, member=member,
                    signature=sig, body=body,
                )
            )  # fmt: skip
            assert reply is not None
            if reply.message_type == MessageType.ERROR:
                text = str(reply.body[0]) if reply.body else ""
                raise DBusError(reply.error_name or "unknown", text)
        return reply

    def _on_message(self, msg: Message) -> None:
        """Every message the bus delivers to us: watch BlueZ's signals (never handles calls).

        Signals count only from their real senders (the bus for NameOwnerChanged, bluetoothd's
        unique name for the rest): another process on the bus cannot make us drop our links.
        """
        self.count("dbus.in")
        if msg.message_type != MessageType.SIGNAL:
            return
        try:
            self._on_signal(msg.sender or "", msg.member or "", msg.path or "", msg.body)
        except (IndexError, KeyError, TypeError, AttributeError):
            self.count("dbus.bad_signal")

    def _on_signal(self, sender: str, member: str, path: str, body: list[Any]) -> None:
        if member == "NameOwnerChanged" and sender == "org.freedesktop.DBus":
            if body[0] == BLUEZ:
                self._bluez_owner = body[2]
                self._down("bluetoothd stopped" if not body[2] else "bluetoothd restarted")
                self._changed.set()
            return
        if sender != self._bluez_owner:
            return
        if member == "InterfacesRemoved" and "org.bluez.Adapter1" in body[1]:
            if path == "/" and body[0] == self.adapter_path:
                self._down("adapter %s removed" % self.adapter)
        elif member == "InterfacesRemoved" and "org.bluez.Device1" in body[1]:
            self._device_gone(body[0], "central went away")
        elif member == "InterfacesAdded" and body[0] == self.adapter_path:
            if "org.bluez.Adapter1" in body[1]:
                self._changed.set()
        elif member == "InterfacesAdded" and "org.bluez.Device1" in body[1]:
            self._device_connected(body[0], body[1]["org.bluez.Device1"].get("Connected"))
        elif member == "PropertiesChanged" and body[0] == "org.bluez.Device1":
            connected = body[1].get("Connected")
            self._device_connected(path, connected)
            if connected is not None and not connected.value:
                self._device_gone(path, "central disconnected")

    def _device_connected(self, device: str, connected: Variant | None) -> None:
        """Track centrals of our adapter that are connected and have no link yet."""
        if connected is None or not device.startswith(self.adapter_path + "/"):
            return
        self._idle.pop(device, None)
        if connected.value and device not in self._links_by_device:
            self._idle[device] = time.monotonic()
            self._changed.set()  # the watcher's wait now ends at this central's deadline

    def _device_gone(self, device: str, why: str) -> None:
        link = self._links_by_device.get(device)
        if link is not None:
            self.count("ble.centrals.gone")
            self._end_link(link.link_id, why)

    # -- what the GATT objects ask (objects.GattHandler) ------------------------------------

    def read_info(self, options: Options) -> bytes:
        """INFO read: the reading central's link (a new one if there is room), and the ATT MTU
        of its connection (the read's `mtu` option, capped at max_mtu; 0 if BlueZ gave none)."""
        device, mtu = self._device(options), self._mtu(options)
        link = self._links_by_device.get(device) or self._new_link(device, mtu)
        said = mtu if "mtu" in options else 0
        return Info(PROTOCOL_VERSION, link.link_id if link else NO_LINK, self.max_frame,
                    self._token(), said).encode()  # fmt: skip

    def _new_link(self, device: str, mtu: int) -> BleLink | None:
        if len(self._links_by_id) >= self.max_links or self._accepted is None:
            self.count("ble.refused.busy")
            return None
        link_id = self._next_id
        while link_id in self._links_by_id:
            link_id = link_id % MAX_LINK_ID + 1
        self._next_id = link_id % MAX_LINK_ID + 1
        label = "ble:%s/%s#%d" % (self.adapter, device.rsplit("/", 1)[-1], link_id)

        async def send(packets: list[bytes]) -> None:
            await self._send(device, packets)

        async def closed() -> None:
            await self._link_closed(link_id, link)

        link = BleLink(label, link_id, mtu, self.max_frame, send, closed)
        if not self._accepted.offer(link, central_source(device)):
            self.count("ble.refused.admission")  # the daemon counts why (links.rejected.*)
            return None
        self._links_by_id[link_id] = link
        self._links_by_device[device] = link
        self._idle.pop(device, None)
        self._device_of[link_id] = device
        self.count("ble.links.opened")
        log.debug("BLE %s: link %s opened at MTU %d", self.adapter, label, mtu)
        return link

    def write(self, value: bytes, options: Options) -> None:
        """DATA_IN WriteValue: one packet from the central named by the `device` option."""
        self.count("dbus.writes")
        link = self._links_by_device.get(self._device(options))
        if link is None:
            self.count("ble.packets.no_link")
            raise BluezError(NOT_PERMITTED, "read the info characteristic first")
        link.feed(value)

    def acquire_write(self, options: Options) -> tuple[int, int]:
        """AcquireWrite: a socket for DATA_IN packets (per device from BlueZ 5.69)."""
        local, remote = self._socketpair()
        self._write_socks.append(local)
        asyncio.get_running_loop().add_reader(local.fileno(), self._read_packets, local)
        self.count("ble.acquired.write")
        log.debug("BLE %s: AcquireWrite %s", self.adapter, dict(options))
        return remote.fileno(), self._mtu(options)

    def acquire_notify(self, options: Options) -> tuple[int, int]:
        """AcquireNotify: a socket into which we write DATA_OUT notifications."""
        local, remote = self._socketpair()
        device = options["device"].value if "device" in options else ""
        old = self._notify_socks.pop(device, None)
        if old is not None:
            old.close()
        self._notify_socks[device] = local
        self._subscribed.set()
        self.count("ble.acquired.notify")
        log.debug("BLE %s: AcquireNotify %s", self.adapter, dict(options))
        return remote.fileno(), self._mtu(options)

    def notifying(self, on: bool) -> None:
        """StartNotify / StopNotify (the PropertiesChanged path)."""
        self._notifying = on
        self._subscribed.set()

    def _socketpair(self) -> tuple[socket.socket, socket.socket]:
        if not self._up:
            raise BluezError(NOT_PERMITTED, "not registered")
        local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        local.setblocking(False)
        # dbus-fast sends the descriptor after this call returns: keep our copy of the remote
        # end open until the sockets are released (then both ends close).
        self._remote_ends.append(remote)
        return local, remote

    def _device(self, options: Options) -> str:
        device = options.get("device")
        if device is None or not isinstance(device.value, str):
            raise BluezError(NOT_PERMITTED, "no device option: cannot tell which central")
        return device.value

    def _mtu(self, options: Options) -> int:
        mtu = options.get("mtu")
        value = mtu.value if mtu is not None and isinstance(mtu.value, int) else self.max_mtu
        return max(MIN_MTU, min(self.max_mtu, value))

    # -- packets ---------------------------------------------------------------------------

    def _read_packets(self, sock: socket.socket) -> None:
        """The write socket is readable: take every packet waiting, one per datagram."""
        while True:
            try:
                packet = sock.recv(RECV_BYTES)
            except BlockingIOError:
                return
            except OSError:
                packet = b""
            if not packet:  # bluetoothd closed its end
                asyncio.get_running_loop().remove_reader(sock.fileno())
                self._write_socks.remove(sock)
                sock.close()
                if not self._write_socks and isinstance(self.data_in, DataInAcquire):
                    self.data_in.released()
                return
            self.count("ble.fd.in")
            link = self._links_by_id.get(packet[0])
            if link is None:
                self.count("ble.packets.no_link")
                continue
            link.feed(packet)

    def _notify_sock(self, device: str) -> socket.socket | None:
        sock = self._notify_socks.get(device)
        if sock is None and len(self._notify_socks) == 1:
            sock = next(iter(self._notify_socks.values()))  # BlueZ 5.66: one socket for all
        return sock

    async def _send(self, device: str, packets: list[bytes]) -> None:
        sock = self._notify_sock(device)
        if sock is None and not self._notifying:
            # bluetoothd calls AcquireNotify/StartNotify after it has acknowledged the central's
            # subscription, so our first answer can be ready before it: wait, with a bound.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                    while sock is None and not self._notifying:
                        self._subscribed.clear()
                        await self._subscribed.wait()
                        sock = self._notify_sock(device)
        if sock is not None:
            loop = asyncio.get_running_loop()
            with translated("notify " + device):
                for packet in packets:
                    await loop.sock_sendall(sock, packet)
            self.count("ble.fd.out", len(packets))
            return
        if not self._notifying:
            raise LinkError("%s did not subscribe to notifications" % device, "NotSubscribed")
        for packet in packets:
            self.data_out.notify(packet)
            self.count("dbus.notify")
            self._unflushed += 1
            if self._unflushed >= PROPERTIES_FLUSH:
                self._unflushed = 0
                await self._call(
                    "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Peer",
                    "Ping", "", [], "flush notifications",
                )  # fmt: skip
                self.count("dbus.flush")

    async def _link_closed(self, link_id: int, link: BleLink | None) -> None:
        """The daemon closed a link: disconnect its central (left up, it stops advertising)."""
        device = self._device_of.get(link_id)
        if self._links_by_id.get(link_id) is not link:
            return  # already ended: the central disconnected, or bluetoothd went away
        self._end_link(link_id, "closed")
        if link is not None and device is not None:
            self.count("ble.centrals.disconnected" if link.failed else "ble.centrals.released")
            await self._disconnect(device)

    async def _disconnect(self, device: str) -> None:
        with contextlib.suppress(LinkError):
            await self._call(
                BLUEZ, device, "org.bluez.Device1", "Disconnect", "", [], "disconnect " + device
            )
