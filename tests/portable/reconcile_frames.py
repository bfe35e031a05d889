# The section layout of a reconcile frame (docs/protocol.md, "Reconciliation"), walked without
# node.sync.reconcile, for tests that cut frames: where each section ends. Portable (MicroPython).

OPEN, AHEAD, CUTS, RANGES, SKETCH, DIFF = 1, 2, 3, 4, 5, 6
SKIP, FP, IDS, FULLIDS, NEED = 0, 1, 2, 3, 4
FP_BYTES = 16
SKETCH_CELL_FIXED = 1 + 16 + 4  # count, 16 B xor of p, 4 B xor of checks (+ uvarint xor of times)
DIFF_ID_BYTES = 16


class Walker:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 2

    def uvarint(self) -> int:
        value = 0
        shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError("truncated")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def bound(self) -> None:
        if self.uvarint():
            self.take(self.uvarint())

    def section(self) -> None:
        self.uvarint()  # log index
        op = self.take(1)[0]
        if op == OPEN:
            self.uvarint()
            self.take(FP_BYTES)
        elif op == AHEAD:
            self.uvarint()
        elif op == CUTS:
            self.uvarint()
            self.take(FP_BYTES)
            self.take(8 * self.take(1)[0])
            self.take(8 * self.take(1)[0])
        elif op == RANGES:
            count = self.uvarint()
            self.bound()
            for _ in range(count):
                self.bound()
                self.range_payload(self.take(1)[0])
        elif op == SKETCH:
            self.uvarint()
            self.uvarint()
            for _ in range(self.uvarint()):
                self.take(1)
                self.uvarint()
                self.take(SKETCH_CELL_FIXED - 1)
        elif op == DIFF:
            self.uvarint()
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(DIFF_ID_BYTES)
        else:
            raise ValueError("unknown op %d" % op)

    def range_payload(self, mode: int) -> None:
        if mode == FP:
            self.take(FP_BYTES)
        elif mode == IDS:
            size = self.take(1)[0]
            self.take(size * self.uvarint())
        elif mode == FULLIDS:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(32)
        elif mode == NEED:
            self.take((self.uvarint() + 7) // 8)
        elif mode != SKIP:
            raise ValueError("unknown mode %d" % mode)


def section_ends(frame: bytes) -> "list[int]":
    """The offsets where the frame's sections end, in order; ValueError if it does not parse."""
    if len(frame) < 2:
        raise ValueError("no header")
    walker = Walker(frame)
    ends = []
    while walker.pos < len(frame):
        walker.section()
        ends.append(walker.pos)
    return ends


def is_final(frame: bytes) -> bool:
    return frame[1] & 1 == 1
