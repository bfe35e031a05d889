"""SQLite store (L1)."""
