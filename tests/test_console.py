"""The console end to end: an in-process relay serving its console on a real pseudo-terminal
(pyserial at the user's end, through a null-modem pair of ptys) and on DATA/console.sock."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app import console_server
from node.app.config import parse_config
from node.app.console_commands import ConsoleActions, hash_pin, logs_text
from node.app.control import CommandError, request
from node.app.pair_client import pair_with
from node.app.pairing import normalise_code
from node.app.sync_client import member_context, sync_with_relay
from node.crypto._nacl import NaclSuite
from node.lan.tcp import TcpDialer
from node.link import Dialers, PeerAddress
from node.proto.messages import ROLE_MEMBER
from tests.console_helpers import (
    DEADLINE_S,
    NullModem,
    RunningDaemon,
    Terminal,
    make_daemon,
    running,
    serial_terminal,
    socket_terminal,
)
from tests.sync_helpers import GroupLog, member_store

PROMPT = rb"relay-console> "
BAD = "bad-arguments"
CONFIG = """# the operator's file
[node]
# what the operator calls it
name = "relay-console"

[store]
expiry_days = 30 # a month
"""


class Relay:
    def __init__(self, data_dir: Path, config_path: Path, modem: NullModem) -> None:
        self.runner: RunningDaemon | None = None
        self.data_dir = data_dir
        self.config_path = config_path
        self.modem = modem
        self.power: list[str] = []


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    base = tmp_path_factory.mktemp("console")
    config_path = base / "waystation.toml"
    config_path.write_text(CONFIG)
    modem = NullModem()
    state = Relay(base / "data", config_path, modem)

    def power(action: str) -> str:
        state.power.append(action)
        return "recorded %s" % action

    daemon = make_daemon(
        state.data_dir, [modem.daemon_end], actions=ConsoleActions(power, config_path)
    )
    try:
        with running(daemon) as runner:
            state.runner = runner
            yield state
    finally:
        modem.close()


@pytest.fixture
def sock_term(relay: Relay) -> Iterator[Terminal]:
    sock, term = socket_terminal(relay.data_dir)
    with sock:
        term.expect(PROMPT)
        yield term


@pytest.fixture(params=["socket", "serial"])
def any_term(relay: Relay, request: pytest.FixtureRequest) -> Iterator[Terminal]:
    """The console through DATA/console.sock, or through a real pty with pyserial at our end."""
    if request.param == "socket":
        sock, term = socket_terminal(relay.data_dir)
        with sock:
            term.expect(PROMPT)
            yield term
        return
    port, term = serial_terminal(relay.modem.user_end)
    with port:
        port.reset_input_buffer()
        term.settle()  # whatever an earlier test left is read past
        yield term


# Every console command: (typed line, a regex its text answer matches, JSON reply check).
def _ok(result_keys: set[str]) -> object:
    def check(reply: dict[str, object]) -> None:
        assert reply["ok"] is True, reply
        result = reply["result"]
        assert isinstance(result, dict) and result_keys <= set(result), result

    return check


def _refused(code: str) -> object:
    def check(reply: dict[str, object]) -> None:
        assert reply["ok"] is False and reply["error"] == code, reply

    return check


COMMANDS = [
    (
        "status",
        r"node\s+[0-9a-f-]+ \(relay-console\).*transports .*console socket, /dev/pts/\d+ open",
        _ok({"fingerprint", "uptime_s"}),
    ),
    ("peers", r"links\s+\(none\)\n", _ok({"links", "recent", "relays"})),
    ("logs", r"0 logs carried", _ok({"count", "logs"})),
    ("store", r"quota\n.*expiry_days\s+30", _ok({"quota"})),
    ("store evict", r"expired\s+0", _ok({"expired"})),
    ("config show", r"file\s+/.*waystation.toml", _ok({"config", "file"})),
    ("config get store.expiry_days", r"value\s+30", _ok({"key", "value", "saved"})),
    ("config get no.such", r"unknown key 'no.such' \(keys: node.data_dir", _refused(BAD)),
    ("pair", r"window open for 120 s, 3 attempts\ncode\s+\d{4}-\d{4}", _ok({"code", "qr_text"})),
    ("pair 30", r"pairing window open for 30 s", _ok({"code", "qr_payload"})),
    ("pair status", r"pairing window open, \d+ s left, 3 attempts left", _ok({"open", "join"})),
    ("pair join 127.0.0.1:9 12", r"code: a pairing code is 8 digits", _refused(BAD)),
    ("devices list", r"no paired devices or relays", _ok({"devices"})),
    ("devices rename d1 phone", r"device 'd1': no such device \(bad-arguments\)", _refused(BAD)),
    ("devices set-quota d1 4M", r"device 'd1': no such device", _refused(BAD)),
    ("devices revoke d1", r"device 'd1': no such device", _refused(BAD)),
    ("log level warning", r"level\s+warning", _ok({"level"})),
    ("log level loud", r"level 'loud': accepted: debug, info", _refused("bad-arguments")),
    ("log tail 5", r"level=\w+ logger=waystation|\(no log lines yet\)", _ok({"text"})),
    ("wipe", r"to confirm, type: wipe erase all data", _refused("bad-arguments")),
    ("wipe now please", r"to confirm, type: wipe erase all data", _refused("bad-arguments")),
    ("reboot", r"recorded reboot", _ok({"text"})),
    ("poweroff", r"recorded poweroff", _ok({"text"})),
    ("version", r"version\s+\d", _ok({"version"})),
]


@pytest.mark.parametrize(("line", "text", "check"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_as_text_and_json(
    relay: Relay, any_term: Terminal, line: str, text: str, check: object
) -> None:
    answer = any_term.command(line)
    assert answer.startswith(line + "\n")  # echoed once, then the answer
    assert re.search(text, answer, re.S), answer
    answer = any_term.command(line + " --json")
    body = answer.split("\n")[1]
    check(json.loads(body))  # type: ignore[operator]


def test_power_actions_went_through_the_injected_runner(relay: Relay, sock_term: Terminal) -> None:
    sock_term.command("reboot")
    assert relay.power[-1] == "reboot"


def test_scripts_get_the_same_json_from_control_sock(relay: Relay, sock_term: Terminal) -> None:
    typed = json.loads(sock_term.command("version --json").split("\n")[1])
    assert request(relay.data_dir, "version") == typed["result"]
    with pytest.raises(CommandError) as refused:
        request(relay.data_dir, "log.level", {"level": "loud"})
    assert refused.value.code == "bad-arguments"


def test_peers_lists_a_member_that_came_and_went(relay: Relay, sock_term: Terminal) -> None:
    group = GroupLog.make(91)
    group.append("for the relay")
    logs = {group.address: (group.sign_pub, group.identity_signature)}
    assert relay.runner is not None and relay.runner.daemon.port is not None
    ctx = member_context(member_store(group), NaclSuite(), logs)
    port = relay.runner.daemon.port
    outcome = asyncio.run(sync_with_relay(ctx, "127.0.0.1", port, DEADLINE_S))
    assert outcome.in_sync, outcome
    relay.runner.wait_until_no_links()  # the relay's end closes just after ours
    answer = sock_term.command("peers")
    recent = r"recent \(\d+\)\n.*tcp:127\.0\.0\.1:\d+\s+ok\s+member"
    assert re.search(recent, answer, re.S), answer
    reply = json.loads(sock_term.command("peers --json").split("\n")[1])
    latest = reply["result"]["recent"][0]
    assert (latest["role"], latest["reason"], latest["entries_received"]) == ("member", "ok", 1)


def test_logs_text_puts_the_long_address_last() -> None:
    row = {"log": "/orbitdb/b/x", "entries": 3, "bytes": 2668, "quota": 16 << 20, "pinned": True}
    result = {"count": 2, "shown": 2, "logs": [row | {"last_activity": 940.0}, row]}
    assert logs_text(result, now=1000.0) == [
        "2 logs carried, largest first",
        "bytes    entries  quota     pinned  active     log",
        "2.6 KiB  3        16.0 MiB  yes     1m00s ago  /orbitdb/b/x",
        "2.6 KiB  3        16.0 MiB  yes     -          /orbitdb/b/x",
    ]
    assert (
        logs_text({"count": 500, "logs": [row]}, now=0)[0]
        == "500 logs carried, largest first, 1 shown"
    )
    assert logs_text("not a report") == ["0 logs carried, largest first"]


def test_pairing_a_phone_and_managing_it_on_a_serial_line(tmp_path: Path) -> None:
    modem = NullModem()
    daemon = make_daemon(tmp_path / "data", [modem.daemon_end])
    try:
        with running(daemon):
            port, term = serial_terminal(modem.user_end)
            with port:
                term.settle()
                shown = term.command("pair")
                found = re.search(r"code\s+(\d{4}-\d{4})\nfingerprint\s+(\S+)\n", shown)
                assert found is not None, shown
                assert "\u2588" in shown or "\u2580" in shown, shown  # the QR code, in blocks
                code, fingerprint = found.groups()
                assert daemon.port is not None
                asyncio.run(
                    pair_with(
                        NaclSuite(),
                        Dialers([TcpDialer(65535)]),
                        PeerAddress("tcp", "127.0.0.1:%d" % daemon.port),
                        normalise_code(code),
                        "ana-phone",
                        NaclSuite().random_bytes(32),
                        ROLE_MEMBER,
                        DEADLINE_S,
                        fingerprint,
                    )
                )
                assert "no pairing window open (paired)" in term.command("pair status")
                assert re.search(r"ana-phone\s+device\s+[0-9a-f-]+", term.command("devices"))
                assert re.search(
                    r"^ana\s+device", term.command("devices rename ana-phone ana"), re.M
                )
                assert "64 MiB" in term.command("devices set-quota ana 64M")
                revoked = term.command("devices revoke ana")
                assert "revoked ana: 0 log(s) unpinned, 0 link(s) closed" in revoked, revoked
                listed = json.loads(term.command("devices --json").split("\n")[1])
                assert listed["result"] == {"devices": []}
    finally:
        modem.close()


def test_log_level_and_tail(sock_term: Terminal) -> None:
    sock_term.command("log level info")
    sock_term.command("store evict")
    answer = sock_term.command("log tail 3")
    assert re.search(
        r"time=\S+ level=info logger=waystation.console msg=\"console: store evict removed 0",
        answer,
    ), answer
    sock_term.command("log level warning")
    last = answer.split("\n")[-2]
    assert "store evict removed 0" in last
    sock_term.command("store evict")  # not logged at warning
    assert sock_term.command("log tail 1").split("\n")[1] == last
    assert "lines must be a whole number 1..200" in sock_term.command("log tail 500")


def test_help_and_bad_input(sock_term: Terminal) -> None:
    listing = sock_term.command("help")
    for name in ("status", "config set KEY VALUE", "devices revoke DEVICE", "pair [SECONDS]"):
        assert name in listing
    assert "log tail [N]  -- the last N log lines" in sock_term.command("help log")
    assert "unknown command 'frob' (commands: status, peers" in sock_term.command("frob")
    assert "SIZE must be bytes or a size such as 64M" in sock_term.command("devices set-quota d x")
    assert "help: no command 'zzz'" in sock_term.command("help zzz")
    garbage = bytes(b for b in range(256) if b != 0x04)  # all but Ctrl-D (which leaves)
    sock_term.send(garbage * 4 + b"\r")  # anything at all: one refusal, no crash
    sock_term.expect(PROMPT)
    assert "version" in sock_term.command("version")


def test_config_set_validates_persists_and_says_restart(relay: Relay, sock_term: Terminal) -> None:
    answer = sock_term.command("config set store.expiry_days 0")
    assert "store.expiry_days: must be" in answer and "bad-arguments" in answer
    answer = sock_term.command("config set store.expiry_days 7")
    assert re.search(r"restart_needed\s+yes", answer), answer
    text = relay.config_path.read_text()
    assert "expiry_days = 7\n" in text and "# what the operator calls it" in text
    assert parse_config(text).store.expiry_days == 7
    answer = sock_term.command("config get store.expiry_days")
    assert re.search(r"saved\s+7.*value\s+30", answer, re.S), answer  # running value until restart
    answer = sock_term.command("config set log.level debug")
    assert re.search(r"restart_needed\s+no", answer), answer
    answer = sock_term.command("config set lan.peers [1, 2]")
    assert "lan.peers[0]: must be a string" in answer
    answer = sock_term.command('config set node.name "box two"')
    assert "value           box two" in answer or "box two" in answer
    assert 'name = "box two"' in relay.config_path.read_text()
    relay.config_path.write_text(CONFIG)


def test_config_get_names_a_broken_saved_file(relay: Relay, sock_term: Terminal) -> None:
    """A config file damaged after start: `config get` still shows the running value and says
    what is wrong with the file, instead of silently leaving the saved value out."""
    relay.config_path.write_text("[store\n")
    try:
        answer = sock_term.command("config get store.expiry_days --json")
        reply = json.loads(answer.split("\n")[1])
        assert reply["ok"] is True, reply
        assert reply["result"]["value"] == 30 and "saved" not in reply["result"], reply
        assert str(relay.config_path) in reply["result"]["saved_error"], reply
    finally:
        relay.config_path.write_text(CONFIG)


def test_disconnect_mid_line_drops_only_that_line(relay: Relay) -> None:
    sock, term = socket_terminal(relay.data_dir)
    with sock:
        term.expect(PROMPT)
        term.send(b"store ev")  # and gone
    sock, term = socket_terminal(relay.data_dir)
    with sock:
        term.expect(PROMPT)
        answer = term.command("ict")
        assert "unknown command 'ict'" in answer  # the old half line is not glued on
        assert "version" in term.command("version")


def test_serial_line_editing_and_commands(relay: Relay) -> None:
    port, term = serial_terminal(relay.modem.user_end)
    with port:
        term.settle()
        term.send(b"vers\t")  # Tab completes, echoing only what it added
        assert term.expect(rb"version ") == b"version "
        term.send(b"\x1b[A\x1b[D")  # arrow keys: nothing typed, nothing echoed
        term.send(b"x\x7f\r")  # a character and its backspace
        answer = term.expect(PROMPT)
        assert answer.startswith(b"x\x08 \x08\r\n") and re.search(rb"version\s+\d", answer)
        term.send(b"sto\tevi")  # "store " then ... cancelled
        term.send(b"\x03")
        term.expect(rb"\^C\r\n" + PROMPT)
        term.send(b"st\t")
        term.expect(rb"status  store\r\n" + PROMPT + rb"st")
        term.send(b"atus --json\r\n")  # CRLF is one line ending
        line = term.expect(PROMPT).split(b"\r\n")[1]
        assert json.loads(line)["result"]["name"] == "relay-console"
        term.send(b"frob\r")
        assert b"unknown command 'frob'" in term.expect(PROMPT)
        term.send(b"a" * 1000 + b"\x03")  # over the line limit: cut, one bell, no storm
        got = term.expect(PROMPT)
        assert got.count(b"\x07") == 1 and len(got) < 400
        term.send(b"\x04")  # Ctrl-D: the session ends, a new one greets on the serial line
        got = term.expect(rb"bye\r\nwaystation console on relay-console.*" + PROMPT)
        assert b"help lists the commands" in got


def test_serial_port_vanishes_and_returns(tmp_path: Path) -> None:
    link = tmp_path / "ttyWAYconsole"
    master, slave = os.openpty()
    os.symlink(os.ttyname(slave), link)
    daemon = make_daemon(tmp_path / "data", [str(link)])
    with running(daemon):
        term = Terminal(master, lambda data: os.write(master, data))
        term.expect(PROMPT)
        term.send(b"sta")  # a disconnect mid-line
        term.expect(rb"sta")
        os.close(master)
        os.close(slave)
        link.unlink()
        master, slave = os.openpty()  # the device returns (another pty behind the same path)
        os.symlink(os.ttyname(slave), link)
        term = Terminal(master, lambda data: os.write(master, data))
        term.expect(rb"waystation console on relay-console.*" + PROMPT)
        term.send(b"tus\r")
        assert b"unknown command 'tus'" in term.expect(PROMPT)
        assert daemon.consoles is not None and daemon.consoles.serial[0].opened == 2
    os.close(master)
    os.close(slave)


def test_pin_delay_holds_across_sessions_of_a_port_not_other_ports(tmp_path: Path) -> None:
    extra = 'pin_hash = "%s"\n' % hash_pin("2468", iterations=1000)
    modem = NullModem()
    daemon = make_daemon(tmp_path / "data", [modem.daemon_end], extra)
    try:
        with running(daemon):
            port, one = serial_terminal(modem.user_end)
            sock, two = socket_terminal(tmp_path / "data")
            with port, sock:
                one.send(b"\r")
                one.expect(rb"PIN: ")
                two.expect(rb"needs its PIN\r\nPIN: ")
                one.send(b"1111\r")
                got = one.expect(rb"possible in 2 s\r\nPIN: ")
                assert b"1111" not in got  # a PIN is never echoed
                one.send(b"\x04")  # leaving does not reset the delay: a new session greets
                one.expect(rb"bye\r\nwaystation console on relay-console; .*needs its PIN.*PIN: ")
                one.send(b"2468\r")
                assert b"before the next PIN attempt" in one.expect(rb"PIN: ")
                two.send(b"2468\r")  # another port is not held up
                assert b"PIN accepted" in two.expect(PROMPT)
                assert "version" in two.command("version")
    finally:
        modem.close()


def test_one_session_too_many_is_told_busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_server, "MAX_CLIENTS", 1)
    daemon = make_daemon(tmp_path / "data", [])
    with running(daemon):
        first, one = socket_terminal(tmp_path / "data")
        with first:
            one.expect(PROMPT)
            second, two = socket_terminal(tmp_path / "data")
            with second:
                two.expect(rb"1 console clients are connected already; try again\r\n")
                with pytest.raises(AssertionError, match="closed before"):
                    two.expect(PROMPT)
            assert "version" in one.command("version")  # the first is served on
        assert daemon.ctx is not None and daemon.ctx.stats["console.refused.busy"] == 1


def test_the_pin_hash_is_never_shown(tmp_path: Path) -> None:
    pin_hash = hash_pin("2468", iterations=1000)
    daemon = make_daemon(tmp_path / "data", [], 'pin_hash = "%s"\n' % pin_hash)
    with running(daemon):
        sock, term = socket_terminal(tmp_path / "data")
        with sock:
            term.send(b"2468\r")
            term.expect(PROMPT)
            shown = term.command("config show") + term.command("config get console.pin_hash")
            shown += term.command("config show --json")
    assert re.search(r"pin_hash\s+\(set\)", shown), shown
    assert pin_hash.split("$")[-1] not in shown and pin_hash.split("$")[2] not in shown


def test_wipe_erases_key_and_data_then_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    daemon = make_daemon(data, [])
    with running(daemon) as runner:
        assert (data / "node.key").exists()
        sock, term = socket_terminal(data)
        with sock:
            term.expect(PROMPT)
            assert "wipe erase all data" in term.command("wipe")
            assert (data / "node.key").exists()
            term.send(b"wipe erase all data\r")
            term.expect(rb"wiping: the relay stops, erases its key and data")
        runner.stop()
    assert sorted(p.name for p in data.iterdir()) == ["waystation.lock"]
