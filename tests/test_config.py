"""node.app.config: defaults, the documented example file, every kind of bad value, overrides."""

import base64
import tomllib
from pathlib import Path

import pytest

from node.app.config import (
    Config,
    HostPort,
    apply_overrides,
    default_config,
    default_toml,
    load_config,
    parse_config,
    parse_host_port,
    schema_keys,
)
from node.errors import ConfigError
from node.link import PeerAddress

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "waystation.toml"
# An OpenSSH ed25519 public key line: the blob is (string "ssh-ed25519", string 32-byte key).
ED25519_BLOB = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))
ED25519 = "ssh-ed25519 " + base64.b64encode(ED25519_BLOB).decode()


def flatten(table: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for name, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + name + "."))
        else:
            flat[prefix + name] = value
    return flat


def test_defaults_load() -> None:
    config = default_config()
    assert isinstance(config, Config)
    # IPv4 and IPv6 by default (issue 10 §1): two sockets, one port.
    assert config.lan.listen == (HostPort("0.0.0.0", 4740), HostPort("::", 4740))
    assert config.lan.zeroconf is True
    assert config.lan.peers == ()
    assert config.store.max_entry_bytes == 262144
    assert config.store.expiry_days == 30
    assert config.relay.community_mode is True
    assert config.node.data_dir is None
    assert load_config(None) == config


def test_config_is_frozen() -> None:
    config = default_config()
    with pytest.raises(AttributeError):
        config.store.expiry_days = 1  # type: ignore[misc]


def test_default_toml_has_exactly_the_schema_keys() -> None:
    assert sorted(flatten(tomllib.loads(default_toml()))) == sorted(schema_keys())


def test_example_file_equals_embedded_defaults() -> None:
    assert flatten(tomllib.loads(EXAMPLE.read_text())) == flatten(tomllib.loads(default_toml()))
    assert load_config(EXAMPLE) == default_config()


def test_example_file_documents_every_key() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[index - 1].startswith("#"), "undocumented key line %r" % line
    assert len(schema_keys()) == 40


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text("[store]\nexpiry_days = 7\n[radio.ble]\nenabled = true\n")
    config = load_config(path)
    assert config.store.expiry_days == 7
    assert config.radio.ble.enabled is True
    assert config.radio.ble.adapter == "hci0"
    assert config.store.max_entry_bytes == 262144


def test_values_convert() -> None:
    config = parse_config(
        '[lan]\npeers = ["relay.local:4740", "[fe80::1%eth0]:9", "10.0.0.2:1"]\n'
        'listen = "[::]:0"\nsync_interval_s = 2.5\n'
        '[node]\ndata_dir = "/var/lib/waystation"\n'
        '[console]\nports = ["/dev/ttyGS0", "/dev/ttyS1"]\n'
    )
    # Relay peers are peer addresses; a bare HOST:PORT means tcp (older files).
    assert config.lan.peers == (
        PeerAddress("tcp", "relay.local:4740"),
        PeerAddress("tcp", "[fe80::1%eth0]:9"),
        PeerAddress("tcp", "10.0.0.2:1"),
    )
    assert config.lan.listen == (HostPort("::", 0),)
    assert config.lan.sync_interval_s == 2.5
    assert config.node.data_dir == Path("/var/lib/waystation")
    assert config.console.ports == ("/dev/ttyGS0", "/dev/ttyS1")


def test_ssh_keys_convert() -> None:
    """A key line as `ssh-keygen` writes it, with or without a comment; none by default."""
    assert default_config().ssh.authorized_keys == ()
    text = '[ssh]\nauthorized_keys = ["%s", "%s me@laptop "]\n' % (ED25519, ED25519 + "AA")
    with pytest.raises(ConfigError, match=r"ssh.authorized_keys\[1\]: the key's base64"):
        parse_config(text)  # trailing data that is not base64 of whole bytes
    config = parse_config('[ssh]\nauthorized_keys = ["%s me@laptop "]\n' % ED25519)
    assert config.ssh.authorized_keys == (ED25519 + " me@laptop",)


