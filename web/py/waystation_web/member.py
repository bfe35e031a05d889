"""The member facade of the web app: one account, its groups and messages, and sync.

Theory of operation
-------------------
The page and the Node tests call this, never `node` directly. It wires the same parts as
`waystation peer` (node.app.peer_cli): a Store (SQLite, in Pyodide's file system, which the page
backs with IndexedDB: web/src/storage.mjs), a MemberClient, and the crypto suite, here JsSuite
(libsodium.js) instead of PyNaCl. Syncing dials through a JavaScript stream opener
(`StreamDialer`, TCP from Node) or GATT opener (`WebBleDialer`, the page) and runs the
project's own LinkDriver (node.app.sync_client.sync_with): the protocol code is the desktop
member's, byte for byte. Like `peer sync`, one sync is up to MAX_SYNC_ROUNDS passes: process what
arrived, and pass again while processing wrote entries (chain keys for new members).

Pairing (`pair_ble`) is `waystation peer pair`'s exchange (node.app.pair_client); it records the
relay's pin, our device key for it and the relay's discovery key. Relays are remembered by their
rotating token, not by anything the browser says about the device: `sync_ble` reads INFO first,
and the pin whose discovery key gives INFO's token is the relay's (its key is then required, and
our paired device key used); a token no pin gives is "not your relay": the sync runs unpaired,
with a fresh key, as with any relay. The account file is waystation_web.backup.

Results cross to JavaScript as JSON text, so the page needs no knowledge of Python objects.
"""

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.app.pair_client import (
    PairingError,
    RelayPin,
    load_pins,
    pair_with,
    pin_for_token,
    save_pin,
)
from node.app.pairing import normalise_code
from node.app.peer import SyncOutcome
from node.app.sync_client import MAX_FRAME, member_context, sync_with
from node.crypto.api import Suite
from node.errors import LinkError, NodeError
from node.link import Dialer, Dialers, Link, PeerAddress
from node.member.client import MemberClient, is_initialised
from node.proto.messages import ROLE_MEMBER
from node.proto.pairing import key_fingerprint
from node.radio.profile import MIN_MTU
from node.store.sqlite import SQLiteStore
from waystation_web.backup import Kdf, open_into, seal_dir
from waystation_web.jslink import StreamDialer
from waystation_web.webble import WEB_BLE_ADDRESS, WebBleDialer

MAX_SYNC_ROUNDS = 3
QR_PREFIX = "waystation-pair:"  # node.app.pairing.qr_payload


