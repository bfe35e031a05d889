"""Run BlueZoo (a BlueZ mock owning org.bluez) for the BLE tests, with four local fixes.

BlueZoo 1.0.2 (appliance.md §5.6, §5.6b) needs these to behave like bluetoothd where our tests
look; each fix is a small wrapper around one BlueZoo method, applied before it starts:

1. Reconnecting to a device failed (sd_bus error 17): the GATT objects of the first connection
   stay exported at the same paths. `export_object` now replaces an object already at the path.
2. `ServicesResolved` stayed true after a disconnect; bluetoothd resets it to false, and bleak
   waits for it on the next connect. `disconnect` now resets it on both sides.
3. A device's advertisement reached a scanner once: a scan tick that found nothing new emitted
   no signal, so a scanner that subscribed a moment late never saw it. Real radios report
   every advertisement received (RSSI changes each time); `properties_sync` now re-announces
   the service data on every scan tick.
4. Readiness: prints "ready" on stdout once the adapters exist, so the fixture waits on that
   line (an event with a deadline) instead of polling the bus.

Usage: python bluezoo_run.py ADDRESS [ADDRESS ...]   (DBUS_SYSTEM_BUS_ADDRESS names the bus)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from bluezoo import bluezoo
from bluezoo.device import Device
from bluezoo.utils import BluetoothAddress

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
    for device in (self, self.peer):
        if device is not None:
            await device.ServicesResolved.set_async(False)


async def properties_sync(self: Any, device: Any) -> None:
    await _original_sync(self, device)
    if device.service_data:
        await self.ServiceData.set_async(device.service_data)


def main() -> None:
    bluezoo.BluezMockService.export_object = export_object  # type: ignore[method-assign]
    Device.disconnect = disconnect  # type: ignore[method-assign]
    Device.properties_sync = properties_sync  # type: ignore[method-assign]
    logging.basicConfig(level=logging.DEBUG if os.environ.get("WS_BLUEZOO_DEBUG") else logging.WARNING)
    loop = asyncio.new_event_loop()
    adapters = [BluetoothAddress(a) for a in sys.argv[1:]]
    loop.run_until_complete(bluezoo.startup("system", adapters, True, 1))
    print("ready", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
