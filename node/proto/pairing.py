# Pairing inside a session (L0): SPAKE2 on the operator's code, bound to the Noise handshake hash.
#
# Theory of operation
# -------------------
# The operator opens a pairing window on the relay; it shows a short code. The phone (or another
# relay) opens an ordinary session to the relay, then runs this exchange in Pairing messages
# (docs/protocol.md, "Pairing"):
#
#   initiator                                      responder (relay with an open window)
#   START   pake_A ‖ name            ---------->   answer: pake_B, K = SPAKE2(code, h)
#           K = SPAKE2(code, h)      <----------   REPLY   pake_B ‖ confirm_R
#   check confirm_R                                 (a wrong code fails here, for the initiator)
#   CONFIRM confirm_I                ---------->   check confirm_I
#                                    <----------   RESULT  status (0 = paired) [‖ discovery key]
#
# SPAKE2's identities are "waystation/1 pair A" ‖ h and "waystation/1 pair B" ‖ h, where h is the
# session's Noise handshake hash, so the shared key K exists only for this one session; both
# confirmations are HMAC-BLAKE2b(K, "waystation/1 pair confirm" ‖ role ‖ h) (role 0x01 initiator,
# 0x02 responder). A wrong code gives each side a different K and the confirmation fails; a man in
# the middle terminates two Noise sessions (two different h) and cannot forward a confirmation;
# a recorded exchange replayed in a new session fails for the same reason. An eavesdropper sees
# only SPAKE2 messages, which reveal nothing it could test code guesses against offline; an active
# attacker tests exactly one guess per exchange (the responder counts every START as an attempt).
# On PAIRED each side pins the other's Noise static key (the caller does that). A relay's RESULT
# 00 also carries its discovery key (node.crypto.rendezvous), so that the paired device can
# recognise the relay's rotating token; it travels inside the Noise session, after the
# initiator checked REPLY's confirmation, so only the peer that knew the code receives it.
#
# SPAKE2 itself is injected (`pake_factory(side, code, id_a, id_b)` -> object with
# `start() -> bytes` and `finish(message) -> bytes`), like the crypto suite: the `spake2` package
# is CPython-only (node/app/pake.py adapts it).
#
# TRANSITIONS is the one state table: (state, input) -> (action, next state on success). Inputs
# not in it raise RemoteProtocolError("unexpected") for a peer's message or LocalProtocolError
# for our caller's START, and the machine ends in FAILED.

