"""The relay daemon (L2): builds store, suite and context; runs every task under one TaskGroup.

Tasks, all children of one asyncio.TaskGroup (nothing is fire-and-forget):
  committer     group commit of the store (acks are sent only after it)
  listeners     one per transport (TCP today, built from lan.listen): each hands finished Links
                with their source (the peer's IP, a BLE central's address) to one bounded
                LinkQueue (node/link.py), whose gate is the admission shell (node/app/gatekeeper.py
                over the policy in node/app/admission.py): a source over its limits is refused
                there, and the listener closes the newcomer at once
  acceptor      takes links from that queue; the gate starts one LinkDriver each as soon as the
                policy gives its source a handshake slot (until then the link waits unread)
  admission     (Gatekeeper.run) closes links at their deadlines: unauthenticated ones at the
                handshake deadline whatever trickles in, sessions that declared and moved nothing
                after relay.idle_session_s; the longest-idle session makes room at
                relay.max_sessions
  drivers       one per link, member or relay
  peer syncs    every lan.sync_interval_s, and soon after new entries arrive, a short sync session
                with each relay in lan.peers or found by zeroconf (one at a time per relay); relays
                are PeerAddress values (tcp:HOST:PORT), dialed by the dialer of their kind
  discovery     zeroconf advertisement with a rotating token, and browsing for other relays
  housekeeping  expiry, the watchdog, and data_dir/status.json (counters for the operator)
  control       data_dir/control.sock: `waystation status` asks it (node/app/control.py)
  consoles      data_dir/console.sock (`waystation console`) and one task per console.ports
                serial port; their commands are control commands (node/app/console_*.py)

SIGTERM/SIGINT: stop accepting, say Bye "shutdown" on every link, wait for them (bounded), commit
what is pending (nothing unacknowledged is lost because nothing was acknowledged before commit),
close the store, notify systemd STOPPING=1.

The daemon knows links, never sockets: the only transport-specific lines are the ones that build
the listener and the dialer (`_build_transports`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from node.app.config import Config, admission_limits, session_limits, store_limits
from node.app.console_commands import (
    Activity,
    ConsoleActions,
    LogRing,
    console_handlers,
    wipe_data_dir,
)
from node.app.console_server import Consoles, shell_factory
from node.app.context import Committer, Hub, LogPolicy, NodeContext
from node.app.control import ControlServer, Handler
from node.app.datadir import claim_data_dir
from node.app.gatekeeper import Gatekeeper
from node.app.identity import NodeIdentity, load_or_create_identity
from node.app.pairing import RelayPairing
from node.app.peer import LinkDriver, SyncOutcome
from node.app.sdnotify import Notifier
from node.app.status import RecentLinks, SyncBook, status_report
from node.crypto.api import Suite
from node.crypto.rendezvous import TOKEN_INTERVAL, discovery_key, relay_token, round_period
from node.errors import (
    ENDING_INTERNAL_ERROR,
    REASON_REVOKED,
    REASON_SHUTDOWN,
    ConfigError,
    LinkError,
    NodeError,
    StoreError,
)
from node.lan.tcp import TcpDialer, TcpListener, tcp_address
from node.link import Dialer, Dialers, Link, LinkQueue, Listener, PeerAddress
from node.proto.messages import ROLE_RELAY
from node.store.devices import DeviceBook
from node.store.sqlite import SQLiteStore

log = logging.getLogger("waystation.daemon")

SHUTDOWN_GRACE_S = 3.0
STATUS_INTERVAL_S = 10.0
EXPIRY_INTERVAL_S = 3600.0
NEW_ENTRY_DEBOUNCE_S = 0.2
DISCOVERED_TTL_S = 600.0
MAX_DISCOVERED = 32  # relays adopted from zeroconf (anyone on the LAN can announce some)
MAX_OUTGOING_SYNCS = 4  # relay-to-relay syncs at once
DISCOVERY_RETRY_S = 60.0
CONNECT_TIMEOUT_S = 5.0


def settle_heap() -> None:
    """Collect once, then freeze what start-up made (gc.freeze: modules, classes, config, the
    store's records live as long as the daemon), so that a full collection walks only what the
    relay made since: the pause it costs every link stays small (bench/scale.py, row gc)."""
    gc.collect()
    gc.freeze()


class Daemon:
    """One relay node.

    Args:
        config: the validated configuration.
        suite: the crypto suite.
        data_dir: where the node key, store and status live.
        actions: what console commands may do to the machine (reboot, the config file to edit).
        clock: monotonic seconds for admission deadlines and its summary lines (tests drive it).
    """

    def __init__(
        self,
        config: Config,
        suite: Suite,
        data_dir: Path,
        actions: ConsoleActions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.actions = actions or ConsoleActions()
        self.wipe_requested = False
        self.consoles: Consoles | None = None
        self.suite = suite
        self.data_dir = data_dir
        self.identity: NodeIdentity | None = None
        self.ctx: NodeContext | None = None
        self.port: int | None = None
        self.listener, self.dialers = self._build_transports(config)
        self.radios = self._build_radios(config)
        self.radio_failures: dict[str, str] = {}  # radio kind -> why it did not start
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._drivers: set[LinkDriver] = set()
        self._link_tasks: set[asyncio.Task[object]] = set()
        self._links_done = asyncio.Event()
        self._links_done.set()
        self._tasks: asyncio.TaskGroup | None = None
        self.gate = Gatekeeper(
            admission_limits(config), self._count, self._launch, self._close_later, clock
        )
        # Room for every admitted pending link (a burst is accepted before the acceptor runs).
        self._accepted = LinkQueue(config.relay.max_pending + 1, self.gate.admit)
        self._sync_wanted = asyncio.Event()
        self._discovered: dict[PeerAddress, float] = {}
        self._syncing: set[PeerAddress] = set()
        self._notifier = Notifier.from_environ()
        self.started_at = time.time()
        self.syncs = SyncBook()  # last sync with each relay peer, for `waystation status`
        self.recent_links = RecentLinks()  # links that closed, for the console's `peers`
        self.pairing: RelayPairing | None = None

    @property
    def links(self) -> list[LinkDriver]:
        """The drivers of the links open now."""
        return list(self._drivers)

    @staticmethod
    def _build_transports(config: Config) -> tuple[TcpListener, Dialers]:
        """The listener and the dialers, one line per transport."""
        max_frame = config.session.max_frame_bytes
        listener = TcpListener(config.lan.listen, max_frame)
        return listener, Dialers([TcpDialer(max_frame), *Daemon._radio_dialers(config)])

    @staticmethod
    def _radio_dialers(config: Config) -> list[Dialer]:
        """The BLE central when [radio.ble] is enabled (node/radio needs the `ble` extra)."""
        ble = config.radio.ble
        if not ble.enabled:
            return []
        from node.radio.central import BleCentral

        return [
            BleCentral(
                ble.adapter, config.session.max_frame_bytes, ble.central_max_links,
                ble.central_min_rssi, ble.central_connect_interval_s, ble.max_mtu,
            )
        ]  # fmt: skip

    def _build_radios(self, config: Config) -> list[Listener]:
        """The BLE GATT peripheral when [radio.ble] is enabled, advertising our token."""
        ble = config.radio.ble
        if not ble.enabled:
            return []
        from node.radio.peripheral import BlePeripheral

        return [
            BlePeripheral(
                ble.adapter, self._token, config.session.max_frame_bytes, ble.max_connections,
                ble.max_mtu, ble.acquire, ble.advertising_interval_ms,
            )
        ]  # fmt: skip

    async def _serve_radio(self, radio: Listener) -> None:
        """Accept a radio's links; a radio that cannot start is logged, the relay goes on."""
        try:
            await radio.serve(self._accepted)
        except LinkError as exc:  # no bluetoothd, no adapter: LAN relaying is unaffected
            assert self.ctx is not None
            self.ctx.count("radio.%s.failed" % radio.kind)
            self.radio_failures[radio.kind] = str(exc)
            log.error("%s radio not started: %s", radio.kind, exc)

    def stop(self) -> None:
        """Begin a graceful shutdown (signal handlers call this)."""
        self._stop.set()

    def request_wipe(self) -> None:
        """Stop, and once the store is closed erase the key and the data (console `wipe`)."""
        self.wipe_requested = True
        self.stop()

    async def run(self) -> None:
        """Run until stop() or a signal; raises NodeError if the node cannot start.

        The listening sockets are opened first, so a port that is taken stops the daemon before
        it creates a key or a store.
        """
        try:
            self.listener.open()
        except LinkError as exc:  # address in use, not ours, unknown host or interface
            raise ConfigError("lan.listen", str(exc)) from exc
        self.port = self.listener.port
        try:
            claim = claim_data_dir(self.data_dir)  # read-only, a second daemon, a lost store
            try:
                self.identity = load_or_create_identity(self.data_dir, self.suite)
                store = SQLiteStore.open_in(
                    self.data_dir, self.suite.ed25519_verify, store_limits(self.config),
                    journal=self.config.store.journal,
                )  # fmt: skip
                try:
                    if store.left_open:  # reads the whole file: only after an unclean end
                        log.warning("store %s was not closed cleanly: checking it", store.path)
                        store.quick_check()
                    await self._run_with_store(store)
                finally:
                    store.close()
                if self.wipe_requested:
                    gone = wipe_data_dir(self.data_dir)
                    log.warning("wiped %s: %s", self.data_dir, ", ".join(gone) or "nothing")
            finally:
                claim.release()
        finally:
            self.listener.close()

    async def _run_with_store(self, store: SQLiteStore) -> None:
        assert self.identity is not None and self.port is not None
        config = self.config
        committer = Committer(store, config.store.commit_interval_ms / 1000)
        hub = Hub()
        hub.on_new_entries.append(lambda _log_id: self._sync_wanted.set())
        activity = Activity()
        hub.on_new_entries.append(activity.touch)
        self.ctx = NodeContext(
            store,
            self.suite,
            committer,
            LogPolicy(
                community=config.relay.community_mode,
                community_quota=config.relay.community_log_bytes,
                declare_all=True,
            ),
            session_limits(config),
            hub=hub,
            static_private=self.suite.ed25519_sk_to_x25519(self.identity.secret_key),
            role=ROLE_RELAY,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        for skipped in self.listener.skipped:
            log.warning("lan.listen: %s skipped: this host lacks that address family", skipped)
        self.pairing = RelayPairing(
            self.suite,
            DeviceBook(store),
            committer.commit_now,
            self.identity.link_public(self.suite),
            config.relay.pairing_window_s,
            config.relay.device_log_bytes,
            config.relay.trusted,
            self.close_links_of,
            community_quota=config.relay.community_log_bytes,
            discovery_key=discovery_key(self.identity.secret_key[:32]),
        )
        self.ctx.pairing = self.pairing
        ring = LogRing()
        logging.getLogger("waystation").addHandler(ring)
        handlers: dict[str, Handler] = {"status": lambda _: status_report(self)}
        handlers.update(console_handlers(self, self.actions, ring, activity))
        handlers.update(self.pairing.handlers())
        control = ControlServer(self.data_dir, handlers, self.ctx.count)
        await control.open()  # before "listening" and READY=1: `waystation status` works then
        new_shell = shell_factory(config.node.name, control, config.console.pin_hash)
        self.consoles = Consoles(
            self.data_dir, config.console.ports, config.console.baud, new_shell, self.ctx.count
        )
        await self.consoles.open()
        log.info(
            "relay %s listening on %s, data in %s",
            self.identity.fingerprint(self.suite),
            ", ".join(map(str, self.listener.bound)),
            self.data_dir,
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                listening = tasks.create_task(self.listener.serve(self._accepted))
                background = [
                    listening,
                    tasks.create_task(control.serve()),
                    tasks.create_task(self.consoles.serve()),
                    tasks.create_task(committer.run()),
                    tasks.create_task(self._acceptor()),
                    tasks.create_task(self.gate.run()),
                    tasks.create_task(self._peer_sync_loop(tasks)),
                    tasks.create_task(self._housekeeping()),
                ]
                if config.lan.zeroconf:
                    background.append(tasks.create_task(self._discovery()))
                background.extend(tasks.create_task(self._serve_radio(r)) for r in self.radios)
                self.pairing.join = lambda relay, code, expect: self._track(
                    tasks.create_task(self._join_relay(relay, code, expect))
                )
                settle_heap()
                self._notifier.ready("relaying on port %d" % self.port)
                self.started.set()
                await self._stop.wait()
                self._notifier.stopping("shutting down")
                log.info("shutting down")
                listening.cancel()
                for driver in list(self._drivers):
                    driver.request_close(REASON_SHUTDOWN, "relay is shutting down")
                self.gate.shutdown()  # links waiting unread are closed: no Bye to say
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SHUTDOWN_GRACE_S):
                        await self._links_done.wait()
                # Whatever did not finish within the grace (a peer that stops reading) is cut.
                for task in [*background, *self._link_tasks]:
                    task.cancel()
        finally:
            logging.getLogger("waystation").removeHandler(ring)
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            with contextlib.suppress(StoreError):
                committer.commit_now()
            self._write_status()

    # -- links --------------------------------------------------------------------------------

    async def _acceptor(self) -> None:
        while True:
            self.gate.taken(await self._accepted.get())

    def _launch(
        self, link: Link, progress: Callable[[SyncOutcome], None], ended: Callable[[], None]
    ) -> LinkDriver:
        """Start the driver of an inbound link the gate let in (Gatekeeper's `launch`)."""
        assert self.ctx is not None and self._tasks is not None
        driver = LinkDriver(self.ctx, link, initiator=False, progress=progress)
        self._drivers.add(driver)  # now, not when its task starts: a burst cannot overshoot
        self._links_done.clear()

        async def drive() -> None:
            try:
                await self._drive(driver)
            finally:
                ended()

        self._track(self._tasks.create_task(drive()))
        return driver

    def _close_later(self, link: Link) -> None:
        assert self._tasks is not None
        self._track(self._tasks.create_task(link.close()))

    def _count(self, name: str) -> None:
        if self.ctx is not None:
            self.ctx.count(name)

    def close_links_of(self, static_key: bytes) -> int:
        """Close every open link whose peer has this Noise static key (a revoked device)."""
        closing = [d for d in self._drivers if d.outcome.remote_static == static_key]
        for driver in closing:
            driver.request_close(REASON_REVOKED, "this device's pairing was revoked")
        return len(closing)

    def _track(self, task: asyncio.Task[object]) -> None:
        """Remember a link task (it belongs to the TaskGroup) so shutdown can cut it."""
        self._link_tasks.add(task)
        task.add_done_callback(self._link_tasks.discard)

    async def _drive(self, driver: LinkDriver) -> SyncOutcome:
        self._drivers.add(driver)
        self._links_done.clear()
        reason = "cancelled"
        try:
            outcome = await driver.run()
            reason = outcome.reason
        except Exception:  # a bug in the link code costs this link, never the daemon
            assert self.ctx is not None
            reason = "internal-error"
            self.ctx.count("links.closed.internal-error")
            log.exception("%s: internal error, link dropped", driver.link.label)
            with contextlib.suppress(Exception):
                await driver.link.close()
            return SyncOutcome(reason=ENDING_INTERNAL_ERROR)
        finally:
            self._drivers.discard(driver)
            if self.ctx is not None:
                self.recent_links.closed(driver, reason, self.ctx.clock())
            if not self._drivers:
                self._links_done.set()
        log.info(
            "%s closed: %s%s (sent %d, received %d, refused %d)",
            driver.link.label,
            outcome.reason,
            " by peer" if outcome.by_peer else "",
            outcome.entries_sent,
            outcome.entries_received,
            outcome.entries_refused,
        )
        return outcome

    # -- relay peers --------------------------------------------------------------------------

    def _relay_peers(self) -> list[PeerAddress]:
        now = time.monotonic()
        for key, seen in list(self._discovered.items()):
            if now - seen > DISCOVERED_TTL_S:
                del self._discovered[key]
        peers = list(self.config.lan.peers)
        peers.extend(k for k in self._discovered if k not in peers)
        return peers

    async def _peer_sync_loop(self, tasks: asyncio.TaskGroup) -> None:
        interval = self.config.lan.sync_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._sync_wanted.wait()
                    await asyncio.sleep(NEW_ENTRY_DEBOUNCE_S)  # gather a burst into one sync
            self._sync_wanted.clear()
            for address in self._relay_peers():
                if len(self._syncing) >= MAX_OUTGOING_SYNCS:
                    self._sync_wanted.set()  # the rest next time round
                    break
                if address not in self._syncing and not self._stop.is_set():
                    self._syncing.add(address)
                    self._track(tasks.create_task(self._sync_with(address)))

    async def _sync_with(self, key: PeerAddress) -> None:
        assert self.ctx is not None
        try:
            link = await self.dialers.dial(key, CONNECT_TIMEOUT_S)
        except LinkError as exc:
            self.ctx.count("peers.unreachable")
            self.syncs.unreachable(str(key), str(exc))
            log.info("relay %s unreachable: %s", key, exc)
            self._syncing.discard(key)
            return
        try:
            driver = LinkDriver(self.ctx, link, initiator=True, until_synced=True)
            self.syncs.finished(str(key), await self._drive(driver))
        finally:
            self._syncing.discard(key)

    async def _join_relay(self, relay: str, code: bytes, expect: str | None) -> None:
        """`pair.join`: pair with another relay's window, as the initiator, with our node key."""
        from node.app.config import parse_peer
        from node.app.pair_client import PairingError, pair_with

        assert self.ctx is not None and self.pairing is not None
        try:
            address = parse_peer(relay, "relay")
            remote = await pair_with(
                self.suite, self.dialers, address, code, self.config.node.name,
                self.ctx.session_static(), ROLE_RELAY, CONNECT_TIMEOUT_S * 6, expect,
            )  # fmt: skip
        except (PairingError, LinkError, ConfigError) as exc:
            self.pairing.joined(relay, None, str(exc))
        except TimeoutError:
            self.pairing.joined(relay, None, "no answer in time")
        else:
            self.pairing.joined(relay, remote.static_key, "")

    # -- discovery ----------------------------------------------------------------------------

    def _token(self) -> bytes:
        assert self.identity is not None  # the key is also given to paired devices (RelayPairing)
        key = discovery_key(self.identity.secret_key[:32])
        return relay_token(key, round_period(int(time.time()), TOKEN_INTERVAL))

    async def _discovery(self) -> None:
        """Advertise and browse; zeroconf trouble is logged, counted and retried, never fatal."""
        while True:
            try:
                await self._discover()
            except LinkError as exc:
                assert self.ctx is not None
                self.ctx.count("discovery.errors")
                log.warning("zeroconf: %s; retrying in %.0f s", exc, DISCOVERY_RETRY_S)
            await asyncio.sleep(DISCOVERY_RETRY_S)

    async def _discover(self) -> None:
        from node.lan.discovery import Advertiser, Browser, close_discovery, open_zeroconf

        assert self.port is not None and self.ctx is not None
        hosts = [bound.host for bound in self.listener.bound]
        ipv4 = [h for h in hosts if ":" not in h]  # zeroconf on given interfaces is IPv4-only
        interfaces = None if any(h in ("0.0.0.0", "::") for h in hosts) else ipv4 or None
        azc = open_zeroconf(interfaces)
        advertiser = Advertiser(azc, self.port, self._token, interfaces)
        browser = Browser(azc, ignore_name=advertiser.is_own)
        try:
            await advertiser.start()
            await browser.start()
            refresh_every = TOKEN_INTERVAL / 3
            next_refresh = time.monotonic() + refresh_every
            while True:
                timeout = max(0.0, next_refresh - time.monotonic())
                try:
                    async with asyncio.timeout(timeout):
                        seen = await browser.events.get()
                except TimeoutError:
                    await advertiser.refresh()
                    next_refresh = time.monotonic() + refresh_every
                    continue
                key = tcp_address(seen.host, seen.port)
                if key not in self._discovered and len(self._discovered) >= MAX_DISCOVERED:
                    self.ctx.count("discovery.ignored.too-many")
                    continue
                if key not in self._discovered:
                    log.info("found a relay at %s", key)
                    self._sync_wanted.set()
                self._discovered[key] = time.monotonic()
        finally:
            await close_discovery(azc, advertiser, browser)

    # -- housekeeping -------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        assert self.ctx is not None
        watchdog = self._notifier.watchdog_interval()
        next_expiry = 0.0
        while True:
            now = time.monotonic()
            if now >= next_expiry:
                try:
                    removed = self.ctx.store.expire(time.time())
                except StoreError as exc:  # counted and retried next time; links carry on
                    self.ctx.count("store.errors")
                    log.error("expiry failed: %s", exc)
                    removed = 0
                if removed:
                    log.info("expired %d entries", removed)
                next_expiry = now + EXPIRY_INTERVAL_S
            self._write_status()
            self.gate.flush()
            if watchdog:
                self._notifier.watchdog()
            await asyncio.sleep(min(STATUS_INTERVAL_S, watchdog or STATUS_INTERVAL_S))

    def status(self) -> dict[str, object]:
        """Counters and store figures for the operator (also written to status.json)."""
        ctx = self.ctx
        if ctx is None:
            return {}
        counters = dict(ctx.stats)
        if self._accepted.refused:
            counters["links.rejected.backlog"] = self._accepted.refused
        return {
            "links_open": len(self._drivers),
            "admission": self.gate.status(),
            "listening": [str(b) for b in self.listener.bound],
            "logs": ctx.store.log_count(),
            "store": ctx.store.stats(),
            "counters": dict(sorted(counters.items())),
            "commits": ctx.committer.commits,
            "relay_peers": [str(p) for p in self._relay_peers()],
        }

    def _write_status(self) -> None:
        path = self.data_dir / "status.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(status_report(self), indent=1, sort_keys=True))
            os.replace(tmp, path)
        except (OSError, NodeError) as exc:
            log.warning("cannot write %s: %s", path, exc)
