"""The one place where foreign BLE errors (dbus-fast, bleak, OSError) become ours (DESIGN.md §5).

`translated(what)` wraps every call into BlueZ or bleak: whatever those libraries raise leaves as
LinkError with `cause` naming the foreign error (the D-Bus error name, e.g.
``org.bluez.Error.NotReady``, or the exception class), and a message saying what we were doing.
`BluezError` is the other direction: what our exported D-Bus methods raise to BlueZ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bleak.exc import BleakError
from dbus_fast.errors import DBusError

from node.errors import LinkError

# Errors our GATT objects and agent answer with (names from BlueZ's doc/org.bluez.*.rst).
FAILED = "org.bluez.Error.Failed"
NOT_PERMITTED = "org.bluez.Error.NotPermitted"
NOT_SUPPORTED = "org.bluez.Error.NotSupported"
INVALID_OFFSET = "org.bluez.Error.InvalidOffset"
REJECTED = "org.bluez.Error.Rejected"


class BluezError(DBusError):
    """An error our exported objects return to bluetoothd (dbus-fast sends it as the reply)."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(name, text)


def cause_of(exc: BaseException) -> str:
    """The short name of a foreign error: the D-Bus error name, else the exception class."""
    if isinstance(exc, DBusError):
        return str(exc.type)
    dbus_name = getattr(exc, "dbus_error", None)  # bleak's BleakDBusError
    if isinstance(dbus_name, str):
        return dbus_name
    return type(exc).__name__


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn D-Bus, bleak, OS and timeout errors raised inside into LinkError.

    Args:
        what: what we were doing, e.g. "register the GATT application on hci0".

    Raises:
        LinkError: with `cause` the foreign error's name.
    """
    try:
        yield
    except (DBusError, BleakError, OSError, EOFError, TimeoutError) as exc:
        raise LinkError("cannot %s: %s" % (what, exc or type(exc).__name__), cause_of(exc)) from exc


@contextlib.contextmanager
def already_there_is_fine() -> Iterator[None]:
    """BlueZ's AlreadyExists for something we register means it is registered: go on."""
    try:
        yield
    except LinkError as exc:
        if exc.cause != "org.bluez.Error.AlreadyExists":
            raise