BAD = [
    # unknown keys and sections
    ("[store]\nmax_entry_byte = 5\n", "store.max_entry_byte", "unknown key"),
    ("[stor]\nx = 1\n", "stor", "unknown key"),
    ("toplevel = 1\n", "toplevel", "unknown key"),
    ("[radio.wifi]\nenabled = true\n", "radio.wifi", "unknown key"),
    ("[radio.ble]\nenable = true\n", "radio.ble.enable", "unknown key"),
    # wrong types
    ('[store]\nmax_entry_bytes = "big"\n', "store.max_entry_bytes", "must be an integer"),
    ("[store]\nmax_entry_bytes = true\n", "store.max_entry_bytes", "must be an integer"),
    ("[store]\nmax_entry_bytes = 2048.0\n", "store.max_entry_bytes", "must be an integer"),
    ('[lan]\nzeroconf = "yes"\n', "lan.zeroconf", "must be true or false"),
    ("[lan]\nzeroconf = 1\n", "lan.zeroconf", "must be true or false"),
    ('[lan]\npeers = "a:1"\n', "lan.peers", "must be an array"),
    ("[lan]\npeers = [4740]\n", "lan.peers[0]", "must be a string"),
    ("[lan]\nlisten = 4740\n", "lan.listen", "must be a string"),
    ('[session]\nidle_timeout_s = "1m"\n', "session.idle_timeout_s", "number of seconds"),
    ("[session]\nidle_timeout_s = true\n", "session.idle_timeout_s", "number of seconds"),
    ('[console]\nbaud = "115200"\n', "console.baud", "must be an integer"),
    ("[log]\nlevel = 1\n", "log.level", "must be a string"),
    ("[node]\nname = 5\n", "node.name", "must be a string"),
    ("store = 5\n", "store", "must be a table"),
    ("[radio]\nble = false\n", "radio.ble", "must be a table"),
    # out of range / bad values
    ("[store]\nmax_entry_bytes = 5\n", "store.max_entry_bytes", "must be in 1024..16777216"),
    ("[store]\nexpiry_days = 0\n", "store.expiry_days", "got 0"),
    ("[store]\ncommit_interval_ms = -1\n", "store.commit_interval_ms", "0..1000"),
    ("[relay]\nmax_sessions = 0\n", "relay.max_sessions", "1..4096"),
    ("[relay]\nmax_pending = 0\n", "relay.max_pending", "1..4096"),
    ("[relay]\nmax_links_per_source = 0\n", "relay.max_links_per_source", "1..8192"),
    ("[relay]\nmax_handshakes_per_source = 0\n", "relay.max_handshakes_per_source", "1..4096"),
    ("[relay]\nidle_session_s = 0.5\n", "relay.idle_session_s", "1..86400"),
    ("[session]\nhandshake_timeout_s = 0\n", "session.handshake_timeout_s", "0.1..300"),
    ("[session]\nidle_timeout_s = nan\n", "session.idle_timeout_s", "seconds"),
    ("[session]\nidle_timeout_s = inf\n", "session.idle_timeout_s", "seconds"),
    ("[session]\nmax_frame_bytes = 100\n", "session.max_frame_bytes", "65535.."),
    ("[session]\nmax_frame_bytes = 512\n", "session.max_frame_bytes", "65535.."),
    ("[session]\ncredit_bytes = 512\n", "session.credit_bytes", "65536.."),
    ("[lan]\nsync_interval_s = 0.5\n", "lan.sync_interval_s", "1..86400"),
    ("[console]\nbaud = 12345\n", "console.baud", "one of"),
    ('[console]\nports = ["ttyS0"]\n', "console.ports[0]", "absolute path"),
    ('[console]\nports = ["/dev/a", "/dev/a"]\n', "console.ports", "twice"),
    # the old name of console.ports is refused, naming the new one
    ('[console]\ndevices = ["/dev/ttyS0"]\n', "console.devices", "write console.ports"),
    ('[console]\npin_hash = "1234"\n', "console.pin_hash", "--hash-pin"),
    ('[console]\npin_hash = "pbkdf2-sha256$10$00$00"\n', "console.pin_hash", "--hash-pin"),
    ('[relay]\ntrusted = ["abcd"]\n', "relay.trusted[0]", "8 groups of 4 hex"),
    ("[relay]\npairing_window_s = 5\n", "relay.pairing_window_s", ""),
    ('[log]\nlevel = "verbose"\n', "log.level", "one of"),
    ('[node]\nname = ""\n', "node.name", "must not be empty"),
    ('[node]\nname = "a\\nb"\n', "node.name", "control characters"),
    ('[node]\nname = "%s"\n' % ("n" * 65), "node.name", "at most 64"),
    ('[radio.ble]\nadapter = "hci0; rm"\n', "radio.ble.adapter", "letters, digits"),
    ("[radio.ble]\nmax_mtu = 22\n", "radio.ble.max_mtu", "23"),
    ("[radio.ble]\nadvertising_interval_ms = 5\n", "radio.ble.advertising_interval_ms", "20"),
    ("[radio.ble]\ncentral_min_rssi = 3\n", "radio.ble.central_min_rssi", "-127"),
    ('[lan]\nlisten = "0.0.0.0"\n', "lan.listen", "expected HOST:PORT"),
    ('[lan]\nlisten = "0.0.0.0:65536"\n', "lan.listen", "0..65535"),
    ('[lan]\npeers = ["a:0"]\n', "lan.peers[0]", "1..65535"),
    ('[lan]\npeers = ["::1:4740"]\n', "lan.peers[0]", "in brackets"),
    ('[lan]\npeers = ["[::1:4740"]\n', "lan.peers[0]", "missing ']'"),
    ('[lan]\npeers = ["[10.0.0.1]:4740"]\n', "lan.peers[0]", "only an IPv6"),
    ('[lan]\npeers = ["bad_host!:1"]\n', "lan.peers[0]", "neither an IP address"),
    ('[lan]\npeers = ["999.1.1.1:1"]\n', "lan.peers[0]", "neither an IP address"),
    ('[lan]\npeers = ["h:port"]\n', "lan.peers[0]", "port must be"),
    ('[lan]\npeers = [":1"]\n', "lan.peers[0]", "host is empty"),
    ("[lan]\npeers = [%s]\n" % ",".join('"h%d:1"' % i for i in range(65)), "lan.peers", "64"),
    # [ssh] authorized_keys: OpenSSH public key lines only (the image writes them to a file)
    ('[ssh]\nauthorized_keys = "%s"\n' % ED25519, "ssh.authorized_keys", "must be an array"),
    ('[ssh]\nauthorized_keys = ["ssh-dss AAAA"]\n', "ssh.authorized_keys[0]", "OpenSSH public"),
    ('[ssh]\nauthorized_keys = ["%s"]\n' % ED25519[12:], "ssh.authorized_keys[0]", "OpenSSH"),
    (
        "[ssh]\nauthorized_keys = ['command=\"sh\" %s']\n" % ED25519,
        "ssh.authorized_keys[0]",
        "without options",
    ),
    ('[ssh]\nauthorized_keys = ["ssh-ed25519 AA!A"]\n', "ssh.authorized_keys[0]", "base64"),
    ('[ssh]\nauthorized_keys = ["ssh-rsa%s"]\n' % ED25519[11:], "ssh.authorized_keys[0]", "not a"),
    ('[ssh]\nauthorized_keys = ["%s\\nx"]\n' % ED25519, "ssh.authorized_keys[0]", "control"),
    # relations between keys
    (
        "[store]\nmax_log_bytes = 2048\nmax_entry_bytes = 4096\n",
        "store.max_log_bytes",
        "at least store.max_entry_bytes",
    ),
    ("[store]\nmax_total_bytes = 1048576\n", "store.max_total_bytes", "at least store.max_log"),
    (
        "[relay]\ncommunity_log_bytes = 134217728\n",
        "relay.community_log_bytes",
        "at most store.max_log_bytes",
    ),
    (
        "[relay]\nmax_links_per_source = 4\nmax_handshakes_per_source = 5\n",
        "relay.max_handshakes_per_source",
        "at most relay.max_links_per_source",
    ),
    (
        "[session]\nmax_frame_bytes = 131072\ncredit_bytes = 65536\n",
        "session.credit_bytes",
        "at least session.max_frame",
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), BAD, ids=[b[1] for b in BAD])
def test_bad_values_name_the_key(text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.toml")
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value).startswith(key + ": ")


