"""A private system bus with BlueZoo on it, for the BLE tests (appliance.md §5.6).

`PrivateBluez` starts a `dbus-daemon` of its own (session policy, socket in the test's temporary
directory), points DBUS_SYSTEM_BUS_ADDRESS at it for this process (dbus-fast and bleak read it),
and runs BlueZoo with N emulated adapters (hci0, hci1, ...) as a child process. `restart_bluez`
kills BlueZoo and starts a new one on the same bus, as a bluetoothd restart would. Every process
is killed by its saved PID at the end; waits are on a line the child prints, with a deadline.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

RUNNER = str(Path(__file__).with_name("bluezoo_run.py"))
READY_DEADLINE_S = 20.0


def _read_line(proc: subprocess.Popen[str], what: str) -> str:
    """The child's first stdout line, within READY_DEADLINE_S."""
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("%s did not start within %.0f s" % (what, READY_DEADLINE_S))
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("%s exited (status %s)" % (what, proc.wait()))
            return line.strip()


class PrivateBluez:
    """dbus-daemon + BlueZoo with `adapters` emulated LE adapters."""

    def __init__(self, tmp: Path, adapters: int = 2) -> None:
        self.tmp = tmp
        self.addresses = ["00:57:53:00:00:%02X" % i for i in range(adapters)]
        self.bus_address = ""
        self._dbus: subprocess.Popen[str] | None = None
        self._bluez: subprocess.Popen[str] | None = None
        self._saved_env: str | None = None

    def start(self) -> PrivateBluez:
        self._dbus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1",
             "--address=unix:path=%s" % (self.tmp / "system_bus_socket")],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.bus_address = _read_line(self._dbus, "dbus-daemon")
        self._saved_env = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_address
        self.start_bluez()
        return self

    def start_bluez(self) -> None:
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        self._bluez = subprocess.Popen(
            [sys.executable, RUNNER, *self.addresses],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True,
        )  # fmt: skip
        line = _read_line(self._bluez, "bluezoo")
        if line != "ready":
            raise RuntimeError("bluezoo said %r" % line)

    def stop_bluez(self) -> None:
        if self._bluez is not None:
            self._bluez.kill()
            self._bluez.wait()
            assert self._bluez.stdout is not None
            self._bluez.stdout.close()
            self._bluez = None

    def restart_bluez(self) -> None:
        self.stop_bluez()
        self.start_bluez()

    async def call_bluezoo(self, member: str, signature: str, body: list[object]) -> None:
        """Call BlueZoo's control interface (org.bluezoo.Manager1: AddAdapter, RemoveAdapter)."""
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        try:
            reply = await bus.call(
                Message(
                    destination="org.bluez", path="/org/bluezoo",
                    interface="org.bluezoo.Manager1", member=member,
                    signature=signature, body=body,
                )
            )  # fmt: skip
            assert reply is not None and reply.message_type != MessageType.ERROR, reply
        finally:
            bus.disconnect()

    def stop(self) -> None:
        self.stop_bluez()
        if self._dbus is not None:
            self._dbus.kill()
            self._dbus.wait()
            assert self._dbus.stdout is not None
            self._dbus.stdout.close()
            self._dbus = None
        if self._saved_env is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self._saved_env
