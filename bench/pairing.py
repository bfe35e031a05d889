"""Pairing benchmark: the CPU cost of one pairing exchange vs. the Noise XX handshake it runs in.

Usage (from the repository root):

    .venv/bin/python bench/pairing.py [--rounds N]

Times, in one process, best of N (default 50) each:

  * handshake: a full Noise XX handshake (both sides, node.crypto.noise with PyNaCl), the cost
    every session pays already (the reference);
  * pairing: both sides of the pairing exchange on top of it (node.proto.pairing with the
    `spake2` package: two SPAKE2 halves over Ed25519 in pure Python, four HMAC-BLAKE2b);
  * relay_side: the relay's half of the exchange alone (what an attacker can make a relay spend
    per attempt; attempts are 3 per window).

Prints one JSON line: {"bench":"pairing","handshake_ms":..,"pairing_ms":..,"relay_side_ms":..,
"ratio":..,"python":..}. Pairing happens once per device, by hand: the question is only whether a
Raspberry Pi answers it in a blink, and whether it can be made to burn CPU.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.app.pake import Spake2Side  # noqa: E402
from node.crypto._nacl import NaclSuite  # noqa: E402
from node.crypto.noise import WAYSTATION_PROLOGUE, NoiseHandshake  # noqa: E402
from node.proto import pairing as pp  # noqa: E402

SUITE = NaclSuite()


def handshake() -> bytes:
    i = NoiseHandshake(SUITE, True, SUITE.random_bytes(32), WAYSTATION_PROLOGUE)
    r = NoiseHandshake(SUITE, False, SUITE.random_bytes(32), WAYSTATION_PROLOGUE)
    r.read_message(i.write_message(b""))
    i.read_message(r.write_message(b""))
    r.read_message(i.write_message(b""))
    return bytes(i.get_handshake_hash())


def pairing(h: bytes) -> tuple[float, float]:
    """Both sides; returns (total seconds, relay-side seconds)."""
    relay_time = 0.0
    start = time.perf_counter()
    i = pp.PairingExchange(SUITE, Spake2Side, True, b"12345678", h)
    step = i.begin("phone")
    t = time.perf_counter()
    r = pp.PairingExchange(SUITE, Spake2Side, False, b"12345678", h)
    [reply] = r.receive(*step)
    relay_time += time.perf_counter() - t
    [confirm] = i.receive(*reply)
    t = time.perf_counter()
    [result] = r.receive(*confirm)
    relay_time += time.perf_counter() - t
    i.receive(*result)
    assert i.state == r.state == pp.PAIRED
    return time.perf_counter() - start, relay_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    best_hs = best_pair = best_relay = float("inf")
    for _ in range(args.rounds):
        t = time.perf_counter()
        h = handshake()
        best_hs = min(best_hs, time.perf_counter() - t)
        total, relay = pairing(h)
        best_pair, best_relay = min(best_pair, total), min(best_relay, relay)
    print(
        json.dumps(
            {
                "bench": "pairing",
                "rounds": args.rounds,
                "handshake_ms": round(best_hs * 1000, 3),
                "pairing_ms": round(best_pair * 1000, 3),
                "relay_side_ms": round(best_relay * 1000, 3),
                "ratio": round(best_pair / best_hs, 2),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
