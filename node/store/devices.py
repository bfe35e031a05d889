"""Paired devices and relays in the store (L1): the `devices` and `device_logs` tables (schema v3).

A device is a Noise static key the relay pinned by pairing (node/proto/pairing.py): a phone
(`kind` "device") or another relay (`kind` "relay"), with the operator's name for it, a byte quota
for each log it registers, and when it was paired. `device_logs` remembers which logs a device
registered, so revoking it unpins exactly those (a log another paired device also registered
stays pinned). Rows read back are checked like every other row of the store (StoreError).

The tables live in the store's database and its one transaction; the caller commits (the daemon
commits at once after a pairing or an operator's change, so they survive a power cut).
"""

from __future__ import annotations

from dataclasses import dataclass

from node.errors import StoreError
from node.store.schema import int_col
from node.store.sqlite import SQLiteStore

KINDS = ("device", "relay")
MAX_NAME = 64


@dataclass(frozen=True)
class Device:
    """One pinned peer.

    Attributes:
        static_key: its Noise static X25519 public key (32 bytes).
        name: the operator's name for it.
        kind: "device" (a phone) or "relay".
        quota: bytes each log it registers may hold.
        created: when it paired (Unix seconds).
    """

    static_key: bytes
    name: str
    kind: str
    quota: int
    created: int


def _device(row: tuple[object, ...]) -> Device:
    key, name, kind, quota, created = row
    if not isinstance(key, bytes) or len(key) != 32 or not isinstance(name, str):
        raise StoreError("store: a devices row has a bad key or name")
    if kind not in KINDS:
        raise StoreError("store: a devices row has kind %r" % (kind,))
    return Device(key, name, str(kind), int_col(quota, "device quota"), int_col(created, "created"))


class DeviceBook:
    """The paired devices of one SQLiteStore.

    Args:
        store: the open store (its connection and transaction are shared).
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def add(self, device: Device) -> None:
        """Pin a device (a key paired again replaces its old row; its logs stay registered)."""
        with self.store._guard("add device", write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO devices (static_key, name, kind, quota, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (device.static_key, device.name, device.kind, device.quota, device.created),
            )

    def get(self, static_key: bytes) -> Device | None:
        """The device pinned under this key, or None."""
        with self.store._guard("read device") as conn:
            row = conn.execute(
                "SELECT static_key, name, kind, quota, created FROM devices WHERE static_key = ?",
                (static_key,),
            ).fetchone()
        return None if row is None else _device(row)

    def all(self) -> list[Device]:
        """Every pinned device, oldest first."""
        with self.store._guard("list devices") as conn:
            rows = conn.execute(
                "SELECT static_key, name, kind, quota, created FROM devices ORDER BY created, name"
            ).fetchall()
        return [_device(row) for row in rows]

    def update(self, static_key: bytes, name: str | None = None, quota: int | None = None) -> bool:
        """Rename a device or change its quota; False if no such device."""
        with self.store._guard("update device", write=True) as conn:
            if name is not None:
                conn.execute("UPDATE devices SET name = ? WHERE static_key = ?", (name, static_key))
            if quota is not None:
                conn.execute(
                    "UPDATE devices SET quota = ? WHERE static_key = ?", (quota, static_key)
                )
            changed = conn.execute("SELECT changes()").fetchone()[0]
        return int_col(changed, "changes") > 0

    def remove(self, static_key: bytes) -> list[str]:
        """Forget a device; returns the logs only it had registered (the caller unpins them)."""
        with self.store._guard("remove device", write=True) as conn:
            logs = [
                str(log_id)
                for (log_id,) in conn.execute(
                    "SELECT log_id FROM device_logs WHERE static_key = ? AND log_id NOT IN"
                    " (SELECT log_id FROM device_logs WHERE static_key != ?)",
                    (static_key, static_key),
                )
            ]
            conn.execute("DELETE FROM device_logs WHERE static_key = ?", (static_key,))
            conn.execute("DELETE FROM devices WHERE static_key = ?", (static_key,))
        return logs

    def register_log(self, static_key: bytes, log_id: str) -> None:
        """Remember that this device registered this log."""
        with self.store._guard("register device log", write=True) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO device_logs (static_key, log_id) VALUES (?, ?)",
                (static_key, log_id),
            )

    def logs_of(self, static_key: bytes) -> list[str]:
        """The logs this device registered."""
        with self.store._guard("read device logs") as conn:
            return sorted(
                str(log_id)
                for (log_id,) in conn.execute(
                    "SELECT log_id FROM device_logs WHERE static_key = ?", (static_key,)
                )
            )
