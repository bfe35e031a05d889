"""BLE radio through BlueZ D-Bus (L1)."""
