# Set-difference sketches for reconciliation (L0, portable): an IBLT and a difference estimator.
#
# Theory of operation
# -------------------
# An *item* is a key (time, digest) seen as (time, p) where p is the first ID_BYTES (16) bytes of
# the digest read little-endian. Everything below is derived from p, so a side that decodes an
# item it does not hold still knows where it lives in every table and can check it; the side that
# holds it finds the full key by rank((time, p-bytes || zeros)) in O(log n).
#
# IBLT (invertible Bloom lookup table), partitioned into TABLES (3) sub-tables of m cells each,
# m a divisor of FULL (720). Item x goes to cell index(x, j) = (20 bits of p at 20*j) mod m of
# sub-table j. A cell holds (count, xor of times, xor of p, xor of check(time, p)). KeySet keeps
# the cells at m = FULL up to date on add/discard; since m divides FULL, the table for any smaller
# m is a fold (cell i of the small table = sum of the big cells i, i+m, i+2m, ...), O(FULL) work,
# never a scan of the set. Subtracting the peer's table (counts mod 256, xors) leaves the symmetric
# difference; peeling pure cells (count +-1 mod 256 and check matches) lists it: count +1 = an item
# only the peer has, -1 = one only we have. Decoding needs about 1.3-2 cells per difference.
#
# Estimator (how many differences?): levels 0..L-1 of EST_CELLS (16) cells each; item x belongs to
# levels 0..z where z = trailing zero bits of p >> 64 (so level l samples 2^-l of the set), in cell
# (p >> 60) & 15 of each. A cell holds (count, xor of p); its 4-bit fingerprint is compared across
# sides. A level-l cell differs with probability 1 - (1 - 2^-l / 16)^d (seen 15/16 of the time);
# the d maximising the likelihood of the observed mismatches over all levels is the estimate
# (10th-90th percentile within 0.6-1.7x of d for d >= 10, measured).
#
# The check is a multiplicative hash, not a MAC: IDs are digests of signed entries, so crafting
# colliding items costs grinding sha256 and at worst stalls one group's own sync (then the caller
# falls back to range reconciliation).

import math

from node._compat import TYPE_CHECKING

if TYPE_CHECKING:
    Item = tuple[int, int]  # (time, p)

ID_BYTES = 16
MASK128 = (1 << 128) - 1
TABLES = 3
FULL = 720  # cells per sub-table kept by KeySet; any divisor of it can be sent
EST_LEVELS = 32
EST_CELLS = 16
EST_BITS = 4  # fingerprint bits per estimator cell (two cells per byte)
CHECK_BYTES = 4
_MIX = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd 128-bit multiplier
_TIME_MIX = 0xD6E8FEB86659FD93
_SEEN = 1.0 - 1.0 / (1 << EST_BITS)

# sizes that can be sent (divisors of FULL), ascending
SIZES = [m for m in range(1, FULL + 1) if FULL % m == 0]


def check(time: int, p: int) -> int:
    """4-byte check of an item (not XOR-linear, so a mixed cell fails it)."""
    x = p ^ ((time * _TIME_MIX) & MASK128)
    return ((x * _MIX) >> 96) & 0xFFFFFFFF


def cell_index(p: int, table: int, m: int) -> int:
    """Flat index of the item's cell in sub-table `table` of a sketch with m cells per table."""
    return table * m + ((p >> (20 * table)) & 0xFFFFF) % m


def est_slot(p: int) -> "tuple[int, int]":
    """(highest level, cell) of an item in the estimator."""
    hi = p >> 64
    level = 0
    if hi == 0:
        level = EST_LEVELS - 1
    else:
        while not hi & 1 and level < EST_LEVELS - 1:
            hi >>= 1
            level += 1
    return level, (p >> 60) & (EST_CELLS - 1)


def est_fingerprint(count: int, xor: int) -> int:
    return (((xor ^ count) * _MIX) >> 124) & 0xF


def estimate(levels: int, mismatched: "list[int]") -> int:
    """Maximum-likelihood number of differences from per-level mismatch counts (0..EST_CELLS)."""
    if not any(mismatched):
        return 0
    best = 1
    best_ll = None
    d = 1.0
    limit = float(EST_CELLS << levels)
    while d <= limit:
        ll = 0.0
        for level in range(levels):
            share = 1.0 / (EST_CELLS << level)
            q = 1.0 - math.exp(d * math.log(1.0 - share)) if share < 1.0 else 1.0
            q = q * _SEEN  # a differing cell shows with probability 15/16 (4-bit fingerprints)
            q = min(max(q, 1e-9), 1.0 - 1e-9)
            hits = mismatched[level]
            ll += hits * math.log(q) + (EST_CELLS - hits) * math.log(1.0 - q)
        if best_ll is None or ll > best_ll:
            best_ll = ll
            best = int(d + 0.5)
        d = d * 1.15 + 1.0
    return best


def size_for(cells: int) -> int:
    """The smallest sendable m with TABLES * m >= cells (FULL if none)."""
    for m in SIZES:
        if TABLES * m >= cells:
            return m
    return FULL


class Table:
    """An IBLT of TABLES x m cells; counts are exact ints here, mod 256 on the wire."""

    __slots__ = ("count", "cxor", "m", "pxor", "txor")

    def __init__(self, m: int) -> None:
        size = TABLES * m
        self.m = m
        self.count = [0] * size
        self.txor = [0] * size
        self.pxor = [0] * size
        self.cxor = [0] * size

    def toggle(self, time: int, p: int, sign: int) -> None:
        """Add (sign 1) or remove (sign -1) one item."""
        c = check(time, p)
        m = self.m
        for table in range(TABLES):
            i = table * m + ((p >> (20 * table)) & 0xFFFFF) % m
            self.count[i] += sign
            self.txor[i] ^= time
            self.pxor[i] ^= p
            self.cxor[i] ^= c

    def fold(self, m: int) -> "Table":
        """The same set in a table of m cells per sub-table (m must divide self.m)."""
        out = Table(m)
        big = self.m
        for table in range(TABLES):
            src = table * big
            dst = table * m
            for i in range(big):
                j = dst + i % m
                out.count[j] += self.count[src + i]
                out.txor[j] ^= self.txor[src + i]
                out.pxor[j] ^= self.pxor[src + i]
                out.cxor[j] ^= self.cxor[src + i]
        return out


def peel(
    m: int, count: "list[int]", txor: "list[int]", pxor: "list[int]", cxor: "list[int]"
) -> "tuple[list[Item], list[Item]] | None":
    """Decode a difference table (counts mod 256), in place.

    Returns (items with count +1, items with count -1), or None if it does not fully decode.
    """
    size = TABLES * m
    plus: list[Item] = []
    minus: list[Item] = []
    stack = [i for i in range(size) if count[i] == 1 or count[i] == 255]
    budget = 2 * size
    while stack:
        i = stack.pop()
        c = count[i]
        if c != 1 and c != 255:
            continue
        time = txor[i]
        p = pxor[i]
        h = check(time, p)
        if cxor[i] != h or cell_index(p, i // m, m) != i:
            continue
        budget -= 1
        if budget < 0:
            return None
        if c == 1:
            plus.append((time, p))
        else:
            minus.append((time, p))
        for table in range(TABLES):
            j = cell_index(p, table, m)
            count[j] = (count[j] - (1 if c == 1 else -1)) & 0xFF
            txor[j] ^= time
            pxor[j] ^= p
            cxor[j] ^= h
            if count[j] == 1 or count[j] == 255:
                stack.append(j)
    for i in range(size):
        if count[i] or txor[i] or pxor[i] or cxor[i]:
            return None
    return plus, minus