def test_invalid_toml_names_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[store\n", "/boot/waystation.toml")
    assert info.value.key == "/boot/waystation.toml"
    assert "invalid TOML" in info.value.reason


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.key == str(missing)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "bin.toml")


def test_first_error_wins_in_schema_order() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[log]\nlevel = 1\n[store]\nexpiry_days = 0\n")
    assert info.value.key == "store.expiry_days"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:4740", HostPort("127.0.0.1", 4740)),
        ("[::1]:1", HostPort("::1", 1)),
        ("relay-1.example.org:65535", HostPort("relay-1.example.org", 65535)),
        ("localhost:80", HostPort("localhost", 80)),
    ],
)
def test_parse_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected
    assert str(expected) == text


def test_parse_host_port_port_zero() -> None:
    with pytest.raises(ConfigError, match=r"1\.\.65535"):
        parse_host_port("h:0", "--peer")
    assert parse_host_port("h:0", allow_port_zero=True).port == 0
    with pytest.raises(ConfigError) as info:
        parse_host_port("h:+1", "--peer")
    assert info.value.key == "--peer"


def test_overrides() -> None:
    base = parse_config('[lan]\npeers = ["a:1"]\n')
    config = apply_overrides(
        base, data="/srv/ws", listen="127.0.0.1:0", peers=["b:2", "a:1", HostPort("b", 2)]
    )
    assert config.node.data_dir == Path("/srv/ws")
    assert config.lan.listen == (HostPort("127.0.0.1", 0),)
    assert config.lan.peers == (PeerAddress("tcp", "a:1"), PeerAddress("tcp", "b:2"))
    assert base.lan.peers == (PeerAddress("tcp", "a:1"),)  # the original is untouched
    assert config.store == base.store
    assert apply_overrides(base) == base


