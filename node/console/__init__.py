# Serial console: portable command grammar (commands.py, L0) and the tty transport (serial.py, L1).
