"""A sustained garbage flood against a real relay process while honest members sync (review §7).

Three flooders run for the whole time twelve honest members (4 groups x 3) sync in several
rounds, each opening one connection after another until the honest rounds are over (at least
MIN_LINKS each, at most MAX_LINKS, and never past the test's deadline):

- raw: random bytes on the socket, no framing (the first "header" announces > 2 GiB);
- ciphertext: a real Noise handshake, then random frames where transport messages belong;
- authenticated: a real Noise handshake and a valid Hello, then random plaintexts properly
  encrypted (random message types but Bye, random bodies), ending with one of an unknown type,
  so every such link breaks a rule.

The relay must stay up; every honest sync ends "ok" and every member ends with every entry; the
final status.json counts each flood link once under peer_errors.<reason> and
links.closed.<reason> (the reasons the flooders read in the relay's Byes, and "too-large" for the
raw links, which never have keys); nothing the flood sent is stored; and the relay's stderr has at
most RateLimited's 30 warning lines a minute per message template, although far more links broke
a rule.

Each flooder writes everything one link sends in a single write, before the relay has read any of
it: the relay's event loop then takes it all off the socket, so its close is a FIN (never a reset
that could discard the Bye we read).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from node.app.sync_client import MAX_FRAME
from node.crypto.noise import WAYSTATION_PROLOGUE, NoiseHandshake, NoiseTransport
from node.errors import LinkError
from node.lan.tcp import TcpLink
from node.proto.batch import unpack_messages
from node.proto.messages import (
    BYE,
    HELLO,
    MAX_MESSAGE,
    ROLE_MEMBER,
    Bye,
    Hello,
    decode_message,
    encode_message,
)
from node.store.sqlite import SQLiteStore
from tests.integration.relay_process import Group, RelayProcess, counters
from tests.sync_helpers import SUITE

DEADLINE_S = 60.0
ROUNDS = 3  # rounds in which every member writes one entry and syncs; then one more to converge
# Per flooder, even if the honest rounds end first: enough that the three flooders alone break
# more rules than the rate limit lets through twice over (the check at the end), whatever the
# honest rounds' speed.
MIN_LINKS = 25
MAX_LINKS = 400  # per flooder
RATE_LIMIT = 30  # node.app.logs.RateLimited: lines per template per window
RATE_WINDOW_S = 60.0
# The relay's idle deadline is generous (honest links on loaded cores); no flooder is ever idle.
RELAY_CONFIG = """
[session]
handshake_timeout_s = 10
idle_timeout_s = 10
"""
# Reasons a link that broke a rule can end with (docs/protocol.md).
RULE_BROKEN = {"malformed", "integrity", "too-large", "unexpected", "flow", "version"}
# The warning templates a flood may produce (node/app/peer.py); any other warning fails the test.
WARNING_TEMPLATES = {
    "peer failed": re.compile(r"^tcp:\S+: .* \([a-z-]+\)$"),  # "%s: %s (%s)"
    "peer read nothing": re.compile(r"^tcp:\S+: peer read nothing for \d+ s$"),
}
WARNING = re.compile(r'^(?:time=\S+ )?level=warning logger=(\S+) msg="(.*)"$')


@dataclass
class Flood:
    """What the flooders did: links per flooder, and the relay's reason for each link."""

    honest_done: asyncio.Event = field(default_factory=asyncio.Event)
    deadline: float = 0.0
    links: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    def goes_on(self, flooder: str) -> bool:
        done = self.links[flooder]
        if done >= MAX_LINKS or time.monotonic() >= self.deadline:
            return False
        return done < MIN_LINKS or not self.honest_done.is_set()


