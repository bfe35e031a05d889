"""The admission load (issue 9 §3), shared by tests/integration/test_admission.py and
bench/admission.py: what one hostile address does to a relay while honest members sync.

From HOSTILE_SOURCE (a second loopback address: the relay sees another peer IP than the honest
members' 127.0.0.1), two kinds of attacker keep going until `stop` is set:

- `trickler`: opens a connection and writes one byte of a handshake frame every TRICKLE_S seconds,
  never enough to finish a frame (a slowloris). When the relay closes it, the slot reconnects at
  its next tick. TRICKLERS of them.
- `idler`: completes the Noise handshake and the Hello like a member, then declares nothing and
  moves nothing, only keeps the session alive with empty Acks. When the relay closes it, the slot
  reconnects at its next tick. IDLERS of them.

Every pause is a wait on `stop` with the tick as its deadline, so stopping is immediate. `Attack`
counts what the attackers saw (connections made, sessions opened, Bye reasons read).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from node.errors import LinkError, NodeError
from tests.integration.relay_process import RawClient

HOSTILE_SOURCE = "127.0.0.2"
TRICKLERS = 300
IDLERS = 64
TRICKLE_S = 2.0  # one byte per connection this often
KEEPALIVE_S = 3.0  # an idler's empty Ack this often
# A Noise message 1 frame announces 32 bytes; the trickler sends the header, then a byte a tick.
TRICKLE_FRAME = (32).to_bytes(4, "big") + bytes(32)


Body = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, Callable[[], None]], Awaitable[None]
]


@dataclass
class Attack:
    """What the attackers did and saw."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    connected: Counter[str] = field(default_factory=Counter)  # per kind
    refused: Counter[str] = field(default_factory=Counter)  # connect() failed outright
    sessions: int = 0  # idler sessions that opened
    byes: Counter[str] = field(default_factory=Counter)  # reasons of the relay's Byes to idlers
    idlers_tried: asyncio.Event = field(default_factory=asyncio.Event)  # each idler tried once
    started: asyncio.Event = field(default_factory=asyncio.Event)  # every slot tried once
    _tried: int = 0

    async def pause(self, seconds: float) -> bool:
        """Wait `seconds` unless stopped first; True while the attack goes on."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop.wait()
        return not self.stop.is_set()

    def tried(self) -> None:
        self._tried += 1
        if self._tried == IDLERS:
            self.idlers_tried.set()
        if self._tried == TRICKLERS + IDLERS:
            self.started.set()


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(HOSTILE_SOURCE, 0))


async def _slot(
    port: int,
    attack: Attack,
    kind: str,
    tick: float,
    body: Body,
) -> None:
    """One attacker slot: connect from HOSTILE_SOURCE, run `body`, reconnect a tick later.

    `body` gets a callable that marks this slot as having tried (the idler calls it once its
    session is open); otherwise the slot counts as tried when its first connection ends.
    """
    first = [True]

    def tried() -> None:
        if first[0]:
            first[0] = False
            attack.tried()

    while not attack.stop.is_set():
        try:
            reader, writer = await _open(port)
        except OSError:
            attack.refused[kind] += 1
        else:
            attack.connected[kind] += 1
            try:
                await body(reader, writer, tried)
            except (LinkError, NodeError, OSError, AssertionError):
                pass  # closed by the relay: the slot reconnects next tick
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        tried()
        if not await attack.pause(tick):
            return


async def _trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _tried: Callable[[], None]
) -> None:
    for byte in TRICKLE_FRAME:
        writer.write(bytes((byte,)))
        await writer.drain()
        # The relay closing the connection ends the read early: reconnect next tick.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TRICKLE_S):
                if not await reader.read(1):
                    return


async def trickler(port: int, attack: Attack) -> None:
    """One slowloris slot (see the module docstring)."""
    await _slot(port, attack, "trickle", TRICKLE_S, _trickle)


async def idler(port: int, attack: Attack) -> None:
    """One idle authenticated session slot (see the module docstring)."""

    async def body(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tried: Callable[[], None]
    ) -> None:
        client = RawClient(reader, writer)
        if await client.handshake():
            await client.wait_open()
            attack.sessions += 1
            tried()
            await _keep_alive(client, attack)

    await _slot(port, attack, "idle", KEEPALIVE_S, body)


async def _keep_alive(client: RawClient, attack: Attack) -> None:
    """Send an empty Ack every KEEPALIVE_S until the relay closes the session or we stop."""
    reading = asyncio.create_task(client.until_closed())
    try:
        while not attack.stop.is_set():
            done, _ = await asyncio.wait({reading}, timeout=KEEPALIVE_S)
            if done:
                attack.byes[reading.result() or "none"] += 1
                return
            if client.session.is_open:
                client.session.send_ack(0, 0, 0, _now())
                await client.flush()
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, LinkError, NodeError):
            await reading


def _now() -> int:
    return int(asyncio.get_running_loop().time() * 1000)


async def run_attack(port: int, attack: Attack) -> None:
    """Every attacker slot, until `attack.stop` is set: the idlers first (their sessions open
    while the relay is quiet), the tricklers once every idler has tried once."""
    async with asyncio.TaskGroup() as tasks:
        for _ in range(IDLERS):
            tasks.create_task(idler(port, attack))
        await attack.idlers_tried.wait()
        for _ in range(TRICKLERS):
            tasks.create_task(trickler(port, attack))


async def _attack_until_stdin_closes(port: int) -> None:
    """Run the attack until our stdin reaches EOF (the parent closed it); print what it did."""
    attack = Attack()
    loop = asyncio.get_running_loop()
    async with asyncio.TaskGroup() as tasks:
        attackers = tasks.create_task(run_attack(port, attack))
        await attack.started.wait()
        print("started", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        attack.stop.set()
        await attackers
    print(
        json.dumps({"connected": attack.connected, "sessions": attack.sessions,
                    "byes": attack.byes, "refused": attack.refused}),
        flush=True,
    )  # fmt: skip


if __name__ == "__main__":  # bench/admission.py runs the attack in a process of its own
    asyncio.run(_attack_until_stdin_closes(int(sys.argv[1])))
