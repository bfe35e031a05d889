"""Pairing on the relay (L2): the pairing window, paired devices, relay trust, control commands.

Theory of operation
-------------------
`pair.open` (the console's `pair`, or a script on the control socket) opens one window for
`relay.pairing_window_s` seconds (default 120) with a fresh code of CODE_DIGITS decimal digits.
A peer that opens a session and sends a Pairing START while the window is open runs the exchange
of node/proto/pairing.py with that code. Every START is an attempt, counted when it arrives
(before the peer could learn anything from our REPLY), so an attacker tests at most
MAX_ATTEMPTS codes per window: with 10^8 codes, 3 x 10^-8 per window the operator opens. After
MAX_ATTEMPTS attempts that did not pair, or once the window expires or one peer paired, the
window is closed; the operator opens a new one. One exchange runs at a time (a second START
while one runs is answered BUSY and costs no attempt).

A successful exchange pins the peer's Noise static key in the store's `devices` table (as a
"device", or as a "relay" if its Hello claimed the relay role) and commits at once. Later
sessions from that key are recognised: a device's logs are registered pinned with
`relay.device_log_bytes` each (DESIGN.md §4: evicted last); a paired relay, or one whose key
fingerprint is in `relay.trusted`, is treated as a relay (gets our list of logs). Anyone else
claiming the relay role is treated as a member. `devices.revoke` drops the pins (logs only that
device registered become unpinned community logs again) and closes the device's links at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from node.app.control import BAD_ARGUMENTS, CommandError, Handler
from node.app.interest import InterestMemory
from node.app.pake import Spake2Side
from node.crypto.api import Suite
from node.errors import REASON_UNEXPECTED, RemoteProtocolError
from node.proto import pairing as pp
from node.proto.messages import ROLE_RELAY
from node.store.devices import MAX_NAME, Device, DeviceBook

if TYPE_CHECKING:
    from node.app.linkcore import LinkCore

log = logging.getLogger("waystation.pairing")

CODE_DIGITS = 8
MAX_ATTEMPTS = 3


def new_code(suite: Suite) -> str:
    """CODE_DIGITS random decimal digits (rejection sampling: no modulo bias)."""
    limit = 10**CODE_DIGITS
    while True:
        value = int.from_bytes(suite.random_bytes(4), "big")
        if value < (1 << 32) // limit * limit:
            return "%0*d" % (CODE_DIGITS, value % limit)


def normalise_code(text: str) -> bytes:
    """The code as SPAKE2 gets it: digits only (the dash and spaces people type are dropped)."""
    digits = "".join(ch for ch in text if ch not in " -")
    if len(digits) != CODE_DIGITS or not digits.isdigit() or not digits.isascii():
        raise ValueError("a pairing code is %d digits, like 1234-5678" % CODE_DIGITS)
    return digits.encode("ascii")


def qr_payload(fingerprint: str, code: str) -> str:
    """What the QR code carries: the relay's link-key fingerprint and the code."""
    return "waystation-pair:%s:%s" % (fingerprint, code)


def qr_text(payload: str) -> str:
    """The QR code drawn with text characters (segno), for a terminal."""
    import io

    import segno

    out = io.StringIO()
    segno.make(payload, error="m").terminal(out=out, compact=True)
    return out.getvalue()


class PairingWindow:
    """One open window: its code, deadline and attempts."""

    def __init__(self, code: str, deadline: float) -> None:
        self.code = code
        self.deadline = deadline
        self.attempts = 0
        self.busy = False
        self.closed = ""  # why it closed: "paired", "attempts", "expired", "replaced"

    def open_at(self, now: float) -> bool:
        """True while pairing may start."""
        if not self.closed and now >= self.deadline:
            self.closed = "expired"
        return not self.closed


