"""Pairing over a real session between a LinkDriver (relay) and the phone's pair client.

In process, over node.pipe links, with the relay's real SQLite store: right code, wrong code and
its three strikes, expiry, BUSY, a replayed transcript, the relay pin, revocation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.app.context import Committer, LogPolicy, NodeContext
from node.app.pair_client import Paired, PairingError, _run
from node.app.pairing import MAX_ATTEMPTS, RelayPairing, normalise_code
from node.app.peer import LinkDriver
from node.link import Link
from node.pipe import Pipe
from node.proto import pairing as pp
from node.proto.messages import ROLE_MEMBER, ROLE_RELAY
from node.proto.session import PairingReceived, Session, SessionLimits, SessionOpened
from node.store.devices import DeviceBook
from node.store.sqlite import SQLiteStore
from node.sync.store import MemoryStore
from tests.sync_helpers import SUITE, GroupLog, make_context, member_store

DEADLINE_S = 10.0
DISCOVERY_KEY = bytes(range(32))  # the relay's token key, handed to whoever pairs


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class RelaySide:
    def __init__(self, tmp_path: Path) -> None:
        self.store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
        self.static = SUITE.random_bytes(32)
        self.ctx = NodeContext(
            self.store,
            SUITE,
            Committer(self.store, 0.0),
            LogPolicy(community=True),
            SessionLimits(),
            static_private=self.static,
            role=ROLE_RELAY,
        )
        self.clock = Clock()
        self.drivers: list[LinkDriver] = []
        self.pairing = RelayPairing(
            SUITE,
            DeviceBook(self.store),
            self.ctx.committer.commit_now,
            SUITE.x25519_public(self.static),
            120,
            1 << 20,
            close_links=self.close_links,
            clock=self.clock,
            discovery_key=DISCOVERY_KEY,
        )
        self.ctx.pairing = self.pairing

    def close_links(self, key: bytes) -> int:
        hit = [
            d for d in self.drivers if d.outcome.remote_static == key and not d.session.is_finished
        ]
        for driver in hit:
            driver.request_close("revoked", "revoked")
        return len(hit)

    def open(self) -> str:
        result = self.pairing.cmd_open({})
        assert isinstance(result, dict)
        return str(result["code"])

    def pair(
        self,
        code: str,
        key: bytes | None = None,
        role: int = ROLE_MEMBER,
        expect: str | None = None,
    ) -> Paired:
        """Pair a phone (or a relay, by `role`) with `code`; its key, random unless given."""
        return asyncio.run(self._pair(code, key, role, expect))

    async def _pair(self, code: str, key: bytes | None, role: int, expect: str | None) -> Paired:
        phone_end, relay_end = Pipe().ends
        driver = LinkDriver(self.ctx, relay_end, initiator=False)
        self.drivers.append(driver)
        failure: PairingError | None = None
        remote = Paired(b"", b"")
        async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tasks:
            relay_task = tasks.create_task(driver.run())
            try:
                remote = await _run(
                    SUITE, phone_end, normalise_code(code), "phone",
                    key or SUITE.random_bytes(32), role, expect,
                )  # fmt: skip
            except PairingError as exc:
                failure = exc
            finally:
                await phone_end.close()
                await relay_task
        if failure is not None:
            raise failure
        return remote


def wrong(code: str) -> str:
    digits = code.replace("-", "")
    return "%08d" % ((int(digits) + 1) % 10**8)


@pytest.fixture
def relay(tmp_path: Path) -> RelaySide:
    side = RelaySide(tmp_path)
    yield side  # type: ignore[misc]
    side.store.close()


def test_right_code_pins_both_keys(relay: RelaySide) -> None:
    code = relay.open()
    key = SUITE.random_bytes(32)
    fingerprint = relay.pairing.fingerprint
    paired = relay.pair(code, key, expect=fingerprint)
    assert paired == Paired(SUITE.x25519_public(relay.static), DISCOVERY_KEY)
    assert pp.key_fingerprint(SUITE, paired.static_key) == fingerprint
    device = relay.pairing.device_of(SUITE.x25519_public(key))
    assert device is not None and device.name == "phone" and device.kind == "device"
    status = relay.pairing.cmd_status({})
    assert isinstance(status, dict) and status["open"] is False and status["closed"] == "paired"
    assert relay.ctx.stats.get("pairing.paired") == 1


def test_wrong_code_three_strikes_close_the_window(relay: RelaySide) -> None:
    code = relay.open()
    for attempt in range(MAX_ATTEMPTS):
        with pytest.raises(PairingError, match="wrong code" if attempt < 3 else ""):
            relay.pair(wrong(code))
    with pytest.raises(PairingError, match="no pairing window"):
        relay.pair(code)  # the right code, too late: the window is closed
    assert relay.pairing.devices.all() == []
    status = relay.pairing.cmd_status({})
    assert isinstance(status, dict) and status["closed"] == "attempts"


def test_expired_window(relay: RelaySide) -> None:
    code = relay.open()
    relay.clock.now += 119
    status = relay.pairing.cmd_status({})
    assert isinstance(status, dict) and status["open"] is True and status["expires_in_s"] == 1
    relay.clock.now += 2
    with pytest.raises(PairingError, match="no pairing window"):
        relay.pair(code)
    assert relay.pairing.devices.all() == []
    status = relay.pairing.cmd_status({})
    assert isinstance(status, dict) and status["open"] is False and status["closed"] == "expired"
    assert status["attempts_left"] == MAX_ATTEMPTS  # a refused START costs no attempt
    assert relay.ctx.stats.get("pairing.refused.no-window") == 1


def test_no_window(relay: RelaySide) -> None:
    with pytest.raises(PairingError, match="no pairing window"):
        relay.pair("1234-5678")
    never = relay.pairing.cmd_status({})
    assert isinstance(never, dict) and never["closed"] == "never opened"
    relay.open()
    opened = relay.pairing.cmd_status({})
    assert isinstance(opened, dict) and sorted(opened) == sorted(never)  # one shape for scripts


def test_wrong_fingerprint_refused_before_pairing(relay: RelaySide) -> None:
    code = relay.open()
    with pytest.raises(PairingError, match="not 0000"):
        relay.pair(code, expect="0000-0000-0000-0000-0000-0000-0000-0000")
    assert relay.pairing.devices.all() == []


def test_relay_pairing_records_a_trusted_relay(relay: RelaySide) -> None:
    code = relay.open()
    key = SUITE.random_bytes(32)
    relay.pair(code, key, role=ROLE_RELAY)
    assert relay.pairing.trusted_relay(SUITE.x25519_public(key))
    assert not relay.pairing.trusted_relay(SUITE.random_bytes(32))


def _member_driver(
    key: bytes | None, log: GroupLog, end: Link, until_synced: bool = False
) -> LinkDriver:
    ctx = make_context(
        member_store(log), ROLE_MEMBER, own={log.address: (log.sign_pub, log.identity_signature)}
    )
    ctx.static_private = key
    return LinkDriver(ctx, end, initiator=True, until_synced=until_synced)


def test_paired_device_logs_are_pinned_and_revoke_closes_its_session(relay: RelaySide) -> None:
    key = SUITE.random_bytes(32)
    relay.pair(relay.open(), key)
    log = GroupLog.make(7)
    log.append("hello")

    async def session_then_revoke() -> tuple[str, str]:
        member_end, relay_end = Pipe().ends
        relay_driver = LinkDriver(relay.ctx, relay_end, initiator=False)
        relay.drivers.append(relay_driver)
        member = _member_driver(key, log, member_end)
        async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tasks:
            relay.ctx.committer = Committer(relay.store, 0.0)  # one per event loop
            committer = tasks.create_task(relay.ctx.committer.run())
            relay_task = tasks.create_task(relay_driver.run())
            member_task = tasks.create_task(member.run())
            await member.wait_in_sync()  # the session stays open (not until_synced)
            info = relay.store.log_info(log.address)
            assert info.pinned and info.quota == 1 << 20 and info.entry_count == 1
            result = relay.pairing.cmd_revoke({"device": "phone"})
            assert result == {"revoked": "phone", "logs_unpinned": 1, "links_closed": 1}
            outcome = await member_task
            await relay_task
            committer.cancel()
        return outcome.reason, outcome.text

    reason, text = asyncio.run(session_then_revoke())
    assert reason == "revoked" and "revoked" in text  # the member heard Bye "revoked"
    assert relay.ctx.stats.get("links.closed.revoked") == 1
    assert not relay.store.log_info(log.address).pinned
    assert relay.pairing.devices.all() == []
    assert relay.store.log_info(log.address).entry_count == 1  # the entries stay (community)


def test_unpaired_member_logs_are_not_pinned(relay: RelaySide) -> None:
    log = GroupLog.make(8)
    log.append("hello")

    async def one_sync() -> None:
        member_end, relay_end = Pipe().ends
        relay_driver = LinkDriver(relay.ctx, relay_end, initiator=False)
        member = _member_driver(None, log, member_end, until_synced=True)
        async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tasks:
            relay.ctx.committer = Committer(relay.store, 0.0)  # one per event loop
            committer = tasks.create_task(relay.ctx.committer.run())
            tasks.create_task(relay_driver.run())
            await member.run()
            committer.cancel()

    asyncio.run(one_sync())
    info = relay.store.log_info(log.address)
    assert info.entry_count == 1 and not info.pinned


def _relay_declarations(relay: RelaySide, peer_key: bytes) -> int:
    """Logs the relay declares to a peer that claims the relay role with `peer_key`."""
    other = make_context(MemoryStore(SUITE.ed25519_verify), ROLE_RELAY)
    other.static_private = peer_key
    other.policy.declare_all = True

    async def one_sync() -> int:
        peer_end, relay_end = Pipe().ends
        relay_driver = LinkDriver(relay.ctx, relay_end, initiator=False)
        peer = LinkDriver(other, peer_end, initiator=True, until_synced=True)
        async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tasks:
            relay.ctx.committer = Committer(relay.store, 0.0)  # one per event loop
            committers = [tasks.create_task(c.committer.run()) for c in (relay.ctx, other)]
            tasks.create_task(relay_driver.run())
            await peer.run()
            for committer in committers:
                committer.cancel()
        return len(other.store.logs())

    return asyncio.run(one_sync())


def test_a_peer_claiming_the_relay_role_is_a_member_until_trusted(relay: RelaySide) -> None:
    log = GroupLog.make(9)
    log.append("carried")
    relay.store.add_log(log.address, log.sign_pub)
    relay.store.put_entries(log.entries, 1_000_000)
    relay.store.commit()
    stranger = SUITE.random_bytes(32)
    assert _relay_declarations(relay, stranger) == 0  # no list of carried logs for a claim
    relay.pairing.trusted = frozenset(
        {pp.key_fingerprint(SUITE, SUITE.x25519_public(stranger))}
    )  # as relay.trusted in the configuration
    assert _relay_declarations(relay, stranger) == 1
    paired = SUITE.random_bytes(32)
    relay.pair(relay.open(), paired, role=ROLE_RELAY)  # or paired as a relay
    assert _relay_declarations(relay, paired) == 1


def test_member_pin_refuses_another_relay_key(relay: RelaySide) -> None:
    log = GroupLog.make(10)

    async def one_sync(pin: str) -> tuple[str, str]:
        member_end, relay_end = Pipe().ends
        relay_driver = LinkDriver(relay.ctx, relay_end, initiator=False)
        member = _member_driver(None, log, member_end, until_synced=True)
        member.ctx.pinned_fingerprint = pin
        async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tasks:
            tasks.create_task(relay_driver.run())
            outcome = await member.run()
        return outcome.reason, outcome.text

    reason, text = asyncio.run(one_sync("0000-0000-0000-0000-0000-0000-0000-0000"))
    assert reason == "integrity" and "is not the pinned 0000-0000" in text
    reason, _ = asyncio.run(one_sync(relay.pairing.fingerprint))
    assert reason == "ok"


def test_a_recorded_exchange_replayed_in_another_session_does_not_pair(
    relay: RelaySide, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who had the phone's pairing steps in the clear (START, CONFIRM) replays them in a
    session of its own while a window is open: the confirmation is bound to the recorded
    session's handshake hash, so the relay answers "wrong code", pins nothing, and the replay
    costs one of the window's attempts."""
    recorded: list[tuple[int, bytes]] = []

    class Recording(pp.PairingExchange):
        def begin(self, name: str) -> tuple[int, bytes]:
            step = super().begin(name)
            recorded.append(step)
            return step

        def receive(self, step: int, data: bytes) -> list[tuple[int, bytes]]:
            out = super().receive(step, data)
            if self.initiator:
                recorded.extend(out)
            return out

    with monkeypatch.context() as patch:
        patch.setattr(pp, "PairingExchange", Recording)
        relay.pair(relay.open(), SUITE.random_bytes(32))
    assert [step for step, _ in recorded] == [pp.START, pp.CONFIRM]

    relay.open()
    replayer = SUITE.random_bytes(32)
    assert asyncio.run(_replay(relay, replayer, recorded)) == pp.WRONG_CODE
    assert relay.pairing.device_of(SUITE.x25519_public(replayer)) is None
    assert len(relay.pairing.devices.all()) == 1  # only the phone that really paired
    status = relay.pairing.cmd_status({})
    assert isinstance(status, dict) and status["attempts_left"] == MAX_ATTEMPTS - 1
    assert relay.ctx.stats.get("pairing.failed") == 1


