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

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from node.app.admission import AdmissionLimits
from node.app.config_rules import (
    Array,
    Bool,
    Choice,
    DevicePath,
    Fingerprint,
    Int,
    Listen,
    OptionalPath,
    Peer,
    PinHash,
    Rule,
    Seconds,
    SshKey,
    Text,
    type_name,
)
from node.app.config_rules import parse_peer as parse_peer
from node.app.config_rules import parse_pin_hash as parse_pin_hash
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
MAX_CONSOLE_DEVICES = 8
MAX_SSH_KEYS = 16
# Keys that were renamed: an old name is refused with the new one (not silently ignored).
RENAMED = {"console.devices": "console.ports"}


def _rule(rule: Rule) -> dict[str, Rule]:
    return {"rule": rule}


def _section(cls: type) -> dict[str, type]:
    return {"section": cls}


# --------------------------------------------------------------------------------------------
# The schema. Field order is the order keys are checked in; defaults live in default.toml.


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """[node]: where the node keeps its state and what the operator calls it."""

    data_dir: Path | None = field(metadata=_rule(OptionalPath()))
    name: str = field(metadata=_rule(Text(64)))


@dataclass(frozen=True, slots=True)
class LanConfig:
    """[lan]: TCP listener addresses, zeroconf, and relays to sync with (peer addresses)."""

    listen: tuple[HostPort, ...] = field(metadata=_rule(Listen()))
    zeroconf: bool = field(metadata=_rule(Bool()))
    peers: tuple[PeerAddress, ...] = field(metadata=_rule(Array(Peer(), MAX_PEERS)))
    sync_interval_s: float = field(metadata=_rule(Seconds(1, 86400)))


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """[store]: limits, expiry and group commit of the SQLite store."""

    max_entry_bytes: int = field(metadata=_rule(Int(KIB, 16 * MIB)))
    max_log_bytes: int = field(metadata=_rule(Int(KIB, 1 << 40)))
    max_total_bytes: int = field(metadata=_rule(Int(MIB, 1 << 42)))
    expiry_days: int = field(metadata=_rule(Int(1, 3650)))
    commit_interval_ms: int = field(metadata=_rule(Int(0, 1000)))
    journal: str = field(metadata=_rule(Choice(("wal", "rollback"))))  # schema.JOURNALS


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """[relay]: which logs the relay carries, how many links it serves, and admission limits."""

    community_mode: bool = field(metadata=_rule(Bool()))
    community_log_bytes: int = field(metadata=_rule(Int(KIB, 1 << 40)))
    max_sessions: int = field(metadata=_rule(Int(1, 4096)))
    max_pending: int = field(metadata=_rule(Int(1, 4096)))
    max_links_per_source: int = field(metadata=_rule(Int(1, 8192)))
    max_handshakes_per_source: int = field(metadata=_rule(Int(1, 4096)))
    idle_session_s: float = field(metadata=_rule(Seconds(1, 86400)))
    trusted: tuple[str, ...] = field(metadata=_rule(Array(Fingerprint(), MAX_PEERS)))
    pairing_window_s: float = field(metadata=_rule(Seconds(10, 3600)))
    device_log_bytes: int = field(metadata=_rule(Int(KIB, 1 << 40)))


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """[session]: deadlines and bounds of one link session."""

    handshake_timeout_s: float = field(metadata=_rule(Seconds(0.1, 300)))
    idle_timeout_s: float = field(metadata=_rule(Seconds(1, 86400)))
    max_frame_bytes: int = field(metadata=_rule(Int(MAX_NOISE_MESSAGE, 16 * MIB)))
    credit_bytes: int = field(metadata=_rule(Int(MIN_WINDOW, 256 * MIB)))


@dataclass(frozen=True, slots=True)
class BleConfig:
    """[radio.ble]: the BLE GATT peripheral and central (node/radio/, docs/ble.md)."""

    enabled: bool = field(metadata=_rule(Bool()))
    adapter: str = field(metadata=_rule(Text(16, ident=True)))
    advertising_interval_ms: int = field(metadata=_rule(Int(20, 10240)))
    max_connections: int = field(metadata=_rule(Int(1, 32)))
    max_mtu: int = field(metadata=_rule(Int(23, 517)))
    acquire: bool = field(metadata=_rule(Bool()))
    central_max_links: int = field(metadata=_rule(Int(0, 16)))
    central_min_rssi: int = field(metadata=_rule(Int(-127, 0)))
    central_connect_interval_s: float = field(metadata=_rule(Seconds(0, 600)))


@dataclass(frozen=True, slots=True)
class RadioConfig:
    """[radio]: holds only sub-sections."""

    ble: BleConfig = field(metadata=_section(BleConfig))


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """[console]: the serial management console (ports, line speed, optional PIN)."""

    ports: tuple[str, ...] = field(metadata=_rule(Array(DevicePath(), MAX_CONSOLE_DEVICES)))
    baud: int = field(metadata=_rule(Choice(BAUD_RATES)))
    pin_hash: str = field(metadata=_rule(PinHash()))


@dataclass(frozen=True, slots=True)
class SshConfig:
    """[ssh]: SSH logins on the Raspberry Pi image (docs/operations.md); the daemon ignores it."""

    authorized_keys: tuple[str, ...] = field(metadata=_rule(Array(SshKey(), MAX_SSH_KEYS)))


@dataclass(frozen=True, slots=True)
class LogConfig:
    """[log]: logging."""

    level: str = field(metadata=_rule(Choice(LOG_LEVELS)))


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
    ssh: SshConfig = field(metadata=_section(SshConfig))
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
            prefix.rstrip(".") or "(top)", "must be a table, got %s" % type_name(table)
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
        node = replace(node, data_dir=OptionalPath().convert(str(data), "node.data_dir"))
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
            host = Text(253).convert(name, "--interface")
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