class NoiseClient:
    """A Noise XX initiator over TCP, by hand, so it can encrypt any plaintext it likes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.link = TcpLink(reader, writer, MAX_FRAME)
        self.noise = NoiseHandshake(SUITE, True, SUITE.random_bytes(32), WAYSTATION_PROLOGUE)
        self.transport: NoiseTransport | None = None

    @classmethod
    async def connect(cls, port: int) -> NoiseClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def handshake_then(self, plaintexts: list[bytes], frames: list[bytes]) -> None:
        """Noise messages 1 and 2, then message 3, `plaintexts` encrypted, `frames` as they are,
        all in one write."""
        await self.link.send([self.noise.write_message(b"")])
        reply = await self.link.recv()
        assert reply is not None, "the relay closed before Noise message 2"
        self.noise.read_message(reply)
        third = self.noise.write_message(b"")
        self.transport = transport = self.noise.transport()
        await self.link.send([third] + [transport.encrypt(p) for p in plaintexts] + frames)

    async def relay_bye(self) -> str | None:
        """Read until the relay drops the connection: the reason in its Bye, if one came."""
        assert self.transport is not None
        reason: str | None = None
        while True:
            try:
                frame = await self.link.recv()
            except LinkError:
                break
            if frame is None:
                break
            for data in unpack_messages(self.transport.decrypt(frame)):
                message = decode_message(data)
                if isinstance(message, Bye) and reason is None:
                    reason = message.reason
        await self.link.close()
        return reason


async def raw_bytes(port: int, flood: Flood) -> None:
    rng = random.Random(11)
    while flood.goes_on("raw"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        link = TcpLink(reader, writer, MAX_FRAME)
        writer.write(b"\x80" + rng.randbytes(rng.randrange(3, 8192)))
        try:
            await writer.drain()
            while await link.recv() is not None:
                raise AssertionError("the relay sent a frame to a peer without keys")
        except LinkError:
            pass  # reset by the relay: closed just as well
        await link.close()
        flood.links["raw"] += 1
        flood.reasons["too-large"] += 1  # what the relay must count; no keys, so no Bye to read


async def garbage_ciphertext(port: int, flood: Flood) -> None:
    rng = random.Random(12)
    while flood.goes_on("ciphertext"):
        client = await NoiseClient.connect(port)
        frames = [rng.randbytes(rng.randrange(1, 2000)) for _ in range(rng.randrange(1, 6))]
        await client.handshake_then([], frames)
        reason = await client.relay_bye()
        assert reason == "integrity", reason
        flood.links["ciphertext"] += 1
        flood.reasons[reason] += 1


def random_plaintext(rng: random.Random) -> bytes:
    """A message of any type but Bye (a peer's Bye is a clean ending, not a broken rule)."""
    mtype = rng.choice([t for t in range(256) if t != BYE])
    return bytes((mtype,)) + rng.randbytes(rng.choice((0, 1, 3, 40, 300, 2000)))


async def authenticated_garbage(port: int, flood: Flood) -> None:
    rng = random.Random(13)
    hello = encode_message(Hello(ROLE_MEMBER, 1 << 20, MAX_MESSAGE))
    assert hello[0] == HELLO
    while flood.goes_on("authenticated"):
        client = await NoiseClient.connect(port)
        garbage = [random_plaintext(rng) for _ in range(rng.randrange(0, 5))]
        unknown_type = bytes((rng.randrange(BYE + 1, 256),)) + rng.randbytes(rng.randrange(50))
        await client.handshake_then([hello, *garbage, unknown_type], [])
        reason = await client.relay_bye()
        assert reason in RULE_BROKEN, reason
        flood.links["authenticated"] += 1
        flood.reasons[reason] += 1


def warning_lines(lines: list[str]) -> Counter[str]:
    """Warning lines per template; a warning of no known template fails."""
    found: Counter[str] = Counter()
    for line in lines:
        match = WARNING.match(line)
        if match is None:
            assert not re.match(r"(?:time=\S+ )?level=(?:error|critical) ", line), line
            continue
        kinds = [k for k, pattern in WARNING_TEMPLATES.items() if pattern.match(match.group(2))]
        assert len(kinds) == 1, "unexpected warning: " + line
        found[match.group(1) + " " + kinds[0]] += 1
    return found


def test_sustained_flood_costs_only_its_own_links(tmp_path: Path) -> None:
    groups = [Group.make(20 + 2 * g, 3, 2) for g in range(4)]
    members = [m for g in groups for m in g.members]
    flood = Flood()

    async def honest_rounds(port: int) -> None:
        try:
            for round_number in range(ROUNDS + 1):
                if round_number < ROUNDS:  # every member writes one more entry
                    for member in members:
                        chain = member.written
                        entry = member.log.append(
                            "%s r%d" % (member.name, round_number), chain[-1:]
                        )
                        chain.append(entry)
                        member.store.put_entries([entry], 1_000_000)
                        member.store.commit()
                outcomes = await asyncio.gather(*(m.sync(port) for m in members))
                assert outcomes == ["ok"] * len(members), (round_number, outcomes)
        finally:
            flood.honest_done.set()

    async def main() -> tuple[dict[str, object], float, list[str]]:
        relay = await RelayProcess.start(tmp_path / "relay", RELAY_CONFIG)
        started = time.monotonic()
        flood.deadline = started + DEADLINE_S / 2
        try:
            async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tasks:
                tasks.create_task(honest_rounds(relay.port))
                for flooder in (raw_bytes, garbage_ciphertext, authenticated_garbage):
                    tasks.create_task(flooder(relay.port, flood), name=flooder.__name__)
            assert relay.alive, relay.tail()
            status = await relay.stop()
        finally:
            await relay.kill()
        return status, time.monotonic() - started, relay.lines

    status, elapsed, relay_lines = asyncio.run(main())

    for group in groups:
        for member in group.members:
            assert member.missing(group.entries) == [], member.name
    flood_links = sum(flood.links.values())
    assert len(flood.links) == 3 and min(flood.links.values()) >= MIN_LINKS, flood.links

    # Every flood link is counted once, under the reason it ended with; nothing else failed.
    stats = counters(status)
    errors = {k: v for k, v in stats.items() if k.startswith("peer_errors.")}
    assert errors == {"peer_errors." + r: n for r, n in flood.reasons.items()}
    closed = {k: v for k, v in stats.items() if k.startswith("links.closed.")}
    expected_closed = {"links.closed." + r: n for r, n in flood.reasons.items()}
    expected_closed["links.closed.ok"] = (ROUNDS + 1) * len(members)
    assert closed == expected_closed
    # Only honest sessions and the authenticated flooders' (whose Hello opened them) were OPEN.
    assert stats["links.opened"] == (ROUNDS + 1) * len(members) + flood.links["authenticated"]

    # Nothing from the flood is stored: exactly the honest logs, with exactly their entries.
    honest_entries = {e.cid for g in groups for e in g.entries}
    assert stats["entries.stored"] == len(honest_entries)
    store = SQLiteStore.open_in(tmp_path / "relay", SUITE.ed25519_verify)
    try:
        assert sorted(store.logs()) == sorted(g.log.address for g in groups)
        assert sum(store.log_info(g.log.address).entry_count for g in groups) == len(honest_entries)
        assert all(store.has(cid) for cid in honest_entries)
    finally:
        store.close()

    # Far more links broke a rule than the log may mention: at most RATE_LIMIT lines per
    # template in each window the run spanned.
    assert flood_links > 2 * RATE_LIMIT, flood.links
    windows = 1 + int(elapsed // RATE_WINDOW_S)
    warnings = warning_lines(relay_lines)
    assert warnings["waystation.link peer failed"] >= 1, warnings  # the flood is mentioned
    for kind, count in warnings.items():
        assert count <= RATE_LIMIT * windows, (kind, count, windows)
