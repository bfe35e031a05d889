"""SPAKE2 for pairing (L2 adapter): the `spake2` package behind node.proto.pairing's interface.

The one place that touches `spake2`: its exceptions (a message of the wrong side, a reflected
message, a point not in the group) become RemoteProtocolError("integrity").
"""

from __future__ import annotations

from spake2 import SPAKE2_A, SPAKE2_B
from spake2.spake2 import SPAKEError

from node.errors import REASON_INTEGRITY, LocalProtocolError, RemoteProtocolError


class Spake2Side:
    """One side of SPAKE2 (Ed25519 group) on a code, with the identities given.

    Args:
        side: "A" (initiator) or "B" (responder).
        code: the pairing code.
        id_a: identity of side A (includes the session's handshake hash).
        id_b: identity of side B.
    """

    def __init__(self, side: str, code: bytes, id_a: bytes, id_b: bytes) -> None:
        if side == "A":
            self._impl: SPAKE2_A | SPAKE2_B = SPAKE2_A(code, idA=id_a, idB=id_b)
        elif side == "B":
            self._impl = SPAKE2_B(code, idA=id_a, idB=id_b)
        else:
            raise LocalProtocolError("SPAKE2 side must be 'A' or 'B', not %r" % (side,))

    def start(self) -> bytes:
        """Our SPAKE2 message (33 bytes)."""
        return bytes(self._impl.start())

    def finish(self, message: bytes) -> bytes:
        """The shared key from the peer's message.

        Raises:
            RemoteProtocolError: the message is not a valid SPAKE2 message for our side.
        """
        try:
            return bytes(self._impl.finish(message))
        except (SPAKEError, ValueError, AssertionError) as exc:
            raise RemoteProtocolError(
                "pairing: bad SPAKE2 message: %s" % (exc or type(exc).__name__), REASON_INTEGRITY
            ) from None
