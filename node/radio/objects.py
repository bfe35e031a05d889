"""The D-Bus objects the relay exports to BlueZ: GATT service and characteristics, advertisement,
pairing agent (dbus-fast ServiceInterfaces; docs/ble.md explains every flag).

These classes hold no policy: each forwards what BlueZ asks to a `GattHandler` (the peripheral),
so the object tree is dumb and the decisions live in one place. The tree, under the application
path, is what `GattManager1.RegisterApplication` reads through ObjectManager.GetManagedObjects
(dbus-fast answers that for every exported subtree):

    APP                      (ObjectManager)
    APP/service0             org.bluez.GattService1       SERVICE_UUID, primary
    APP/service0/char0       org.bluez.GattCharacteristic1  DATA_IN  write, write-without-response
    APP/service0/char1       org.bluez.GattCharacteristic1  DATA_OUT notify
    APP/service0/char2       org.bluez.GattCharacteristic1  INFO     read

The Acquire variants add the WriteAcquired / NotifyAcquired properties and the AcquireWrite /
AcquireNotify methods: BlueZ decides by the *presence* of the property whether to hand the
application a socket instead of one D-Bus call per packet.
"""

# dbus-fast reads each D-Bus signature from the annotation (typing.Annotated with DBusSignature),
# evaluated at class creation: no `from __future__ import annotations` here. Method and property
# names are BlueZ's (CamelCase).
# ruff: noqa: N802

from typing import Annotated, NoReturn, Protocol

from dbus_fast import Variant
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
    DBusUInt32,
)
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_property, method

from node.radio.errors import INVALID_OFFSET, REJECTED, BluezError
from node.radio.profile import DATA_IN_UUID, DATA_OUT_UUID, INFO_UUID, SERVICE_UUID

Options = dict[str, Variant]
DBusStrList = Annotated[list[str], DBusSignature("as")]
FdAndMtu = Annotated[list[int], DBusSignature("hq")]


class GattHandler(Protocol):
    """What the characteristics ask of the peripheral."""

    def read_info(self, options: Options) -> bytes: ...

    def write(self, value: bytes, options: Options) -> None: ...

    def acquire_write(self, options: Options) -> tuple[int, int]: ...

    def acquire_notify(self, options: Options) -> tuple[int, int]: ...

    def notifying(self, on: bool) -> None: ...


class GattService(ServiceInterface):
    """org.bluez.GattService1: our one primary service."""

    def __init__(self) -> None:
        super().__init__("org.bluez.GattService1")

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return SERVICE_UUID

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:
        return True


class _Characteristic(ServiceInterface):
    """The properties every characteristic of ours has."""

    uuid = ""
    flags: list[str] = []

    def __init__(self, service_path: str, handler: GattHandler, mtu: int) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self._service_path = service_path
        self._handler = handler
        self._mtu = mtu

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:
        return self._service_path

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrList:
        return list(self.flags)

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> DBusUInt16:
        # The largest ATT MTU the relay uses ([radio.ble] max_mtu). Real bluetoothd negotiates
        # the MTU itself (main.conf ExchangeMTU); BlueZoo takes this as the link's MTU.
        return self._mtu


class InfoCharacteristic(_Characteristic):
    """INFO (read): version, this central's link id, maximum frame, rotating token."""

    uuid = INFO_UUID
    flags = ["read"]

    @method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        value = self._handler.read_info(options)
        offset = options["offset"].value if "offset" in options else 0
        if offset > len(value):
            raise BluezError(
                INVALID_OFFSET, "offset %d past the %d-byte value" % (offset, len(value))
            )
        return value[offset:]


class DataInCharacteristic(_Characteristic):
    """DATA_IN (write, write-without-response): the central's fragments, one per write."""

    uuid = DATA_IN_UUID
    flags = ["write", "write-without-response"]

    @method()
    def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        self._handler.write(bytes(value), options)


class DataInAcquire(DataInCharacteristic):
    """DATA_IN with AcquireWrite: bluetoothd writes packets into a socket of ours instead."""

    def __init__(self, service_path: str, handler: GattHandler, mtu: int) -> None:
        super().__init__(service_path, handler, mtu)
        self.acquired = False

    @dbus_property(access=PropertyAccess.READ)
    def WriteAcquired(self) -> DBusBool:
        return self.acquired

    @method()
    def AcquireWrite(self, options: DBusDict) -> FdAndMtu:
        fd, mtu = self._handler.acquire_write(options)
        self.acquired = True
        self.emit_properties_changed({"WriteAcquired": True})
        return [fd, mtu]

    def released(self) -> None:
        """The socket is gone (disconnect, restart): BlueZ must acquire again."""
        if self.acquired:
            self.acquired = False
            self.emit_properties_changed({"WriteAcquired": False})