class RelayPairing:
    """The relay's pairing state: the window, the device book, relay trust.

    Args:
        suite: the crypto suite.
        devices: the store's device book.
        commit: commits the store now (pins must survive a power cut).
        static_public: our Noise static public key (its fingerprint goes in the QR code).
        window_s: how long `pair.open` keeps a window open.
        device_quota: bytes per log a paired device registers.
        trusted: fingerprints of relays trusted by configuration.
        close_links: closes every open link whose remote static key is the one given.
        clock: wall-clock seconds.
        community_quota: the quota a log gets back when its device is revoked.
        discovery_key: the key of our rotating token (node.crypto.rendezvous.discovery_key),
            given to every device that pairs so that it recognises our token; b"" for none.
    """

    def __init__(
        self,
        suite: Suite,
        devices: DeviceBook,
        commit: Callable[[], None],
        static_public: bytes,
        window_s: float,
        device_quota: int,
        trusted: tuple[str, ...] = (),
        close_links: Callable[[bytes], int] = lambda _key: 0,
        clock: Callable[[], float] = time.time,
        community_quota: int | None = None,
        discovery_key: bytes = b"",
    ) -> None:
        self.suite = suite
        self.devices = devices
        self.commit = commit
        self.fingerprint = pp.key_fingerprint(suite, static_public)
        self.window_s = window_s
        self.device_quota = device_quota
        self.trusted = frozenset(trusted)
        self.close_links = close_links
        self.clock = clock
        self.community_quota = community_quota
        self.discovery_key = discovery_key
        self.window: PairingWindow | None = None
        # Relay-to-relay pairing as the initiator: join(relay, code, fingerprint) starts it (the
        # daemon runs it as a task and calls joined()); None where nothing can run it.
        self.join: Callable[[str, bytes, str | None], None] | None = None
        self.joining: dict[str, object] = {}
        self._exchanges: dict[int, pp.PairingExchange] = {}
        self.interests = InterestMemory()  # what each paired device declared last (Summary)

    # -- trust ------------------------------------------------------------------------------

    def device_of(self, static_key: bytes) -> Device | None:
        """The paired device or relay with this key, or None."""
        return self.devices.get(static_key) if static_key else None

    def trusted_relay(self, static_key: bytes) -> bool:
        """Is this key a relay we treat as one (paired as a relay, or in relay.trusted)?"""
        if pp.key_fingerprint(self.suite, static_key) in self.trusted:
            return True
        device = self.device_of(static_key)
        return device is not None and device.kind == "relay"

    def register_log(self, device: Device, log_id: str) -> None:
        """Remember that `device` registered `log_id` (pinned by the caller)."""
        self.devices.register_log(device.static_key, log_id)

    # -- the exchange on a link -------------------------------------------------------------

    def on_pairing(self, core: LinkCore, step: int, data: bytes, now_ms: int) -> None:
        """One Pairing step from `core`'s peer: answer it in its session (`now_ms`: its clock).

        Raises:
            RemoteProtocolError: the peer broke the exchange (its link ends).
        """
        session = core.session
        exchange = self._exchanges.get(id(core))
        if exchange is None:
            if step != pp.START:
                raise RemoteProtocolError("pairing step %d before START" % step, REASON_UNEXPECTED)
            window = self.window
            if window is None or not window.open_at(self.clock()):
                core.ctx.count("pairing.refused.no-window")
                session.send_pairing(pp.RESULT, pp.encode_result(pp.NO_WINDOW), now_ms)
                return
            if window.busy:
                core.ctx.count("pairing.refused.busy")
                session.send_pairing(pp.RESULT, pp.encode_result(pp.BUSY), now_ms)
                return
            assert session.handshake_hash is not None
            window.attempts += 1
            window.busy = True
            exchange = pp.PairingExchange(
                self.suite, Spake2Side, False, window.code.encode(), session.handshake_hash,
                self.discovery_key,
            )  # fmt: skip
            self._exchanges[id(core)] = exchange
            self._check_attempts(window)
        try:
            for out_step, out_data in exchange.receive(step, data):
                session.send_pairing(out_step, out_data, now_ms)
        finally:
            if exchange.finished:
                self._finished(core, exchange)

    def link_ended(self, core: LinkCore) -> None:
        """A link ended: an exchange it left unfinished was counted as an attempt already."""
        exchange = self._exchanges.pop(id(core), None)
        if exchange is not None:
            core.ctx.count("pairing.failed")  # left mid-exchange (a wrong code, usually)
            if self.window is not None:
                self.window.busy = False

    def _check_attempts(self, window: PairingWindow) -> None:
        if window.attempts >= MAX_ATTEMPTS:
            window.closed = "attempts"  # this attempt runs to its end; no other may start
            log.warning("pairing window closed: %d attempts", window.attempts)

    def _finished(self, core: LinkCore, exchange: pp.PairingExchange) -> None:
        self._exchanges.pop(id(core), None)
        window = self.window
        if window is not None:
            window.busy = False
        if exchange.state != pp.PAIRED:
            core.ctx.count("pairing.failed")
            log.warning("%s: pairing failed (wrong code)", core.label)
            return
        remote = core.session.remote_static
        assert remote is not None
        hello = core.session.peer_hello
        kind = "relay" if hello is not None and hello.role == ROLE_RELAY else "device"
        name = exchange.peer_name or "device-" + pp.key_fingerprint(self.suite, remote)[:9]
        self.devices.add(Device(remote, name, kind, self.device_quota, int(self.clock())))
        self.commit()
        if window is not None:
            window.closed = "paired"
        core.ctx.count("pairing.paired")
        log.info("%s: paired %s %r (%s)", core.label, kind, name, self._short(remote))

    def _short(self, key: bytes) -> str:
        return pp.key_fingerprint(self.suite, key)

    # -- control commands -------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """The control commands this module provides (docs/operations.md)."""
        return {
            "pair.open": self.cmd_open,
            "pair.join": self.cmd_join,
            "pair.status": self.cmd_status,
            "devices.list": self.cmd_list,
            "devices.rename": self.cmd_rename,
            "devices.set_quota": self.cmd_set_quota,
            "devices.revoke": self.cmd_revoke,
        }

    def cmd_open(self, args: Mapping[str, object]) -> object:
        """Open a new pairing window (closing any open one); returns code, QR, expiry."""
        seconds = args.get("seconds", self.window_s)
        if type(seconds) not in (int, float) or not 10 <= float(seconds) <= 3600:  # type: ignore[arg-type]
            raise CommandError(BAD_ARGUMENTS, "seconds must be a number from 10 to 3600")
        if self.window is not None and not self.window.closed:
            self.window.closed = "replaced"
        code = new_code(self.suite)
        self.window = PairingWindow(code, self.clock() + float(seconds))  # type: ignore[arg-type]
        shown = code[:4] + "-" + code[4:]
        payload = qr_payload(self.fingerprint, shown)
        log.info("pairing window open for %.0f s", float(seconds))  # type: ignore[arg-type]
        return {
            "code": shown,
            "fingerprint": self.fingerprint,
            "expires_in_s": round(float(seconds)),  # type: ignore[arg-type]
            "attempts_left": MAX_ATTEMPTS,
            "qr_payload": payload,
            "qr_text": qr_text(payload),
        }

    def cmd_join(self, args: Mapping[str, object]) -> object:
        """Pair this relay with another relay's open window: {"relay": "HOST:PORT", "code"}.

        The exchange runs in the background (`join` in `pair.status` says how it went); on
        success each relay has the other as a paired relay.
        """
        if self.join is None:
            raise CommandError(BAD_ARGUMENTS, "this node cannot pair with relays")
        relay, code, expect = args.get("relay"), args.get("code"), args.get("fingerprint")
        if not isinstance(relay, str) or not isinstance(code, str):
            raise CommandError(BAD_ARGUMENTS, "relay (HOST:PORT) and code (1234-5678) are needed")
        if expect is not None and not isinstance(expect, str):
            raise CommandError(BAD_ARGUMENTS, "fingerprint: the other relay's, as text")
        try:
            digits = normalise_code(code)
        except ValueError as exc:
            raise CommandError(BAD_ARGUMENTS, "code: %s" % exc) from None
        if self.joining.get("state") == "running":
            running = self.joining["relay"]
            raise CommandError(BAD_ARGUMENTS, "a pairing with %s is running" % running)
        self.joining = {"relay": relay, "state": "running"}
        self.join(relay, digits, expect)
        return dict(self.joining)

    def joined(self, relay: str, remote: bytes | None, failure: str) -> None:
        """The background pairing with another relay ended (remote key, or why not)."""
        if remote is None:
            self.joining = {"relay": relay, "state": "failed", "error": failure}
            log.warning("pairing with relay %s failed: %s", relay, failure)
            return
        name = "relay-" + pp.key_fingerprint(self.suite, remote)[:9]
        self.devices.add(Device(remote, name, "relay", self.device_quota, int(self.clock())))
        self.commit()
        fingerprint = pp.key_fingerprint(self.suite, remote)
        self.joining = {"relay": relay, "state": "paired", "fingerprint": fingerprint}
        log.info("paired with relay %s (%s)", relay, fingerprint)

    def cmd_status(self, _args: Mapping[str, object]) -> object:
        """Whether a window is open, for how long, and how many attempts are left."""
        window = self.window
        if window is None:
            return {
                "join": dict(self.joining),
                "open": False,
                "closed": "never opened",
                "expires_in_s": 0,
                "attempts_left": 0,
                "fingerprint": self.fingerprint,
            }
        is_open = window.open_at(self.clock())
        return {
            "join": dict(self.joining),
            "open": is_open,
            "closed": window.closed,
            "expires_in_s": max(0, round(window.deadline - self.clock())) if is_open else 0,
            "attempts_left": max(0, MAX_ATTEMPTS - window.attempts),
            "fingerprint": self.fingerprint,
        }

    def _row(self, device: Device) -> dict[str, object]:
        return {
            "fingerprint": pp.key_fingerprint(self.suite, device.static_key),
            "name": device.name,
            "kind": device.kind,
            "quota": device.quota,
            "created": device.created,
            "logs": len(self.devices.logs_of(device.static_key)),
        }

    def cmd_list(self, _args: Mapping[str, object]) -> object:
        """Every paired device and relay."""
        return {"devices": [self._row(d) for d in self.devices.all()]}

    def _find(self, args: Mapping[str, object]) -> Device:
        wanted = args.get("device")
        if not isinstance(wanted, str) or not wanted:
            raise CommandError(BAD_ARGUMENTS, "device: give a name or a fingerprint (prefix)")
        found = [
            d
            for d in self.devices.all()
            if d.name == wanted or pp.key_fingerprint(self.suite, d.static_key).startswith(wanted)
        ]
        if len(found) != 1:
            raise CommandError(
                BAD_ARGUMENTS,
                "device %r: %s" % (wanted, "no such device" if not found else "names several"),
            )
        return found[0]

    def cmd_rename(self, args: Mapping[str, object]) -> object:
        """Rename a device: {"device": NAME|FINGERPRINT, "name": NEW}."""
        device = self._find(args)
        name = args.get("name")
        if not isinstance(name, str) or not name or len(name.encode()) > MAX_NAME:
            raise CommandError(BAD_ARGUMENTS, "name: 1 to %d bytes of text" % MAX_NAME)
        if not name.isprintable():
            raise CommandError(BAD_ARGUMENTS, "name: no control characters")
        self.devices.update(device.static_key, name=name)
        self.commit()
        return self._row(self.devices.get(device.static_key) or device)

    def cmd_set_quota(self, args: Mapping[str, object]) -> object:
        """Set a device's per-log quota: {"device": ..., "bytes": N} (1 KiB..1 TiB)."""
        device = self._find(args)
        quota = args.get("bytes")
        if type(quota) is not int or not 1024 <= quota <= 1 << 40:
            raise CommandError(BAD_ARGUMENTS, "bytes: an integer from 1024 to 2^40")
        self.devices.update(device.static_key, quota=quota)
        store = self.devices.store
        for log_id in self.devices.logs_of(device.static_key):
            sign_pub = store.sign_pub_of(log_id)
            if sign_pub is not None:
                store.add_log(log_id, sign_pub, pinned=True, quota=quota)
        self.commit()
        return self._row(self.devices.get(device.static_key) or device)

    def cmd_revoke(self, args: Mapping[str, object]) -> object:
        """Revoke a device: drop its pins, unpin logs only it registered, close its links."""
        device = self._find(args)
        store = self.devices.store
        unpinned = self.devices.remove(device.static_key)
        for log_id in unpinned:
            sign_pub = store.sign_pub_of(log_id)
            if sign_pub is not None:
                store.add_log(log_id, sign_pub, pinned=False, quota=self.community_quota)
        self.commit()
        closed = self.close_links(device.static_key)
        self.interests.forget(device.static_key)
        log.info("revoked %s %r; %d link(s) closed", device.kind, device.name, closed)
        return {"revoked": device.name, "logs_unpinned": len(unpinned), "links_closed": closed}
