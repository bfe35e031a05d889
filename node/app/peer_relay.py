"""Which relay a member talks to, and with which key (L2, for `waystation peer`).

`relay_target` turns `--relay HOST:PORT`, `--discover` (zeroconf) or `--ble` into a peer address,
the words messages use for it, and the dialers that reach it. `relay_pin` reads (and with
`--pin`, records) the pin of that address in DATA/relays.json: the relay's fingerprint, and the
device key this member paired with, if it paired. `pair_command` is `waystation peer pair`:
SPAKE2 on the relay's code (node.app.pair_client), then the pin and device key are recorded.
Diagnostics go to stderr as one line each; exit statuses as `waystation peer`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from typing import TYPE_CHECKING

from node.errors import LinkError
from node.member.errors import MemberError

if TYPE_CHECKING:
    from node.app.pair_client import RelayPin
    from node.app.peer_session import PeerSession
    from node.link import Dialers, PeerAddress

EXIT_USER_ERROR = 1
EXIT_SYNC_FAILED = 3  # could not reach, pair or sync with the relay


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def pair_command(session: PeerSession, args: argparse.Namespace) -> int:
    """`peer pair`: SPAKE2 on the relay's code; pins the relay and our device key for it."""
    from node.app.pair_client import PairingError, RelayPin, pair_with, save_pin
    from node.app.pairing import normalise_code
    from node.proto.messages import ROLE_MEMBER
    from node.proto.pairing import key_fingerprint

    try:
        code = normalise_code(args.code)
    except ValueError as exc:
        _err("waystation peer: --code: %s" % exc)
        return EXIT_USER_ERROR
    target = relay_target(args)
    if target is None:
        return EXIT_SYNC_FAILED
    address, where, dialers = target
    device_key = session.suite.random_bytes(32)
    expect = args.fingerprint.lower() if args.fingerprint else None
    try:
        paired = asyncio.run(
            pair_with(
                session.suite, dialers, address, code, args.name, device_key,
                ROLE_MEMBER, args.timeout, expect,
            )
        )  # fmt: skip
    except (PairingError, LinkError) as exc:
        _err("waystation peer: pairing with %s failed: %s" % (where, exc))
        return EXIT_SYNC_FAILED
    except TimeoutError:
        _err("waystation peer: pairing with %s timed out" % where)
        return EXIT_SYNC_FAILED
    fingerprint = key_fingerprint(session.suite, paired.static_key)
    save_pin(session.data_dir, address, RelayPin(fingerprint, device_key, paired.discovery_key))
    _out("paired with relay %s at %s" % (fingerprint, where))
    return 0


def relay_target(
    args: argparse.Namespace, pins: dict[str, RelayPin] | None = None
) -> tuple[PeerAddress, str, Dialers] | None:
    """Where `--ble`, `--discover` or `--relay` points (address, its words for messages) and
    the dialers that reach it; None, said on stderr, when BLE is missing or nothing answered.
    With `--ble` and a relay paired over BLE that gave its discovery key (in `pins`), only that
    relay is dialled: the one whose advertised token is its token now.

    Raises:
        MemberError: a malformed or unresolvable --relay.
    """
    from node.app.sync_client import ble_dialers, member_dialers
    from node.lan.tcp import tcp_address
    from node.link import PeerAddress

    if args.ble:
        address = PeerAddress("ble", "any")
        pin = (pins or {}).get(str(address))
        want = None
        if pin is not None and pin.discovery_key:
            known = pin.knows_token
            want = lambda token: known(token, int(time.time()))  # noqa: E731
        try:
            dialers = ble_dialers(args.adapter, want)
        except LinkError as exc:
            _err("waystation peer: cannot reach a relay over BLE: %s" % exc)
            return None
        return address, "your relay over BLE" if want else "a relay over BLE", dialers
    if getattr(args, "discover", False):
        found = _discover(args)
        if found is None:
            return None
        host, port = found
    else:
        host, port = _relay_address(args.relay)
    return tcp_address(host, port), "%s:%d" % (host, port), member_dialers()


def relay_pin(
    session: PeerSession, address: PeerAddress, pin_arg: str | None
) -> tuple[str | None, bytes | None]:
    """(pinned fingerprint, our device key) for this relay; `--pin` is remembered.

    Raises:
        MemberError: `--pin` differs from the pin already recorded for this address.
    """
    from node.app.pair_client import RelayPin, load_pins, save_pin

    pin = load_pins(session.data_dir).get(str(address))
    if pin_arg is not None:
        wanted = pin_arg.strip().lower()
        if pin is not None and pin.fingerprint != wanted:
            raise MemberError(
                "%s is pinned to %s already, not %s (remove it from %s to change it)"
                % (address, pin.fingerprint, wanted, session.data_dir / "relays.json")
            )
        if pin is None:
            pin = RelayPin(wanted)
            save_pin(session.data_dir, address, pin)
    if pin is None:
        return None, None
    return pin.fingerprint, pin.device_key or None


def _relay_address(text: str) -> tuple[str, int]:
    """--relay HOST:PORT, checked and resolved, with errors in the user's words.

    Raises:
        NodeError: a URL, a malformed HOST:PORT, a port out of range, or a host that does not
            resolve (each message names --relay).
    """
    from node.app.config import parse_host_port

    if "://" in text or text.startswith("//"):
        raise MemberError("--relay takes HOST:PORT (e.g. 192.0.2.7:4740), not a URL: %r" % text)
    address = parse_host_port(text, "--relay")
    try:
        socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise MemberError(
            "--relay: cannot find host %r (check the name, or give its IP address)" % address.host
        ) from None
    return address.host, address.port


def _discover(args: argparse.Namespace) -> tuple[str, int] | None:
    """--discover: a relay on the LAN, or None after the deadline (said on stderr)."""
    from node.app.sync_client import discover_relay

    _err("looking for a relay on the LAN (zeroconf) for up to %.0f s ..." % args.timeout)
    try:
        host, port = asyncio.run(discover_relay(args.timeout, args.interface))
    except LinkError:
        _err(
            "waystation peer: no relay answered on the LAN within %.0f s: check that a relay runs"
            " on this network (`waystation run`) and that this machine allows multicast DNS, or"
            " name one with --relay HOST:PORT" % args.timeout
        )
        return None
    _err("found a relay at %s:%d" % (host, port))
    return host, port