class WebMember:
    """An opened member data directory in the browser's (or Node's) Pyodide file system.

    Args:
        suite: the crypto suite (JsSuite in the page).
        data_dir: the directory (created if missing).
        name: the display name, to create the account when the directory holds none.
    """

    def __init__(self, suite: Suite, data_dir: str, name: str | None = None) -> None:
        self.suite = suite
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._open(name)

    def _open(self, name: str | None) -> None:
        self.store = SQLiteStore.open_in(self.data_dir, self.suite.ed25519_verify)
        try:
            if is_initialised(self.data_dir):
                self.client = MemberClient(self.suite, self.store, self.data_dir)
            elif name is not None:
                self.client = MemberClient.init(self.suite, self.store, self.data_dir, name)
            else:
                raise NodeError("no member account in %s and no name to create one" % self.data_dir)
        except BaseException:
            self.store.close()
            raise

    @classmethod
    def import_account(
        cls, suite: Suite, kdf: Kdf, sealed: bytes, passphrase: str, data_dir: str
    ) -> "WebMember":
        """Open an account from its export file (waystation_web.backup) into an empty `data_dir`.

        Raises:
            NodeError: `data_dir` already holds an account, or the file does not open.
        """
        if is_initialised(Path(data_dir)):
            raise NodeError("%s already holds a member account" % data_dir)
        open_into(suite, kdf, bytes(sealed), passphrase, Path(data_dir))
        return cls(suite, data_dir)

    def export_account(self, kdf: Kdf, passphrase: str) -> bytes:
        """The account's export file (waystation_web.backup); closes and reopens the files."""
        self.close()
        try:
            return seal_dir(self.suite, kdf, self.data_dir, passphrase)
        finally:
            self._open(None)

    def close(self) -> None:
        """Close member.sqlite3 and the store."""
        try:
            self.client.close()
        finally:
            self.store.close()

    def account_json(self) -> str:
        """The account as JSON: {"name"}."""
        return json.dumps({"name": self.client.account.name})

    def create_group(self, name: str) -> str:
        """Create a group; returns its id."""
        return self.client.create_group(name, time.time())

    def invitation(self, group: str) -> str:
        """The invitation text of a group."""
        return self.client.invitation(group)

    def join(self, invitation: str) -> str:
        """Join a group from an invitation; returns its id."""
        return self.client.join(invitation, time.time())

    def groups_json(self) -> str:
        """The groups as JSON: [[id, name], ...]."""
        return json.dumps(self.client.list_groups())

    def members_json(self, group: str) -> str:
        """The group's members as JSON: [{"member", "names", "devices", "me"}, ...].

        "member" is the member key (hex); "names" what its devices announced (none until their
        metadata arrived by sync); the account itself is listed first.
        """
        state = self.client.resolve(group)
        members: dict[bytes, dict[str, Any]] = {}
        mine = state.member_pk
        for device_pk, member_pk in state.devices.items():
            row = members.setdefault(member_pk, {"member": member_pk.hex(), "names": [],
                                                 "devices": 0, "me": member_pk == mine})
            row["devices"] += 1
            name = state.names.get(device_pk)
            if name and name not in row["names"]:
                row["names"].append(name)
        if mine not in members:
            members[mine] = {"member": mine.hex(), "names": [self.client.account.name],
                             "devices": 1, "me": True}
        rows = sorted(members.values(), key=lambda r: (not r["me"], r["names"], r["member"]))
        return json.dumps(rows)

    def send(self, group: str, text: str) -> str:
        """Write a message; returns the entry's CID."""
        now = time.time()
        self.client.process(now)
        return str(self.client.send(group, text, now))

    def read_json(self, group: str) -> str:
        """The group's messages as JSON (node.member.client.Message.to_json each)."""
        self.client.process(time.time())
        return json.dumps([m.to_json() for m in self.client.read(group)])

    async def sync(self, open_stream: Any, address: str, timeout: float) -> str:
        """Sync with the relay at `address` (``tcp:HOST:PORT``) through `open_stream`.

        Returns JSON: {"ok", "reason", "sent", "received", "opened", "rounds"}; a relay that
        cannot be reached or a sync that times out is an outcome ("ok": false), not an exception.
        """
        dialer = StreamDialer(open_stream, MAX_FRAME)
        return json.dumps(await self._sync(dialer, PeerAddress.parse(address), timeout, None))

    async def pair_ble(
        self, open_gatt: Any, code: str, name: str, fingerprint: str, timeout: float
    ) -> str:
        """Pair with the relay `open_gatt` connects to, on the code from its console.

        The same exchange as `waystation peer pair` (node.app.pair_client.pair_with). The pin,
        our device key and the relay's discovery key are recorded under ``ble:FINGERPRINT`` in
        DATA/relays.json; `sync_ble` finds them again by the relay's token. The token read on
        this connection must be the discovery key's (else the key is no use: not recorded).
        `fingerprint` (from the console's QR code, or "") must match.

        `code` may also be the console's whole QR text, ``waystation-pair:FINGERPRINT:CODE``.
        Returns JSON: {"ok", "fingerprint", "reason"}; a failure is an outcome, not an exception.
        """
        if code.strip().startswith(QR_PREFIX):
            _, fingerprint, code = code.strip().split(":", 2)
        try:
            digits = normalise_code(code)
        except ValueError as exc:
            return _failed(str(exc))
        dialer = WebBleDialer(open_gatt, MAX_FRAME)
        device_key = self.suite.random_bytes(32)
        expect = fingerprint.strip().lower() or None
        try:
            paired = await pair_with(
                self.suite, Dialers([dialer]), PeerAddress.parse(WEB_BLE_ADDRESS), digits, name,
                device_key, ROLE_MEMBER, timeout, expect,
            )  # fmt: skip
        except (PairingError, LinkError) as exc:
            return _failed(str(exc))
        except TimeoutError:
            return _failed("timed out")
        pinned = key_fingerprint(self.suite, paired.static_key)
        pin = RelayPin(pinned, device_key, paired.discovery_key)
        assert dialer.info is not None  # dialled, or pair_with raised
        if not paired.discovery_key:
            return _failed("the relay gave no key for its token (update its software)")
        if not pin.knows_token(dialer.info.token, int(time.time())):
            return _failed(
                "the relay's token is not the one its key gives (is this phone's clock, or the"
                " relay's, more than a day off?)"
            )
        save_pin(self.data_dir, PeerAddress("ble", pinned), pin)
        return json.dumps({"ok": True, "fingerprint": pinned, "reason": ""})

    def relays_json(self) -> str:
        """The relays paired over Bluetooth as JSON: [fingerprint, ...]."""
        pins = load_pins(self.data_dir)
        return json.dumps(sorted(p.fingerprint for p in pins.values() if p.discovery_key))

    async def sync_ble(
        self, open_gatt: Any, timeout: float, mtu: int = 0, progress: Any = None
    ) -> str:
        """Sync over Web Bluetooth with the relay `open_gatt` connects to (waystation_web.webble).

        Packets are cut for `mtu`, or (0) for the MTU the relay's INFO says. `progress`, if
        given, is called with (entries sent, entries received) as they move. The relay is
        recognised by the token in its INFO value (see the module docstring): the result's
        "relay" is the fingerprint of the paired relay it is, or "" (not your relay). Returns
        the same JSON as `sync`, with "relay" and "mtu" (the MTU packets were cut for).
        """
        dialer = WebBleDialer(open_gatt, MAX_FRAME, mtu)
        report = None
        if progress is not None:
            report = lambda o: progress(o.entries_sent, o.entries_received)  # noqa: E731
        pins = load_pins(self.data_dir)

        def recognise() -> RelayPin | None:
            assert dialer.info is not None  # called once the dial read INFO
            found = pin_for_token(pins, dialer.info.token, int(time.time()))
            return None if found is None else pins[found]

        address = PeerAddress.parse(WEB_BLE_ADDRESS)
        result = await self._sync(dialer, address, timeout, report, recognise)
        info = dialer.info
        return json.dumps(result | {"mtu": mtu or (info.mtu if info else 0) or MIN_MTU})

    async def _sync(
        self,
        dialer: Dialer,
        address: PeerAddress,
        timeout: float,
        progress: Callable[[SyncOutcome], None] | None,
        recognise: Callable[[], RelayPin | None] = lambda: None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        result: dict[str, Any] = {"ok": False, "reason": "", "sent": 0, "received": 0}
        result.update(opened=self.client.process(time.time()).opened, rounds=0, relay="")
        for _ in range(MAX_SYNC_ROUNDS):
            logs = {
                log.address: (log.sign_pub, log.identity_signature)
                for log in self.client.sync_logs()
            }
            ctx = member_context(self.store, self.suite, logs)
            link: Link | None = None
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    link = await dialer.dial(address, min(deadline - time.monotonic(), 10.0))
                pin = recognise()  # the relay is known before the handshake
                if pin is not None:  # as `peer sync` does for a pinned or paired relay
                    ctx.pinned_fingerprint = pin.fingerprint
                    ctx.static_private = pin.device_key or None
                    result["relay"] = pin.fingerprint
                outcome = await sync_with(
                    ctx, address, deadline - time.monotonic(), progress, _dialled(link)
                )
            except (TimeoutError, LinkError) as exc:
                if link is not None:
                    await link.close()  # idempotent; the driver closes it if it ran
                result["reason"] = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                return result
            result["rounds"] += 1
            result["sent"] += outcome.entries_sent
            result["received"] += outcome.entries_received
            if not outcome.in_sync:
                result["reason"] = "%s %s" % (outcome.reason or "closed", outcome.text)
                return result
            before = self.store.stats().get("entries", 0)
            result["opened"] += self.client.process(time.time()).opened
            if self.store.stats().get("entries", 0) == before:
                break
        result["ok"] = True
        return result


def _failed(reason: str) -> str:
    return json.dumps({"ok": False, "fingerprint": "", "reason": reason})


def _dialled(link: Link) -> Dialers:
    """Dialers that hand out `link`, open already (dialled first to read the relay's INFO)."""

    class Dialled:
        kind = link.kind

        async def dial(self, address: PeerAddress, timeout: float) -> Link:
            return link

    return Dialers([Dialled()])
