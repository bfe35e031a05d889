"""LAN transport: TCP and zeroconf (L1)."""
