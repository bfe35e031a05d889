# Portable sync layer (L0): entries, DAG-CBOR, CIDs, log order, reconciliation.
