# Portable session layer (L0): session messages, state table, framing, fragmentation.
