"""The pairing side of a phone or relay (L2): `waystation peer pair`, and the member's relay pins.

`pair_with(...)` dials the relay, runs a session (Noise XX, Hello) and, once it is open, the
pairing exchange of node/proto/pairing.py on the code the operator read out, then says Bye. It
returns the relay's Noise static key, which the caller pins, and the relay's discovery key (the
key of its rotating token, node.crypto.rendezvous), given inside the pairing.

Members keep their pins in `DATA/relays.json` (mode 0600): per relay address, the fingerprint of
the relay's link key, when paired the member's own device key for that relay (a paired device
proves its pairing by using the same static key; unpaired syncs use a fresh key each time), and
the relay's discovery key if it gave one. A pin, whether from pairing or from `peer sync --pin`,
makes every later sync to that address refuse any other key. `pin_for_token` finds the paired
relay whose token a BLE advertisement or INFO value carries: how a phone recognises its relay
among others without any fixed identifier on the air (docs/ble.md §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from node.app.pake import Spake2Side
from node.crypto.api import Suite
from node.crypto.rendezvous import TOKEN_INTERVAL, relay_token, round_period
from node.errors import REASON_INTEGRITY, REASON_OK, LinkError, NodeError, RemoteProtocolError
from node.link import Dialers, Link, PeerAddress
from node.proto import pairing as pp
from node.proto.session import (
    HandshakeCompleted,
    PairingReceived,
    Session,
    SessionClosed,
    SessionLimits,
    SessionOpened,
)

PINS_FILE = "relays.json"
MAX_PINS_BYTES = 1 << 20
# Token periods either side of ours that still recognise a relay (96: a day). A token changes
# every TOKEN_INTERVAL (15 min), and a relay's clock may be far off: an appliance with no network
# and no real-time clock resumes from its last saved time after a power cut. Each period costs an
# HMAC (~4 us): a day either side costs under 1 ms per check, nearest periods first.
TOKEN_SKEW_PERIODS = 96
_SKEWS = sorted(range(-TOKEN_SKEW_PERIODS, TOKEN_SKEW_PERIODS + 1), key=abs)


class PairingError(NodeError):
    """Pairing did not succeed; the message says why, in the user's words."""


@dataclass(frozen=True)
class RelayPin:
    """What a member knows of one relay address.

    Attributes:
        fingerprint: the relay's link-key fingerprint (8 groups of 4 hex digits).
        device_key: our X25519 static private key for it when paired, else b"".
        discovery_key: the key of its rotating token when it gave one at pairing, else b"".
    """

    fingerprint: str
    device_key: bytes = b""
    discovery_key: bytes = b""

    def knows_token(self, token: bytes, now: int) -> bool:
        """Is `token` this relay's for a period within TOKEN_SKEW_PERIODS of `now` (Unix s)?"""
        if not self.discovery_key:
            return False
        period = round_period(now, TOKEN_INTERVAL)
        return any(
            relay_token(self.discovery_key, period + skew * TOKEN_INTERVAL) == token
            for skew in _SKEWS
        )


@dataclass(frozen=True)
class Paired:
    """What pairing gave: the relay's Noise static public key and its discovery key (or b"")."""

    static_key: bytes
    discovery_key: bytes


def pin_for_token(pins: dict[str, RelayPin], token: bytes, now: int) -> str | None:
    """The address of the pin whose relay advertises `token` around `now`, or None."""
    return next((a for a, pin in pins.items() if pin.knows_token(token, now)), None)


def load_pins(data_dir: Path) -> dict[str, RelayPin]:
    """The pins in `data_dir` (empty when there are none).

    Raises:
        PairingError: the file is unreadable or malformed (never ignored: it holds pins).
    """
    path = data_dir / PINS_FILE
    try:
        raw = path.read_bytes()[: MAX_PINS_BYTES + 1]
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise PairingError("cannot read %s: %s" % (path, exc.strerror or exc)) from exc
    try:
        table = json.loads(raw) if len(raw) <= MAX_PINS_BYTES else None
        if not isinstance(table, dict):
            raise ValueError("not a JSON object")
        pins = {}
        for address, item in table.items():
            fingerprint = item["fingerprint"]
            key = bytes.fromhex(item.get("device_key", ""))
            token_key = bytes.fromhex(item.get("discovery_key", ""))
            if not isinstance(fingerprint, str) or {len(key), len(token_key)} - {0, 32}:
                raise ValueError("bad pin for %s" % address)
            pins[str(address)] = RelayPin(fingerprint, key, token_key)
        return pins
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PairingError("%s is damaged (%s); move it aside to pin again" % (path, exc)) from exc


