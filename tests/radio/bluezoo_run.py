"""Run BlueZoo (a BlueZ mock owning org.bluez) for the BLE tests, with five local fixes.

BlueZoo 1.0.2 (appliance.md §5.6, §5.6b) needs these to behave like bluetoothd where our tests
look; each fix is a small wrapper around one BlueZoo method, applied before it starts:

1. Reconnecting to a device failed (sd_bus error 17): the GATT objects of the first connection
   stay exported at the same paths. `export_object` now replaces an object already at the path.
2. `ServicesResolved` stayed true after a disconnect; bluetoothd resets it to false, and bleak
   waits for it on the next connect. `disconnect` now resets it on both sides. And a disconnect
   asked for on the peripheral's side (the relay's Device1.Disconnect of a central) reached
   only that side: the central's own device object stayed Connected. It now ends there too.
3. A device's advertisement reached a scanner once: a scan tick that found nothing new emitted
   no signal, so a scanner that subscribed a moment late never saw it. Real radios report
   every advertisement received (RSSI changes each time); `properties_sync` now re-announces
   the service data on every scan tick.
4. Acquired sockets were per characteristic in BlueZoo but gated per connection: with two
   centrals, the second one's writes were dropped and its notifications went to the first.
   `PerDeviceAcquire` acquires one socket per connected device, as bluetoothd does from 5.69
   (commit 8eb1dee87; 5.66 shares one socket, which the relay's link tag also handles).
   A central's own AcquireNotify/AcquireWrite (bleak uses AcquireNotify) reached the server
   without the `device`, `mtu` and `link` options bluetoothd always passes: they are added.
5. Readiness: prints "ready" on stdout once the adapters exist, so the fixture waits on that
   line (an event with a deadline) instead of polling the bus.

With --browser, two more for Chromium's Web Bluetooth (appliance.md §5.6b, defects 1 and 2):

6. `Device1.AdvertisingFlags` was empty; Chromium reads its first byte and its browser process
   dies. A device with no flags now reports 0x06 (LE general discoverable, no BR/EDR).
7. No Client Characteristic Configuration descriptor (0x2902) existed, which bluetoothd adds to
   every notify/indicate characteristic; without it `startNotifications()` fails with
   NotSupportedError. One is exported under each such characteristic a central sees (reads give
   0x0000; writes are accepted: bluetoothd, not the application, keeps the CCC state).
8. A scanned device's `UUIDs` held only the advertisement's ServiceUUIDs; bluetoothd scans
   actively and adds the scan response's too (ScanResponseServiceUUIDs, where the relay puts its
   service UUID on legacy advertising, docs/ble.md §2). Chromium's `requestDevice` filter on the
   service UUID looks there.

Usage: python bluezoo_run.py [--browser] ADDRESS [ADDRESS ...]   (DBUS_SYSTEM_BUS_ADDRESS: the bus)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import sdbus
from bluezoo import bluezoo, events
from bluezoo import device as bluezoo_device
from bluezoo.adapter import Adapter
from bluezoo.device import Device
from bluezoo.gatt.characteristic import GattCharacteristicClientLink
from bluezoo.interfaces.GattDescriptor import GattDescriptorInterface
from bluezoo.utils import (
    BluetoothAddress,
    BluetoothUUID,
    create_background_task,
    dbus_method_async_except_logging,
)

_original_export = bluezoo.BluezMockService.export_object
_original_disconnect = Device.disconnect
_original_sync = Device.properties_sync


def export_object(self: Any, path: str, obj: Any) -> None:
    by_path: dict[str, Any] = self.__dict__.setdefault("_paths", {})
    old = by_path.pop(path, None)
    if old is not None and old in self.manager_export_handles:
        self.remove_object(old)
    _original_export(self, path, obj)
    by_path[path] = obj


async def disconnect(self: Any, uuid: str | None = None) -> None:
    await _original_disconnect(self, uuid)
    # BlueZoo's `peer` is a fresh object when the other side connected: the one the other
    # adapter exports is found by path (the other adapter's path + this adapter's address).
    other = None
    if self.adapter is not None:
        path = "%s/dev_%s" % (
            self.peer_adapter.get_object_path(),
            str(self.adapter.address).replace(":", "_"),
        )
        other = self.peer_adapter.devices.get(path)
    if other is not None and other.connected:
        await other.Connected.set_async(False)
    for device in (self, self.peer, other):
        if device is not None:
            await device.ServicesResolved.set_async(False)


async def properties_sync(self: Any, device: Any) -> None:
    await _original_sync(self, device)
    if device.service_data:
        await self.ServiceData.set_async(device.service_data)


class PerDeviceAcquire(GattCharacteristicClientLink):
    """A characteristic as one connected device sees it, with its own acquired sockets."""

    def _options(self) -> dict[str, tuple[str, Any]]:
        return {
            "device": ("o", self.service.device.peer.get_object_path()),
            "mtu": ("q", self.mtu),
            "link": ("s", self.link),
        }

    @sdbus.dbus_method_async_override()
    @dbus_method_async_except_logging
    async def WriteValue(self, value: bytes, options: dict[str, tuple[str, Any]]) -> None:
        if self.client.WriteAcquired.get() is None:  # the server offers no AcquireWrite
            await self.client.WriteValue(value, {**options, **self._options()})
            return
        if self.f_write is None:
            fd, self.mtu = await self.client.AcquireWrite(self._options())
            self.f_write = open(os.dup(fd), "wb", buffering=0)  # noqa: SIM115
        self.f_write.write(value)

    @sdbus.dbus_method_async_override()
    @dbus_method_async_except_logging
    async def AcquireWrite(self, options: dict[str, tuple[str, Any]]) -> tuple[int, int]:
        fd, mtu = await self.client.AcquireWrite({**options, **self._options()})
        return fd, mtu

    @sdbus.dbus_method_async_override()
    @dbus_method_async_except_logging
    async def AcquireNotify(self, options: dict[str, tuple[str, Any]]) -> tuple[int, int]:
        fd, mtu = await self.client.AcquireNotify({**options, **self._options()})
        return fd, mtu

    @sdbus.dbus_method_async_override()
    @dbus_method_async_except_logging
    async def StartNotify(self) -> None:
        if self.client.NotifyAcquired.get() is None:  # the server offers no AcquireNotify

            async def on_properties_changed(properties: dict[str, Any]) -> None:
                if "Value" in properties:
                    await self.Value.set_async(properties["Value"])

            self.client_props_changed_subscription = events.subscribe(
                "properties:changed:%d" % id(self.client), on_properties_changed
            )
            await self.client.StartNotify()
            return
        if self.f_read is not None:
            return
        fd, self.mtu = await self.client.AcquireNotify(self._options())
        self.f_read = open(os.dup(fd), "r+b", buffering=0)  # noqa: SIM115
        loop = asyncio.get_running_loop()

        def readable() -> None:
            data = self.f_read.read(self.mtu) if self.f_read is not None else b""
            if data:
                create_background_task(self.Value.set_async(data))
            elif self.f_read is not None:
                loop.remove_reader(self.f_read)
                self.f_read.close()
                self.f_read = None

        loop.add_reader(self.f_read, readable)


_original_add_device = Adapter.add_device


async def add_device_with_scan_response(self: Any, device: Any) -> None:
    if device.is_le and device.peer_adapter.advertisements:
        adv = next(iter(device.peer_adapter.advertisements.values()))
        extra = [BluetoothUUID(u) for u in adv.ScanResponseServiceUUIDs.get([])]
        device.uuids = list(dict.fromkeys([*device.uuids, *extra]))
    await _original_add_device(self, device)


CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"
_original_device_init = Device.__init__


def device_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_device_init(self, *args, **kwargs)
    if not self.advertising_flags:
        self.advertising_flags = b"\x06"


class Cccd(GattDescriptorInterface):
    """The CCC descriptor bluetoothd adds under a notify/indicate characteristic."""

    def __init__(self, characteristic: Any) -> None:
        super().__init__()
        self.characteristic = characteristic
        self.handle = (int(characteristic.client.Handle.get()) + 0x100) & 0xFFFF

    def get_object_path(self) -> str:
        return "%s/desc%04x" % (self.characteristic.get_object_path(), self.handle)

    @sdbus.dbus_method_async_override()
    async def ReadValue(self, options: dict[str, tuple[str, Any]]) -> bytes:
        return b"\x00\x00"

    @sdbus.dbus_method_async_override()
    async def WriteValue(self, value: bytes, options: dict[str, tuple[str, Any]]) -> None:
        return None

    @sdbus.dbus_property_async_override()
    def UUID(self) -> str:
        return CCCD_UUID

    @sdbus.dbus_property_async_override()
    def Characteristic(self) -> str:
        return str(self.characteristic.get_object_path())

    @sdbus.dbus_property_async_override()
    def Value(self) -> bytes:
        return b"\x00\x00"

    @sdbus.dbus_property_async_override()
    def Flags(self) -> list[str]:
        return ["read", "write"]

    @sdbus.dbus_property_async_override()
    def Handle(self) -> int:
        return self.handle


def export_with_cccd(self: Any, path: str, obj: Any) -> None:
    export_object(self, path, obj)
    if isinstance(obj, GattCharacteristicClientLink):
        flags = obj.client.Flags.get([])
        if "notify" in flags or "indicate" in flags:
            cccd = Cccd(obj)
            export_object(self, cccd.get_object_path(), cccd)


def main() -> None:
    browser = sys.argv[1:2] == ["--browser"]
    addresses = sys.argv[2:] if browser else sys.argv[1:]
    if browser:
        Device.__init__ = device_init  # type: ignore[method-assign]
        Adapter.add_device = add_device_with_scan_response  # type: ignore[method-assign]
    bluezoo.BluezMockService.export_object = (  # type: ignore[method-assign]
        export_with_cccd if browser else export_object
    )
    Device.disconnect = disconnect  # type: ignore[method-assign]
    Device.properties_sync = properties_sync  # type: ignore[method-assign]
    bluezoo_device.GattCharacteristicClientLink = PerDeviceAcquire  # type: ignore[misc]
    debug = os.environ.get("WS_BLUEZOO_DEBUG")
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
    loop = asyncio.new_event_loop()
    adapters = [BluetoothAddress(a) for a in addresses]
    loop.run_until_complete(bluezoo.startup("system", adapters, True, 1))
    print("ready", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
