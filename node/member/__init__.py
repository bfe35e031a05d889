"""Member side of the protocol: accounts, groups, messages (CPython, uses L0)."""
