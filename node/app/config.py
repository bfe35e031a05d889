"""The relay's configuration: TOML in, frozen dataclasses out.

Theory of operation: the embedded ``node/app/default.toml`` holds every key with its default. An
operator's file (``--config``, or ``waystation.toml`` on the boot partition) is merged over it key
by key, so it only needs the keys it changes; command-line flags are applied last
(:func:`apply_overrides`). The merged table is checked against the schema below, section by
section in a fixed order: the first unknown key, wrong type or out-of-range value raises one
:class:`~node.errors.ConfigError` naming the dotted key (``store.max_entry_bytes``) and the reason,
so the daemon never starts half-configured. ``config/waystation.toml`` documents every key and
is checked against ``default.toml`` by the tests. docs/operations.md lists the keys.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from node.app.admission import AdmissionLimits
from node.errors import ConfigError, LocalProtocolError
from node.lan.address import HostPort as HostPort
from node.lan.address import parse_host_port as parse_host_port
from node.link import PeerAddress
from node.proto.session import MIN_WINDOW, SessionLimits
from node.sync.store import Limits

# Members and relays send whole Noise messages, up to 65535 bytes, as single frames: a relay that
# accepted less would refuse ordinary traffic.
MAX_NOISE_MESSAGE = 65535

KIB = 1024
MIB = 1024 * KIB

LOG_LEVELS = ("debug", "info", "warning", "error")
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
MAX_PEERS = 64
MAX_LISTEN = 16
MAX_CONSOLE_DEVICES = 8
# Keys that were renamed: an old name is refused with the new one (not silently ignored).
RENAMED = {"console.devices": "console.ports"}


# --------------------------------------------------------------------------------------------
# Value rules: each turns a TOML value into the typed value or raises ConfigError(key, reason).


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


class _Rule:
    def convert(self, value: object, key: str) -> Any:
        raise NotImplementedError


class _Bool(_Rule):
    def convert(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false, got %s" % _type_name(value))
        return value


class _Int(_Rule):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def convert(self, value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, "must be an integer, got %s" % _type_name(value))
        if not self.low <= value <= self.high:
            raise ConfigError(key, "must be in %d..%d, got %d" % (self.low, self.high, value))
        return value


class _Seconds(_Rule):
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def convert(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, "must be a number of seconds, got %s" % _type_name(value))
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ConfigError(
                key, "must be in %g..%g seconds, got %r" % (self.low, self.high, value)
            )
        return float(value)


class _Choice(_Rule):
    def __init__(self, choices: tuple[object, ...]) -> None:
        self.choices = choices

    def convert(self, value: object, key: str) -> Any:
        kind = type(self.choices[0])
        if type(value) is not kind:
            raise ConfigError(
                key, "must be %s, got %s" % (_type_name(self.choices[0]), _type_name(value))
            )
        if value not in self.choices:
            raise ConfigError(
                key, "must be one of %s, got %r" % (", ".join(map(repr, self.choices)), value)
            )
        return value


class _Text(_Rule):
    def __init__(self, max_length: int, *, empty: bool = False, ident: bool = False) -> None:
        self.max_length, self.empty, self.ident = max_length, empty, ident

    def convert(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise ConfigError(key, "must be a string, got %s" % _type_name(value))
        if not value and not self.empty:
            raise ConfigError(key, "must not be empty")
        if len(value) > self.max_length:
            raise ConfigError(key, "must be at most %d characters" % self.max_length)
        if not value.isprintable():
            raise ConfigError(key, "must not contain control characters")
        if self.ident and not (value.isascii() and value.replace("_", "").isalnum()):
            raise ConfigError(key, "must be letters, digits and '_', got %r" % value)
        return value


class _OptionalPath(_Rule):
    def convert(self, value: object, key: str) -> Path | None:
        text = _Text(4096, empty=True).convert(value, key)
        return Path(text) if text else None


class _Endpoint(_Rule):
    def __init__(self, *, allow_port_zero: bool) -> None:
        self.allow_port_zero = allow_port_zero

    def convert(self, value: object, key: str) -> HostPort:
        return parse_host_port(value, key, allow_port_zero=self.allow_port_zero)  # type: ignore[arg-type]


class _Peer(_Rule):
    """A relay peer: ``KIND:WHERE``; a bare ``HOST:PORT`` means ``tcp:HOST:PORT``."""

    def convert(self, value: object, key: str) -> PeerAddress:
        return parse_peer(value, key)


class _Listen(_Rule):
    """``HOST:PORT`` or an array of them; port 0 allowed; HOST may name an interface."""

    def convert(self, value: object, key: str) -> tuple[HostPort, ...]:
        if isinstance(value, str):
            return (parse_host_port(value, key, allow_port_zero=True),)
        if not isinstance(value, list):
            raise ConfigError(
                key, "must be a string HOST:PORT or an array of them, got %s" % _type_name(value)
            )
        if not value:
            raise ConfigError(key, "must name at least one address")
        items: tuple[HostPort, ...] = _Array(_Endpoint(allow_port_zero=True), MAX_LISTEN).convert(
            value, key
        )
        return items


class _Array(_Rule):
    def __init__(self, item: _Rule, max_items: int) -> None:
        self.item, self.max_items = item, max_items

    def convert(self, value: object, key: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise ConfigError(key, "must be an array, got %s" % _type_name(value))
        if len(value) > self.max_items:
            raise ConfigError(key, "at most %d items, got %d" % (self.max_items, len(value)))
        items = tuple(self.item.convert(v, "%s[%d]" % (key, i)) for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise ConfigError(key, "lists the same item twice")
        return items


class _Fingerprint(_Rule):
    """A key fingerprint as `waystation pair` shows it: 8 groups of 4 hex digits."""

    def convert(self, value: object, key: str) -> str:
        text = _Text(39).convert(value, key).lower()
        groups = text.split("-")
        if len(groups) != 8 or any(
            len(g) != 4 or g.strip("0123456789abcdef") for g in groups
        ):
            raise ConfigError(key, "must be a fingerprint like 1a2b-3c4d-... (8 groups of 4 hex)")
        return text


class _DevicePath(_Rule):
    def convert(self, value: object, key: str) -> str:
        text = _Text(4096).convert(value, key)
        if not text.startswith("/"):
            raise ConfigError(key, "must be an absolute path such as /dev/ttyGS0, got %r" % text)
        return text


class _PinHash(_Rule):
    """`pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX` (`waystation console --hash-pin`), or ""."""

    def convert(self, value: object, key: str) -> str:
        text = _Text(512, empty=True).convert(value, key)
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


def _rule(rule: _Rule) -> dict[str, _Rule]:
    return {"rule": rule}


def _section(cls: type) -> dict[str, type]:
    return {"section": cls}


# --------------------------------------------------------------------------------------------
# The schema. Field order is the order keys are checked in; defaults live in default.toml.


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """[node]: where the node keeps its state and what the operator calls it."""

    data_dir: Path | None = field(metadata=_rule(_OptionalPath()))
    name: str = field(metadata=_rule(_Text(64)))


@dataclass(frozen=True, slots=True)
class LanConfig:
    """[lan]: TCP listener addresses, zeroconf, and relays to sync with (peer addresses)."""

    listen: tuple[HostPort, ...] = field(metadata=_rule(_Listen()))
    zeroconf: bool = field(metadata=_rule(_Bool()))
    peers: tuple[PeerAddress, ...] = field(metadata=_rule(_Array(_Peer(), MAX_PEERS)))
    sync_interval_s: float = field(metadata=_rule(_Seconds(1, 86400)))


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """[store]: limits, expiry and group commit of the SQLite store."""

    max_entry_bytes: int = field(metadata=_rule(_Int(KIB, 16 * MIB)))
    max_log_bytes: int = field(metadata=_rule(_Int(KIB, 1 << 40)))
    max_total_bytes: int = field(metadata=_rule(_Int(MIB, 1 << 42)))
    expiry_days: int = field(metadata=_rule(_Int(1, 3650)))
    commit_interval_ms: int = field(metadata=_rule(_Int(0, 1000)))
    journal: str = field(metadata=_rule(_Choice(("wal", "rollback"))))  # schema.JOURNALS


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """[relay]: which logs the relay carries, how many links it serves, and admission limits."""

    community_mode: bool = field(metadata=_rule(_Bool()))
    community_log_bytes: int = field(metadata=_rule(_Int(KIB, 1 << 40)))
    max_sessions: int = field(metadata=_rule(_Int(1, 4096)))
    max_pending: int = field(metadata=_rule(_Int(1, 4096)))
    max_links_per_source: int = field(metadata=_rule(_Int(1, 8192)))
    max_handshakes_per_source: int = field(metadata=_rule(_Int(1, 4096)))
    idle_session_s: float = field(metadata=_rule(_Seconds(1, 86400)))
    trusted: tuple[str, ...] = field(metadata=_rule(_Array(_Fingerprint(), MAX_PEERS)))
    pairing_window_s: float = field(metadata=_rule(_Seconds(10, 3600)))
    device_log_bytes: int = field(metadata=_rule(_Int(KIB, 1 << 40)))


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """[session]: deadlines and bounds of one link session."""

    handshake_timeout_s: float = field(metadata=_rule(_Seconds(0.1, 300)))
    idle_timeout_s: float = field(metadata=_rule(_Seconds(1, 86400)))
    max_frame_bytes: int = field(metadata=_rule(_Int(MAX_NOISE_MESSAGE, 16 * MIB)))
    credit_bytes: int = field(metadata=_rule(_Int(MIN_WINDOW, 256 * MIB)))


@dataclass(frozen=True, slots=True)
class BleConfig:
    """[radio.ble]: the BLE GATT peripheral and central (node/radio/, docs/ble.md)."""

    enabled: bool = field(metadata=_rule(_Bool()))
    adapter: str = field(metadata=_rule(_Text(16, ident=True)))
    advertising_interval_ms: int = field(metadata=_rule(_Int(20, 10240)))
    max_connections: int = field(metadata=_rule(_Int(1, 32)))
    max_mtu: int = field(metadata=_rule(_Int(23, 517)))
    acquire: bool = field(metadata=_rule(_Bool()))
    central_max_links: int = field(metadata=_rule(_Int(0, 16)))
    central_min_rssi: int = field(metadata=_rule(_Int(-127, 0)))
    central_connect_interval_s: float = field(metadata=_rule(_Seconds(0, 600)))


@dataclass(frozen=True, slots=True)
class RadioConfig:
    """[radio]: holds only sub-sections."""

    ble: BleConfig = field(metadata=_section(BleConfig))


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """[console]: the serial management console (ports, line speed, optional PIN)."""

    ports: tuple[str, ...] = field(metadata=_rule(_Array(_DevicePath(), MAX_CONSOLE_DEVICES)))
    baud: int = field(metadata=_rule(_Choice(BAUD_RATES)))
    pin_hash: str = field(metadata=_rule(_PinHash()))


@dataclass(frozen=True, slots=True)
class LogConfig:
    """[log]: logging."""

    level: str = field(metadata=_rule(_Choice(LOG_LEVELS)))


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. Build with :func:`load_config` or :func:`parse_config`."""

    node: NodeConfig = field(metadata=_section(NodeConfig))
    lan: LanConfig = field(metadata=_section(LanConfig))
    store: StoreConfig = field(metadata=_section(StoreConfig))
    relay: RelayConfig = field(metadata=_section(RelayConfig))
    session: SessionConfig = field(metadata=_section(SessionConfig))
    radio: RadioConfig = field(metadata=_section(RadioConfig))
    console: ConsoleConfig = field(metadata=_section(ConsoleConfig))
    log: LogConfig = field(metadata=_section(LogConfig))