def test_bad_overrides_name_the_key() -> None:
    config = default_config()
    with pytest.raises(ConfigError) as info:
        apply_overrides(config, listen="nonsense")
    assert info.value.key == "lan.listen"
    with pytest.raises(ConfigError) as info:
        apply_overrides(config, peers=["ok:1", "::1:2"])
    assert info.value.key == "lan.peers"
    with pytest.raises(ConfigError) as info:
        apply_overrides(config, peers=["h%d:1" % i for i in range(65)])
    assert info.value.key == "lan.peers"


def test_listen_takes_one_address_or_several_and_interface_names() -> None:
    config = parse_config('[lan]\nlisten = ["eth0:4740", "[fe80::1%eth0]:4741", "10.0.0.1:0"]\n')
    assert config.lan.listen == (
        HostPort("eth0", 4740),
        HostPort("fe80::1%eth0", 4741),
        HostPort("10.0.0.1", 0),
    )
    for text, reason in [
        ("[lan]\nlisten = []\n", "at least one address"),
        ('[lan]\nlisten = ["a:1", "a:1"]\n', "the same item twice"),
        ('[lan]\nlisten = ["a:1", 2]\n', "must be a string"),
        ("[lan]\nlisten = [%s]\n" % ",".join('"h%d:1"' % i for i in range(17)), "at most 16"),
    ]:
        with pytest.raises(ConfigError, match=reason) as info:
            parse_config(text)
        assert info.value.key.startswith("lan.listen")


def test_interface_override_keeps_the_configured_port() -> None:
    base = parse_config('[lan]\nlisten = ["0.0.0.0:4999", "[::]:4999"]\n')
    config = apply_overrides(base, interfaces=["eth0", "wlan0", "192.0.2.1", "fe80::1%eth0"])
    assert config.lan.listen == (
        HostPort("eth0", 4999),
        HostPort("wlan0", 4999),
        HostPort("192.0.2.1", 4999),
        HostPort("fe80::1%eth0", 4999),
    )
    with pytest.raises(ConfigError) as info:
        apply_overrides(base, interfaces=["bad name!"])
    assert info.value.key == "--interface"
    several = apply_overrides(base, listen=["127.0.0.1:0", "[::1]:0"])
    assert several.lan.listen == (HostPort("127.0.0.1", 0), HostPort("::1", 0))


def test_peers_are_peer_addresses_in_one_spelling() -> None:
    config = parse_config('[lan]\npeers = ["tcp:relay.local:4740", "tcp:[::1]:9"]\n')
    assert config.lan.peers == (
        PeerAddress("tcp", "relay.local:4740"),
        PeerAddress("tcp", "[::1]:9"),
    )
    assert [str(p) for p in config.lan.peers] == ["tcp:relay.local:4740", "tcp:[::1]:9"]
    # The old and the new spelling of one relay are the same peer.
    with pytest.raises(ConfigError, match="the same item twice"):
        parse_config('[lan]\npeers = ["a:1", "tcp:a:1"]\n')
    with pytest.raises(ConfigError, match="only tcp relay peers") as info:
        parse_config('[lan]\npeers = ["ble:AA:BB:CC:DD:EE:FF"]\n')
    assert info.value.key == "lan.peers[0]"
    with pytest.raises(ConfigError, match="port must be") as info:
        parse_config('[lan]\npeers = ["tcp:host:port"]\n')
    merged = apply_overrides(config, peers=["relay.local:4740", "tcp:b:2"])
    assert merged.lan.peers[2:] == (PeerAddress("tcp", "b:2"),)