def save_pin(data_dir: Path, address: PeerAddress, pin: RelayPin) -> None:
    """Record (or replace) the pin of one relay address, atomically, mode 0600."""
    pins = load_pins(data_dir)
    pins[str(address)] = pin
    table = {
        a: {"fingerprint": p.fingerprint, "device_key": p.device_key.hex()}
        | ({"discovery_key": p.discovery_key.hex()} if p.discovery_key else {})
        for a, p in pins.items()
    }
    path = data_dir / PINS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(table, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


async def pair_with(
    suite: Suite,
    dialers: Dialers,
    address: PeerAddress,
    code: bytes,
    name: str,
    static_private: bytes,
    role: int,
    timeout: float,
    expect_fingerprint: str | None = None,
) -> Paired:
    """Pair with the relay at `address`; returns its static key and its discovery key.

    Args:
        suite: the crypto suite.
        dialers: the transports.
        address: the relay's peer address.
        code: the pairing code (digits).
        name: the name we give ourselves in the relay's device list.
        static_private: the static X25519 key we pair (and later sync) with.
        role: our Hello role (ROLE_MEMBER for a phone, ROLE_RELAY for a relay).
        timeout: seconds for the whole exchange.
        expect_fingerprint: the fingerprint from the QR code, if scanned: any other key fails.

    Raises:
        PairingError: wrong code, no window, another key than expected, the relay refused.
        LinkError: the relay could not be reached or the link broke.
        TimeoutError: no answer within `timeout`.
    """
    async with asyncio.timeout(timeout):
        link = await dialers.dial(address, min(timeout, 10.0))
        try:
            return await _run(suite, link, code, name, static_private, role, expect_fingerprint)
        finally:
            await link.close()


async def _run(
    suite: Suite,
    link: Link,
    code: bytes,
    name: str,
    static_private: bytes,
    role: int,
    expect: str | None,
) -> Paired:
    clock = _millis
    session = Session(
        suite, True, static_private, role, clock(), SessionLimits(), frame_hint=link.frame_hint
    )
    exchange: pp.PairingExchange | None = None
    failure = ""
    while True:
        while (event := session.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                seen = pp.key_fingerprint(suite, event.remote_static)
                if expect is not None and seen != expect:
                    failure = "the relay's key is %s, not %s from the QR code" % (seen, expect)
                    session.close(REASON_INTEGRITY, "not the key I was given", clock())
                else:
                    exchange = pp.PairingExchange(
                        suite, Spake2Side, True, code, event.handshake_hash
                    )
            elif isinstance(event, SessionOpened) and exchange is not None:
                step, data = exchange.begin(name)
                session.send_pairing(step, data, clock())
            elif isinstance(event, PairingReceived) and exchange is not None:
                try:
                    for step, data in exchange.receive(event.step, event.data):
                        session.send_pairing(step, data, clock())
                except RemoteProtocolError as exc:
                    failure = "the relay broke the pairing exchange: %s" % exc.message
                if exchange.finished:
                    if exchange.state != pp.PAIRED:
                        failure = failure or pp.STATUS_TEXT.get(exchange.status, "failed")
                    session.close(REASON_OK, "paired" if not failure else "pairing failed", clock())
            elif (
                isinstance(event, SessionClosed)
                and not failure
                and (exchange is None or exchange.state != pp.PAIRED)
            ):
                failure = "the relay ended the link: %s %s" % (event.reason, event.text)
        frames = session.frames_to_send()
        if frames:
            if session.is_finished:  # our Bye: the relay may be gone already
                with contextlib.suppress(LinkError):
                    await link.send(frames)
            else:
                await link.send(frames)
        if session.is_finished:
            break
        timer = session.get_timer()
        wait = None if timer is None else max(0.0, (timer - clock()) / 1000)
        try:
            async with asyncio.timeout(wait):
                frame = await link.recv()
        except TimeoutError:
            session.handle_timer(clock())
            continue
        try:
            if frame is None:
                session.connection_lost(clock())
            else:
                session.receive_frame(frame, clock())
        except RemoteProtocolError as exc:
            failure = failure or "the relay broke the session: %s" % exc.message
            if not session.is_finished:
                session.close(exc.reason, exc.message[:200], clock())
    if failure:
        raise PairingError(failure)
    if exchange is None or exchange.state != pp.PAIRED or session.remote_static is None:
        raise PairingError("the link ended before pairing finished")
    return Paired(session.remote_static, exchange.discovery_key)


def _millis() -> int:
    return int(asyncio.get_running_loop().time() * 1000)
