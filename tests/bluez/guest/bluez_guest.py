"""Helpers of the guest-side cases: BlueZ on the real system bus, waited on with deadlines.

Used inside the guest only (tests/bluez/guest/runner.py and cases_*.py); never on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

BLUEZ = "org.bluez"


def bluez_version() -> str:
    out = subprocess.run(
        ["/usr/libexec/bluetooth/bluetoothd", "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return out.stdout.strip()


def bluetoothd_pid() -> int:
    """bluetooth.service's main PID (0 when it is not running)."""
    out = subprocess.run(
        ["systemctl", "show", "-P", "MainPID", "bluetooth.service"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return int(out.stdout.strip() or 0)


def journal(lines: int = 40) -> str:
    """The last lines of this boot's journal for bluetoothd, the unit and the kernel."""
    out = subprocess.run(
        ["journalctl", "-b", "--no-pager", "-o", "short-monotonic", "-n", str(lines),
         "-u", "bluetooth.service", "-t", "kernel", "-t", "bluetoothd"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return out.stdout


async def call(
    bus: MessageBus, dest: str, path: str, iface: str, member: str, sig: str = "", body: Any = ()
) -> list[Any]:
    reply = await bus.call(
        Message(
            destination=dest,
            path=path,
            interface=iface,
            member=member,
            signature=sig,
            body=list(body),
        )
    )
    assert reply is not None
    if reply.message_type == MessageType.ERROR:
        raise RuntimeError(
            "%s.%s on %s: %s %s" % (iface, member, path, reply.error_name, reply.body)
        )
    return list(reply.body)


async def managed_objects(bus: MessageBus) -> dict[str, dict[str, dict[str, Any]]]:
    body = await call(bus, BLUEZ, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
    return {
        path: {iface: {k: v.value for k, v in props.items()} for iface, props in ifaces.items()}
        for path, ifaces in body[0].items()
    }


async def adapter_property(adapter: str, name: str) -> Any:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        body = await call(
            bus,
            BLUEZ,
            "/org/bluez/" + adapter,
            "org.freedesktop.DBus.Properties",
            "Get",
            "ss",
            (
                "org.bluez.LEAdvertisingManager1"
                if name.endswith("Instances")
                else "org.bluez.Adapter1",
                name,
            ),
        )
        return body[0].value
    finally:
        bus.disconnect()


async def wait_adapters(names: tuple[str, ...], deadline_s: float) -> dict[str, dict[str, Any]]:
    """Wait until bluetoothd owns org.bluez and shows every adapter in `names`, powered.

    Subscribes to BlueZ's signals first and then looks, so nothing that happens in between is
    missed; every signal makes it look again. Returns each adapter's Adapter1 properties.
    """
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    changed = asyncio.Event()

    def on_message(msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL:
            changed.set()

    bus.add_message_handler(on_message)
    try:
        for rule in (
            "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
            "type='signal',sender='org.bluez'",
        ):
            await call(
                bus,
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                "s",
                (rule,),
            )
        found: dict[str, dict[str, Any]] = {}
        try:
            async with asyncio.timeout(deadline_s):
                while True:
                    changed.clear()
                    found = await _adapters(bus)
                    if all(found.get(name, {}).get("Powered") for name in names):
                        return {name: found[name] for name in names}
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(
                "adapters %s not all powered within %.0f s; bluetoothd shows %s"
                % (names, deadline_s, {n: a.get("Powered") for n, a in found.items()})
            ) from None
    finally:
        bus.disconnect()


async def _adapters(bus: MessageBus) -> dict[str, dict[str, Any]]:
    try:
        objects = await managed_objects(bus)
    except RuntimeError:  # org.bluez not there (yet): the next NameOwnerChanged wakes us
        return {}
    found = {}
    for path, ifaces in objects.items():
        if "org.bluez.Adapter1" in ifaces:
            found[path.rsplit("/", 1)[1]] = {
                k: v
                for k, v in ifaces["org.bluez.Adapter1"].items()
                if isinstance(v, (str, int, bool))
            }
    return found


@dataclass
class BusCount:
    """Messages on the system bus between two unique names, seen by a bus monitor."""

    names: set[str] = field(default_factory=set)
    messages: int = 0
    by_member: dict[str, int] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def bus_monitor(
    *well_known_or_unique: str, broadcast_under: str = "/"
) -> AsyncIterator[BusCount]:
    """Counts every D-Bus message exchanged among the given names while the block runs.

    Uses org.freedesktop.DBus.Monitoring.BecomeMonitor (root may do that on the system bus):
    the count includes signals such as PropertiesChanged and every method call and reply.
    A broadcast signal (no destination) counts only on a path under `broadcast_under`: the
    relay subscribes to its own adapter's signals, not to those of the phone's adapter (such as
    the PropertiesChanged of each notification a StartNotify phone receives).
    """
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    count = BusCount()
    for name in well_known_or_unique:
        if name.startswith(":"):
            count.names.add(name)
        else:
            owner = await call(
                bus,
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetNameOwner",
                "s",
                (name,),
            )
            count.names.add(owner[0])

    def on_message(msg: Message) -> bool:
        broadcast = msg.destination is None and (msg.path or "/").startswith(broadcast_under)
        if msg.sender in count.names and (msg.destination in count.names or broadcast):
            count.messages += 1
            key = str(msg.member or msg.message_type.name)
            count.by_member[key] = count.by_member.get(key, 0) + 1
        return True  # a monitor never answers anything

    await call(
        bus,
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus.Monitoring",
        "BecomeMonitor",
        "asu",
        ([], 0),
    )
    bus.add_message_handler(on_message)
    try:
        yield count
    finally:
        bus.disconnect()


async def disconnect_all(deadline_s: float) -> list[str]:
    """Disconnect every connected device on every adapter; returns the paths that were connected.

    Between cases: a connection a case left up (a link whose close did not reach bluetoothd)
    would otherwise meet the next case as "Device ... is already connected".
    """
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        objects = await managed_objects(bus)
        connected = [
            path
            for path, ifaces in objects.items()
            if ifaces.get("org.bluez.Device1", {}).get("Connected")
        ]
        async with asyncio.timeout(deadline_s):
            for path in connected:
                with contextlib.suppress(RuntimeError):
                    await call(bus, BLUEZ, path, "org.bluez.Device1", "Disconnect")
        return connected
    finally:
        bus.disconnect()
