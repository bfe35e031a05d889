# Crypto: the portable suite interface and key schedule (L0) and the PyNaCl backend (_nacl, L1).
# This __init__ imports nothing, so importing an L0 submodule never pulls in PyNaCl.