async def _replay(relay: RelaySide, key: bytes, steps: list[tuple[int, bytes]]) -> int:
    """Open a session to the relay with `key` and send `steps` as they were recorded: START
    once the session is open, the rest one per Pairing step the relay sends. Returns the status
    of the relay's RESULT."""
    loop = asyncio.get_running_loop()

    def now() -> int:
        return int(loop.time() * 1000)

    phone_end, relay_end = Pipe().ends
    driver = LinkDriver(relay.ctx, relay_end, initiator=False)
    session = Session(
        SUITE, True, key, ROLE_MEMBER, now(), SessionLimits(), frame_hint=phone_end.frame_hint
    )
    pending = list(steps)
    status = -1
    async with asyncio.timeout(DEADLINE_S), asyncio.TaskGroup() as tasks:
        relay_task = tasks.create_task(driver.run())
        while not session.is_finished:
            while (event := session.next_event()) is not None:
                if isinstance(event, SessionOpened) and pending:
                    session.send_pairing(*pending.pop(0), now())
                elif isinstance(event, PairingReceived) and event.step == pp.RESULT:
                    status = pp.decode_result(event.data)[0]
                    session.close("ok", "", now())
                elif isinstance(event, PairingReceived) and pending:
                    session.send_pairing(*pending.pop(0), now())
            frames = session.frames_to_send()
            if frames:
                await phone_end.send(frames)
            if session.is_finished:
                break
            frame = await phone_end.recv()
            if frame is None:
                session.connection_lost(now())
            else:
                session.receive_frame(frame, now())
        await phone_end.close()
        await relay_task
    return status
