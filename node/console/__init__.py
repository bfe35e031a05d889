# The management console: grammar, line editor and shell (L0, commands/editor/shell) and the
# serial transport (L1, serial). This __init__ imports nothing, so L0 never pulls in pyserial.