class DataOutCharacteristic(_Characteristic):
    """DATA_OUT (notify): the relay's fragments, as PropertiesChanged(Value) notifications."""

    uuid = DATA_OUT_UUID
    flags = ["notify"]

    def __init__(self, service_path: str, handler: GattHandler, mtu: int) -> None:
        super().__init__(service_path, handler, mtu)
        self.value = b""

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self.value

    def notify(self, packet: bytes) -> None:
        """Send one notification to every subscribed central (BlueZ's PropertiesChanged path)."""
        self.value = packet
        self.emit_properties_changed({"Value": packet})

    @method()
    def StartNotify(self) -> None:
        self._handler.notifying(True)

    @method()
    def StopNotify(self) -> None:
        self._handler.notifying(False)

    @method()
    def Confirm(self) -> None:
        """Indication confirmations: we never indicate; present because BlueZoo calls it."""


class DataOutAcquire(DataOutCharacteristic):
    """DATA_OUT with AcquireNotify: notifications are written into a socket of ours."""

    def __init__(self, service_path: str, handler: GattHandler, mtu: int) -> None:
        super().__init__(service_path, handler, mtu)
        self.acquired = False

    @dbus_property(access=PropertyAccess.READ)
    def NotifyAcquired(self) -> DBusBool:
        return self.acquired

    @method()
    def AcquireNotify(self, options: DBusDict) -> FdAndMtu:
        fd, mtu = self._handler.acquire_notify(options)
        self.acquired = True
        self.emit_properties_changed({"NotifyAcquired": True})
        return [fd, mtu]

    def released(self) -> None:
        """The socket is gone (disconnect, restart): BlueZ must acquire again."""
        if self.acquired:
            self.acquired = False
            self.emit_properties_changed({"NotifyAcquired": False})


class Advertisement(ServiceInterface):
    """org.bluez.LEAdvertisement1: connectable, the service UUID and the rotating token.

    No local name, appearance, TX power or manufacturer data: nothing fixed that would let a
    stranger follow the relay from one token period to the next (docs/security.md).

    Args:
        token: the current period's token (service data under SERVICE_UUID).
        uuids_in_scan_response: legacy advertising has 31 bytes: flags (3) + service data with a
            128-bit UUID and an 8-byte token (26) fill it, so the UUID list goes to the scan
            response unless the controller advertises extended data.
        interval_ms: advertising interval (MinInterval = MaxInterval).
    """

    def __init__(self, token: bytes, uuids_in_scan_response: bool, interval_ms: int) -> None:
        super().__init__("org.bluez.LEAdvertisement1")
        self.token = token
        self._scan_response = uuids_in_scan_response
        self._interval_ms = interval_ms
        self.released = 0

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> DBusStr:
        return "peripheral"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> DBusStrList:
        return [] if self._scan_response else [SERVICE_UUID]

    @dbus_property(access=PropertyAccess.READ)
    def ScanResponseServiceUUIDs(self) -> DBusStrList:
        return [SERVICE_UUID] if self._scan_response else []

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> DBusDict:
        return {SERVICE_UUID: Variant("ay", self.token)}

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def MinInterval(self) -> DBusUInt32:
        return self._interval_ms

    @dbus_property(access=PropertyAccess.READ)
    def MaxInterval(self) -> DBusUInt32:
        return self._interval_ms

    @method()
    def Release(self) -> None:
        """bluetoothd dropped the advertisement (counted; the peripheral registers it again)."""
        self.released += 1


class PairingAgent(ServiceInterface):
    """org.bluez.Agent1 with capability NoInputNoOutput: never accepts a PIN or passkey.

    The session authenticates the relay and pairs phones itself (Noise + SPAKE2, DESIGN.md §4),
    so BLE bonding adds nothing; a fixed PIN would be a shared secret printed on every box. A
    central may still get an unauthenticated ("Just Works") encrypted link, which costs nothing.
    """

    def __init__(self) -> None:
        super().__init__("org.bluez.Agent1")
        self.refused = 0

    def _refuse(self, what: str) -> NoReturn:
        self.refused += 1
        raise BluezError(REJECTED, "%s refused: Waystation pairs in its own session" % what)

    @method()
    def Release(self) -> None:
        """bluetoothd unregistered the agent."""

    @method()
    def RequestPinCode(self, device: DBusObjectPath) -> DBusStr:
        return self._refuse("PIN code")

    @method()
    def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        return self._refuse("passkey")

    @method()
    def DisplayPinCode(self, device: DBusObjectPath, pincode: DBusStr) -> None:
        self._refuse("PIN code display")

    @method()
    def DisplayPasskey(
        self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16
    ) -> None:
        """Nothing to display on: ignored (the pairing it belongs to is refused anyway)."""

    @method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> None:
        self._refuse("numeric comparison")

    @method()
    def RequestAuthorization(self, device: DBusObjectPath) -> None:
        """Just Works: an unauthenticated encrypted link is allowed (no secret involved)."""

    @method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> None:
        self._refuse("service %s" % uuid)

    @method()
    def Cancel(self) -> None:
        """bluetoothd cancelled a request."""
