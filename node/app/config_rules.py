"""Value rules of the relay's configuration schema (node/app/config.py).

Each rule turns one TOML value into the typed value the schema's field holds, or raises
:class:`~node.errors.ConfigError` naming the dotted key and saying what is accepted.
"""

from __future__ import annotations

import base64
import binascii
import math
from pathlib import Path
from typing import Any

from node.errors import ConfigError
from node.lan.address import HostPort, parse_host_port
from node.link import PeerAddress

MAX_LISTEN = 16
# OpenSSH public key types a relay's [ssh] authorized_keys accepts (no DSA: OpenSSH 9 refuses it).
SSH_KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)  # fmt: skip


def type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


class Rule:
    """A value rule: :meth:`convert` or ConfigError(key, reason)."""

    def convert(self, value: object, key: str) -> Any:
        raise NotImplementedError


class Bool(Rule):
    def convert(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false, got %s" % type_name(value))
        return value


class Int(Rule):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def convert(self, value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, "must be an integer, got %s" % type_name(value))
        if not self.low <= value <= self.high:
            raise ConfigError(key, "must be in %d..%d, got %d" % (self.low, self.high, value))
        return value


class Seconds(Rule):
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def convert(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, "must be a number of seconds, got %s" % type_name(value))
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ConfigError(
                key, "must be in %g..%g seconds, got %r" % (self.low, self.high, value)
            )
        return float(value)


class Choice(Rule):
    def __init__(self, choices: tuple[object, ...]) -> None:
        self.choices = choices

    def convert(self, value: object, key: str) -> Any:
        kind = type(self.choices[0])
        if type(value) is not kind:
            raise ConfigError(
                key, "must be %s, got %s" % (type_name(self.choices[0]), type_name(value))
            )
        if value not in self.choices:
            raise ConfigError(
                key, "must be one of %s, got %r" % (", ".join(map(repr, self.choices)), value)
            )
        return value


class Text(Rule):
    def __init__(self, max_length: int, *, empty: bool = False, ident: bool = False) -> None:
        self.max_length, self.empty, self.ident = max_length, empty, ident

    def convert(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise ConfigError(key, "must be a string, got %s" % type_name(value))
        if not value and not self.empty:
            raise ConfigError(key, "must not be empty")
        if len(value) > self.max_length:
            raise ConfigError(key, "must be at most %d characters" % self.max_length)
        if not value.isprintable():
            raise ConfigError(key, "must not contain control characters")
        if self.ident and not (value.isascii() and value.replace("_", "").isalnum()):
            raise ConfigError(key, "must be letters, digits and '_', got %r" % value)
        return value


class OptionalPath(Rule):
    def convert(self, value: object, key: str) -> Path | None:
        text = Text(4096, empty=True).convert(value, key)
        return Path(text) if text else None


class Endpoint(Rule):
    def __init__(self, *, allow_port_zero: bool) -> None:
        self.allow_port_zero = allow_port_zero

    def convert(self, value: object, key: str) -> HostPort:
        return parse_host_port(value, key, allow_port_zero=self.allow_port_zero)  # type: ignore[arg-type]


class Peer(Rule):
    """A relay peer: ``KIND:WHERE``; a bare ``HOST:PORT`` means ``tcp:HOST:PORT``."""

    def convert(self, value: object, key: str) -> PeerAddress:
        return parse_peer(value, key)


class Listen(Rule):
    """``HOST:PORT`` or an array of them; port 0 allowed; HOST may name an interface."""

    def convert(self, value: object, key: str) -> tuple[HostPort, ...]:
        if isinstance(value, str):
            return (parse_host_port(value, key, allow_port_zero=True),)
        if not isinstance(value, list):
            raise ConfigError(
                key, "must be a string HOST:PORT or an array of them, got %s" % type_name(value)
            )
        if not value:
            raise ConfigError(key, "must name at least one address")
        items: tuple[HostPort, ...] = Array(Endpoint(allow_port_zero=True), MAX_LISTEN).convert(
            value, key
        )
        return items


class Array(Rule):
    def __init__(self, item: Rule, max_items: int) -> None:
        self.item, self.max_items = item, max_items

    def convert(self, value: object, key: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise ConfigError(key, "must be an array, got %s" % type_name(value))
        if len(value) > self.max_items:
            raise ConfigError(key, "at most %d items, got %d" % (self.max_items, len(value)))
        items = tuple(self.item.convert(v, "%s[%d]" % (key, i)) for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise ConfigError(key, "lists the same item twice")
        return items


class Fingerprint(Rule):
    """A key fingerprint as `waystation pair` shows it: 8 groups of 4 hex digits."""

    def convert(self, value: object, key: str) -> str:
        text = Text(39).convert(value, key).lower()
        groups = text.split("-")
        if len(groups) != 8 or any(len(g) != 4 or g.strip("0123456789abcdef") for g in groups):
            raise ConfigError(key, "must be a fingerprint like 1a2b-3c4d-... (8 groups of 4 hex)")
        return text


class DevicePath(Rule):
    def convert(self, value: object, key: str) -> str:
        text = Text(4096).convert(value, key)
        if not text.startswith("/"):
            raise ConfigError(key, "must be an absolute path such as /dev/ttyGS0, got %r" % text)
        return text


class PinHash(Rule):
    """`pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX` (`waystation console --hash-pin`), or ""."""

    def convert(self, value: object, key: str) -> str:
        text = Text(512, empty=True).convert(value, key)
        if text and parse_pin_hash(text) is None:
            raise ConfigError(
                key,
                'must be "" or pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX as printed by '
                "`waystation console --hash-pin`",
            )
        return text


def parse_pin_hash(text: str) -> tuple[int, bytes, bytes] | None:
    """(iterations, salt, digest) of a console PIN hash, or None when it is malformed."""
    parts = text.split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2-sha256" or not parts[1].isdigit():
        return None
    try:
        salt, digest = bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
    except ValueError:
        return None
    iterations = int(parts[1])
    if not 1000 <= iterations <= 10_000_000 or len(salt) < 8 or len(digest) != 32:
        return None
    return iterations, salt, digest


def parse_peer(text: object, key: str = "lan.peers") -> PeerAddress:
    """A relay peer address from the config or a flag: ``tcp:HOST:PORT``, or bare ``HOST:PORT``.

    Raises:
        ConfigError: naming `key`: not a string, or a tcp address that is not HOST:PORT.
    """
    if not isinstance(text, str):
        raise ConfigError(key, "must be a string such as tcp:HOST:PORT, got %s" % type_name(text))
    address = PeerAddress.parse(text, key)
    if address.kind != "tcp":
        raise ConfigError(key, "%r: only tcp relay peers can be dialed in this version" % text)
    where = parse_host_port(address.where, key)
    return PeerAddress("tcp", str(where))  # one spelling per peer: duplicates are found


class SshKey(Rule):
    """One OpenSSH public key line, ``TYPE BASE64 [COMMENT]`` (as in ``~/.ssh/id_ed25519.pub``).

    No ``authorized_keys`` options in front (``command=...``, ``from=...``): the key alone. The
    base64 must decode to a key blob that names the same type.
    """

    def convert(self, value: object, key: str) -> str:
        text = Text(16384).convert(value, key).strip()
        fields = text.split(None, 2)
        if len(fields) < 2 or fields[0] not in SSH_KEY_TYPES:
            raise ConfigError(
                key,
                "must be an OpenSSH public key line (%s BASE64 [COMMENT]), without options"
                % " | ".join(SSH_KEY_TYPES[:2]),
            )
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise ConfigError(key, "the key's base64 does not decode") from None
        named = int.from_bytes(blob[:4], "big")
        if blob[4 : 4 + named] != fields[0].encode():
            raise ConfigError(key, "the key's data is not a %s key" % fields[0])
        return text