def schema_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, in checking order (``node.data_dir``, ...)."""
    keys: list[str] = []
    for f in fields(cls):
        if "section" in f.metadata:
            keys.extend(schema_keys(f.metadata["section"], prefix + f.name + "."))
        else:
            keys.append(prefix + f.name)
    return keys


def _build(cls: type, table: object, prefix: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(
            prefix.rstrip(".") or "(top)", "must be a table, got %s" % _type_name(table)
        )
    known = [f.name for f in fields(cls)]
    for old, new in RENAMED.items():
        section, _, name = old.rpartition(".")
        if prefix == section + "." and name in table:
            raise ConfigError(old, "renamed: write %s instead (same values)" % new)
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(prefix + unknown[0], "unknown key")
    values = {}
    for f in fields(cls):
        key = prefix + f.name
        if f.name not in table:
            raise ConfigError(key, "missing (the embedded defaults lack it: a bug)")
        if "section" in f.metadata:
            values[f.name] = _build(f.metadata["section"], table[f.name], key + ".")
        else:
            values[f.name] = f.metadata["rule"].convert(table[f.name], key)
    return cls(**values)


def _check_relations(config: Config) -> None:
    store, session = config.store, config.session
    if store.max_log_bytes < store.max_entry_bytes:
        raise ConfigError(
            "store.max_log_bytes",
            "must be at least store.max_entry_bytes (%d), got %d"
            % (store.max_entry_bytes, store.max_log_bytes),
        )
    if store.max_total_bytes < store.max_log_bytes:
        raise ConfigError(
            "store.max_total_bytes",
            "must be at least store.max_log_bytes (%d), got %d"
            % (store.max_log_bytes, store.max_total_bytes),
        )
    if config.relay.community_log_bytes > store.max_log_bytes:
        raise ConfigError(
            "relay.community_log_bytes",
            "must be at most store.max_log_bytes (%d), got %d"
            % (store.max_log_bytes, config.relay.community_log_bytes),
        )
    relay = config.relay
    if relay.max_handshakes_per_source > relay.max_links_per_source:
        raise ConfigError(
            "relay.max_handshakes_per_source",
            "must be at most relay.max_links_per_source (%d), got %d"
            % (relay.max_links_per_source, relay.max_handshakes_per_source),
        )
    if session.credit_bytes < session.max_frame_bytes:
        raise ConfigError(
            "session.credit_bytes",
            "must be at least session.max_frame_bytes (%d), got %d"
            % (session.max_frame_bytes, session.credit_bytes),
        )


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = _merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "invalid TOML: %s" % exc) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(
            source, "invalid TOML: arrays or inline tables nested too deeply"
        ) from None


def default_toml() -> str:
    """The text of the embedded default configuration (``node/app/default.toml``)."""
    return resources.files("node.app").joinpath("default.toml").read_text(encoding="utf-8")


def parse_config(text: str, source: str = "<config>") -> Config:
    """Build a Config from TOML text merged over the embedded defaults.

    Args:
        text: TOML; keys it leaves out keep their defaults.
        source: a name for the text (a file path), used when the TOML itself is malformed.

    Raises:
        ConfigError: the first unknown key, wrong type, out-of-range value or inconsistency,
            naming the dotted key.
    """
    table = _merge(_parse_toml(default_toml(), "node/app/default.toml"), _parse_toml(text, source))
    config: Config = _build(Config, table, "")
    _check_relations(config)
    # Build what the daemon will build, so nothing it needs can fail after it has started.
    try:
        session_limits(config)
    except LocalProtocolError as exc:
        raise ConfigError("session", str(exc)) from None
    try:
        store_limits(config)
    except LocalProtocolError as exc:
        raise ConfigError("store", str(exc)) from None
    return config


def session_limits(config: Config) -> SessionLimits:
    """Session deadlines (ms) and window from the [session] and [store] sections."""
    s = config.session
    return SessionLimits(
        handshake_timeout=int(s.handshake_timeout_s * 1000),
        idle_timeout=int(s.idle_timeout_s * 1000),
        keepalive_interval=max(1000, int(s.idle_timeout_s * 1000 / 3)),
        window=s.credit_bytes,
        max_item=config.store.max_entry_bytes + 4096,
    )


def admission_limits(config: Config) -> AdmissionLimits:
    """Admission limits from the [relay] section and the handshake deadline of [session]."""
    r = config.relay
    return AdmissionLimits(
        max_sessions=r.max_sessions,
        max_pending=r.max_pending,
        max_links_per_source=r.max_links_per_source,
        max_handshakes_per_source=r.max_handshakes_per_source,
        handshake_s=config.session.handshake_timeout_s,
        idle_session_s=r.idle_session_s,
    )


def store_limits(config: Config) -> Limits:
    """Store limits from the [store] section."""
    s = config.store
    return Limits(
        max_entry_bytes=s.max_entry_bytes,
        max_log_bytes=s.max_log_bytes,
        max_total_bytes=s.max_total_bytes,
        expiry_seconds=s.expiry_days * 86400,
    )


def default_config() -> Config:
    """The embedded defaults alone."""
    return parse_config("", "node/app/default.toml")


def load_config(path: Path | None = None) -> Config:
    """Load ``path`` (or only the defaults when None).

    Raises:
        ConfigError: the file cannot be read (key is the path) or is invalid (key is the key).
    """
    if path is None:
        return default_config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "cannot read the configuration: %s" % exc) from None
    return parse_config(text, str(path))


def parse_peer(text: object, key: str = "lan.peers") -> PeerAddress:
    """A relay peer address from the config or a flag: ``tcp:HOST:PORT``, or bare ``HOST:PORT``.

    Raises:
        ConfigError: naming `key`: not a string, or a tcp address that is not HOST:PORT.
    """
    if not isinstance(text, str):
        raise ConfigError(key, "must be a string such as tcp:HOST:PORT, got %s" % _type_name(text))
    address = PeerAddress.parse(text, key)
    if address.kind != "tcp":
        raise ConfigError(key, "%r: only tcp relay peers can be dialed in this version" % text)
    where = parse_host_port(address.where, key)
    return PeerAddress("tcp", str(where))  # one spelling per peer: duplicates are found


def apply_overrides(
    config: Config,
    *,
    data: str | Path | None = None,
    listen: str | HostPort | Sequence[str | HostPort] | None = None,
    interfaces: Sequence[str] = (),
    peers: Iterable[str | HostPort | PeerAddress] = (),
) -> Config:
    """Return ``config`` with command-line flags applied on top.

    Args:
        config: the loaded configuration.
        data: ``--data DIR``: replaces ``node.data_dir``.
        listen: ``--listen HOST:PORT`` (repeatable): replaces ``lan.listen`` (port 0 picks a
            free port).
        interfaces: ``--interface NAME`` (repeatable): listen on these interfaces (``eth0``) or
            addresses instead, at the port of the first ``lan.listen`` address.
        peers: ``--peer [tcp:]HOST:PORT`` (repeatable): added to ``lan.peers``, duplicates
            dropped.

    Raises:
        ConfigError: an override is malformed (named by the flag it came from).
    """
    node, lan = config.node, config.lan
    if data is not None:
        node = replace(node, data_dir=_OptionalPath().convert(str(data), "node.data_dir"))
    if listen is not None:
        given = [listen] if isinstance(listen, str | HostPort) else list(listen)
        endpoints = tuple(
            p if isinstance(p, HostPort) else parse_host_port(p, "lan.listen", allow_port_zero=True)
            for p in given
        )
        lan = replace(lan, listen=endpoints or lan.listen)
    if interfaces:
        port = lan.listen[0].port
        chosen: list[HostPort] = []
        for name in interfaces:
            host = _Text(253).convert(name, "--interface")
            text = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
            chosen.append(parse_host_port(text, "--interface", allow_port_zero=True))
        lan = replace(lan, listen=tuple(dict.fromkeys(chosen)))
    extra = [
        p
        if isinstance(p, PeerAddress)
        else parse_peer(str(p) if isinstance(p, HostPort) else p, "lan.peers")
        for p in peers
    ]
    if extra:
        merged = tuple(dict.fromkeys((*lan.peers, *extra)))
        if len(merged) > MAX_PEERS:
            raise ConfigError("lan.peers", "at most %d items, got %d" % (MAX_PEERS, len(merged)))
        lan = replace(lan, peers=merged)
    return replace(config, node=node, lan=lan)
