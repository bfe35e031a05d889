"""Helpers for session tests: a pair of sessions joined in memory, and a hand-driven raw peer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.crypto._nacl import NaclSuite
from node.crypto.noise import WAYSTATION_PROLOGUE as PROLOGUE
from node.crypto.noise import NoiseHandshake, NoiseTransport
from node.proto.batch import unpack_messages
from node.proto.messages import (
    ROLE_MEMBER,
    ROLE_RELAY,
    decode_message,
    encode_message,
)
from node.proto.session import Session, SessionLimits

if TYPE_CHECKING:
    from node.proto.messages import Message

SUITE = NaclSuite()


class SessionPair:
    """Two sessions joined by an in-memory link (h11's ConnectionPair, aioquic's transfer)."""

    def __init__(
        self,
        limits: SessionLimits | None = None,
        now: int = 0,
        hints: tuple[int, int] = (65535, 65535),
    ) -> None:
        self.now = now
        self.client = Session(
            SUITE, True, SUITE.random_bytes(32), ROLE_MEMBER, now, limits, frame_hint=hints[0]
        )
        self.server = Session(
            SUITE, False, SUITE.random_bytes(32), ROLE_RELAY, now, limits, frame_hint=hints[1]
        )

    def transfer(self, rounds: int = 50) -> None:
        """Deliver queued frames both ways until nothing moves (bounded)."""
        for _ in range(rounds):
            moved = False
            for src, dst in ((self.client, self.server), (self.server, self.client)):
                for frame in src.frames_to_send():
                    moved = True
                    if not dst.is_finished:
                        dst.receive_frame(frame, self.now)
            if not moved:
                return
        raise AssertionError("sessions kept talking for %d rounds" % rounds)

    @staticmethod
    def events(session: Session) -> list[object]:
        out = []
        while (event := session.next_event()) is not None:
            out.append(event)
        return out


class RawPeer:
    """The other side of a Session, driven by hand: it can send any bytes, in any state."""

    def __init__(self, session: Session, now: int = 0) -> None:
        self.session = session
        self.now = now
        self.handshake = NoiseHandshake(
            SUITE, not session.initiator, SUITE.random_bytes(32), PROLOGUE
        )
        self.transport: NoiseTransport | None = None

    def handshake_step(self) -> None:
        """Run the Noise handshake to completion against the session."""
        hs = self.handshake
        if hs.initiator and not hs.is_complete() and hs.is_my_turn():
            self.session.receive_frame(hs.write_message(b""), self.now)
        while not hs.is_complete():
            for frame in self.session.frames_to_send():
                hs.read_message(frame)
            if not hs.is_complete() and hs.is_my_turn():
                self.session.receive_frame(hs.write_message(b""), self.now)
        self.transport = hs.transport()

    def send(self, message: Message) -> None:
        assert self.transport is not None
        self.session.receive_frame(self.transport.encrypt(encode_message(message)), self.now)

    def send_raw(self, plaintext: bytes) -> None:
        assert self.transport is not None
        self.session.receive_frame(self.transport.encrypt(plaintext), self.now)

    def received(self) -> list[Message]:
        assert self.transport is not None
        return [
            decode_message(data)
            for frame in self.session.frames_to_send()
            for data in unpack_messages(self.transport.decrypt(frame))
        ]