from node._compat import TYPE_CHECKING
from node.errors import (
    REASON_INTEGRITY,
    REASON_UNEXPECTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from node.varint import decode_uvarint, encode_uvarint

if TYPE_CHECKING:
    from typing import Callable, Protocol

    from node.crypto.api import Suite

    class Pake(Protocol):
        def start(self) -> bytes: ...
        def finish(self, message: bytes) -> bytes: ...

    PakeFactory = Callable[[str, bytes, bytes, bytes], Pake]

# Steps (the `step` of a Pairing message).
START = 1
REPLY = 2
CONFIRM = 3
RESULT = 4

# RESULT statuses.
PAIRED_OK = 0
WRONG_CODE = 1
NO_WINDOW = 2  # no window open, it expired, or three wrong attempts closed it
BUSY = 3  # another device is pairing in this window right now
STATUS_TEXT = {
    PAIRED_OK: "paired",
    WRONG_CODE: "wrong code",
    NO_WINDOW: "no pairing window is open on the relay (opened? expired? three wrong attempts?)",
    BUSY: "another device is pairing with the relay right now; try again",
}

DISCOVERY_KEY_BYTES = 32  # node.crypto.rendezvous.discovery_key: the relay's token key
PAKE_MESSAGE_BYTES = 33  # the spake2 package's Ed25519-group message: side byte + point
CONFIRM_BYTES = 64  # HMAC-BLAKE2b
MAX_NAME_BYTES = 64
ID_A = b"waystation/1 pair A"
ID_B = b"waystation/1 pair B"
CONFIRM_LABEL = b"waystation/1 pair confirm"
ROLE_INITIATOR = b"\x01"
ROLE_RESPONDER = b"\x02"

# States.
IDLE = "IDLE"
AWAIT_REPLY = "AWAIT_REPLY"
AWAIT_CONFIRM = "AWAIT_CONFIRM"
AWAIT_RESULT = "AWAIT_RESULT"
PAIRED = "PAIRED"
FAILED = "FAILED"
STATES = (IDLE, AWAIT_REPLY, AWAIT_CONFIRM, AWAIT_RESULT, PAIRED, FAILED)

# Inputs: our caller starts (initiator), or a step arrives.
BEGIN = "BEGIN"
RECV_START = "RECV_START"
RECV_REPLY = "RECV_REPLY"
RECV_CONFIRM = "RECV_CONFIRM"
RECV_RESULT = "RECV_RESULT"
INPUTS = (BEGIN, RECV_START, RECV_REPLY, RECV_CONFIRM, RECV_RESULT)
STEP_INPUT = {START: RECV_START, REPLY: RECV_REPLY, CONFIRM: RECV_CONFIRM, RESULT: RECV_RESULT}

TRANSITIONS = {
    (IDLE, BEGIN): ("send_start", AWAIT_REPLY),
    (IDLE, RECV_START): ("answer", AWAIT_CONFIRM),
    (AWAIT_REPLY, RECV_REPLY): ("check_reply", AWAIT_RESULT),
    (AWAIT_REPLY, RECV_RESULT): ("refused", FAILED),
    (AWAIT_CONFIRM, RECV_CONFIRM): ("check_confirm", PAIRED),
    (AWAIT_RESULT, RECV_RESULT): ("result", PAIRED),
}


# ---- codec ------------------------------------------------------------------------------------


def encode_start(pake_message: bytes, name: str) -> bytes:
    """START data: the initiator's SPAKE2 message (33 bytes) ‖ uv len ‖ device name (UTF-8)."""
    raw = name.encode("utf-8")
    if len(pake_message) != PAKE_MESSAGE_BYTES or len(raw) > MAX_NAME_BYTES:
        raise LocalProtocolError("pairing START: bad SPAKE2 message or name over 64 bytes")
    return pake_message + encode_uvarint(len(raw)) + raw


def decode_start(data: bytes) -> "tuple[bytes, str]":
    """(SPAKE2 message, device name) of START data.

    Raises:
        RemoteProtocolError: wrong length, a name over 64 bytes, not UTF-8 or not printable.
    """
    if len(data) < PAKE_MESSAGE_BYTES + 1:
        raise RemoteProtocolError("pairing START: %d bytes, need at least 34" % len(data))
    length, pos = decode_uvarint(data, PAKE_MESSAGE_BYTES)
    if length > MAX_NAME_BYTES or pos + length != len(data):
        raise RemoteProtocolError("pairing START: name length %d does not fit" % length)
    try:
        name = data[pos:].decode("utf-8")
    except UnicodeError:
        raise RemoteProtocolError("pairing START: name is not UTF-8") from None
    for char in name:
        if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:  # C0, DEL, C1 (CSI 0x9B)
            raise RemoteProtocolError("pairing START: name has control characters")
    return data[:PAKE_MESSAGE_BYTES], name


def encode_reply(pake_message: bytes, confirm: bytes) -> bytes:
    """REPLY data: the responder's SPAKE2 message (33) ‖ its confirmation (64)."""
    if len(pake_message) != PAKE_MESSAGE_BYTES or len(confirm) != CONFIRM_BYTES:
        raise LocalProtocolError("pairing REPLY: bad lengths")
    return pake_message + confirm


def decode_reply(data: bytes) -> "tuple[bytes, bytes]":
    """(SPAKE2 message, confirmation) of REPLY data; RemoteProtocolError unless 97 bytes."""
    if len(data) != PAKE_MESSAGE_BYTES + CONFIRM_BYTES:
        raise RemoteProtocolError("pairing REPLY: %d bytes, expected 97" % len(data))
    return data[:PAKE_MESSAGE_BYTES], data[PAKE_MESSAGE_BYTES:]


def decode_confirm(data: bytes) -> bytes:
    """The confirmation of CONFIRM data; RemoteProtocolError unless 64 bytes."""
    if len(data) != CONFIRM_BYTES:
        raise RemoteProtocolError("pairing CONFIRM: %d bytes, expected 64" % len(data))
    return data


def encode_result(status: int, discovery_key: bytes = b"") -> bytes:
    """RESULT data: a status byte; with PAIRED_OK, the relay's discovery key (32) if it has one."""
    if status not in STATUS_TEXT:
        raise LocalProtocolError("pairing RESULT: unknown status %r" % (status,))
    if discovery_key and (status != PAIRED_OK or len(discovery_key) != DISCOVERY_KEY_BYTES):
        raise LocalProtocolError("pairing RESULT: a 32-byte discovery key goes with PAIRED_OK only")
    return bytes([status]) + discovery_key


def decode_result(data: bytes) -> "tuple[int, bytes]":
    """(status, discovery key or b"") of RESULT data.

    Raises:
        RemoteProtocolError: an unknown status, or a length other than 1 (33 with PAIRED_OK).
    """
    if not data or data[0] not in STATUS_TEXT:
        raise RemoteProtocolError("pairing RESULT: bad status %s" % data[:1].hex())
    if len(data) != 1 and not (data[0] == PAIRED_OK and len(data) == 1 + DISCOVERY_KEY_BYTES):
        raise RemoteProtocolError("pairing RESULT: %d bytes, expected 1 or 33" % len(data))
    return data[0], bytes(data[1:])


def key_fingerprint(suite: "Suite", static_public: bytes) -> str:
    """The pin of a node's Noise static key: 8 groups of 4 hex digits of SHA-256(key)."""
    digest = suite.digest("sha256", static_public).hex()[:32]
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


def _same(a: bytes, b: bytes) -> bool:
    """Constant-time comparison (MicroPython has no hmac.compare_digest)."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


# ---- the machine --------------------------------------------------------------------------------


class PairingExchange:
    """One pairing exchange on one session (either side).

    Args:
        suite: the crypto suite (HMAC-BLAKE2b).
        pake_factory: builds a SPAKE2 side: (side "A" or "B", code, id_a, id_b) -> Pake.
        initiator: True on the side that pairs (phone, or the relay that dialed).
        code: the pairing code, as typed (ASCII digits).
        handshake_hash: this session's Noise handshake hash (64 bytes).
        discovery_key: responder: the key of our rotating token, given in RESULT on success
            (node.crypto.rendezvous.discovery_key), or b"" to give none.

    Attributes:
        state: one of STATES.
        status: the RESULT status once finished (PAIRED_OK, WRONG_CODE, NO_WINDOW, BUSY).
        peer_name: the name the initiator gave (responder side).
        discovery_key: the key the responder gave (ours on the responder side); b"" if none.
    """

    def __init__(
        self,
        suite: "Suite",
        pake_factory: "PakeFactory",
        initiator: bool,
        code: bytes,
        handshake_hash: bytes,
        discovery_key: bytes = b"",
    ) -> None:
        if not handshake_hash:
            raise LocalProtocolError("pairing needs the session's handshake hash")
        self.suite = suite
        self.initiator = initiator
        self.state = IDLE
        self.status = -1
        self.peer_name = ""
        self.discovery_key = discovery_key
        self._h = handshake_hash
        side = "A" if initiator else "B"
        self._pake = pake_factory(side, code, ID_A + handshake_hash, ID_B + handshake_hash)
        self._key = b""

    @property
    def finished(self) -> bool:
        """True in PAIRED or FAILED."""
        return self.state in (PAIRED, FAILED)

    def begin(self, name: str) -> "tuple[int, bytes]":
        """Initiator: the START step to send (our name for the relay's device list)."""
        return self._apply(BEGIN, name.encode("utf-8"))[0]

    def receive(self, step: int, data: bytes) -> "list[tuple[int, bytes]]":
        """Feed one Pairing step from the peer; returns the steps to send back.

        Raises:
            RemoteProtocolError: an unknown or unexpected step, or malformed data (the machine
                is FAILED; the caller ends the link).
        """
        what = STEP_INPUT.get(step)
        if what is None:
            self.state = FAILED
            raise RemoteProtocolError("pairing: unknown step %d" % step, REASON_UNEXPECTED)
        return self._apply(what, data)

    def _apply(self, what: str, data: bytes) -> "list[tuple[int, bytes]]":
        entry = TRANSITIONS.get((self.state, what))
        if entry is not None and (what == BEGIN) != self.initiator and what in (BEGIN, RECV_START):
            entry = None  # START belongs to the initiator, its answer to the responder
        if entry is None:
            state, self.state = self.state, FAILED
            if what == BEGIN:
                raise LocalProtocolError("pairing: cannot begin in %s" % state)
            raise RemoteProtocolError(
                "pairing: %s not expected in %s" % (what, state), REASON_UNEXPECTED
            )
        action, next_state = entry
        try:
            out: "list[tuple[int, bytes]]" = getattr(self, "_do_" + action)(data)
        except RemoteProtocolError:
            self.state = FAILED
            raise
        if self.state != FAILED:
            self.state = next_state
        return out

    def _confirm(self, role: bytes) -> bytes:
        return self.suite.hmac("blake2b", self._key, CONFIRM_LABEL + role + self._h)

    def _finish_pake(self, message: bytes) -> None:
        self._key = self._pake.finish(message)

    def _do_send_start(self, name: bytes) -> "list[tuple[int, bytes]]":
        return [(START, encode_start(self._pake.start(), name.decode("utf-8")))]

    def _do_answer(self, data: bytes) -> "list[tuple[int, bytes]]":
        message, self.peer_name = decode_start(data)
        ours = self._pake.start()
        self._finish_pake(message)
        return [(REPLY, encode_reply(ours, self._confirm(ROLE_RESPONDER)))]

    def _do_check_reply(self, data: bytes) -> "list[tuple[int, bytes]]":
        message, confirm = decode_reply(data)
        self._finish_pake(message)
        if not _same(confirm, self._confirm(ROLE_RESPONDER)):
            self.state = FAILED
            self.status = WRONG_CODE
            return []
        return [(CONFIRM, self._confirm(ROLE_INITIATOR))]

    def _do_check_confirm(self, data: bytes) -> "list[tuple[int, bytes]]":
        if not _same(decode_confirm(data), self._confirm(ROLE_INITIATOR)):
            self.state = FAILED
            self.status = WRONG_CODE
            return [(RESULT, encode_result(WRONG_CODE))]
        self.status = PAIRED_OK
        return [(RESULT, encode_result(PAIRED_OK, self.discovery_key))]

    def _do_refused(self, data: bytes) -> "list[tuple[int, bytes]]":
        status = decode_result(data)[0]
        if status == PAIRED_OK:
            raise RemoteProtocolError("pairing: paired before any confirmation", REASON_INTEGRITY)
        self.status = status
        return []

    def _do_result(self, data: bytes) -> "list[tuple[int, bytes]]":
        self.status, self.discovery_key = decode_result(data)
        if self.status != PAIRED_OK:
            self.state = FAILED
        return []
