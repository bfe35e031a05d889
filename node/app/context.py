"""What every link driver of one node shares: store, suite, commits, new-entry fan-out, policy.

Nothing here is a module-level singleton: the daemon (or `waystation peer sync`) builds one
NodeContext and passes it to each LinkDriver. The new-entry fan-out (Hub, ForwardCache, Fresh)
lives in node.app.forward, which needs no event loop; it is re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.app.forward import FORWARD_CACHE_BYTES, FRESH_OVERHEAD, ForwardCache, Fresh, Hub
from node.crypto.address import verify_address
from node.crypto.api import Suite
from node.errors import IntegrityError, StoreError
from node.proto.session import SessionLimits
from node.sync.entry import decode_entry
from node.sync.store import Store
from node.sync.wire import log_header

if TYPE_CHECKING:
    from node.app.pairing import RelayPairing

__all__ = [
    "FORWARD_CACHE_BYTES",
    "FRESH_OVERHEAD",
    "Committer",
    "ForwardCache",
    "Fresh",
    "Hub",
    "LogPolicy",
    "NodeContext",
]

log = logging.getLogger("waystation.store")


class Committer:
    """Group commit: many drivers ask for durability, one store commit serves them all.

    A driver that stored entries calls `after_commit(callback)`; `run()` (a task in the daemon's
    TaskGroup) commits whenever callbacks wait, at most once per `interval` seconds, then calls
    them. So entries are acknowledged only after they are durable, and N links cost one fsync per
    interval instead of one per batch.

    All links share the store's one open transaction, so a failed put (disk full, I/O error) rolls
    back every link's uncommitted entries, not only its own (SQLite rolls a failed COMMIT back
    whole anyway). Each callback therefore remembers the store's `generation` when it was
    registered; a rollback moves the generation on, and a callback registered before it is called
    with False even if the next commit succeeds: its link says Bye "store-error" and its peer
    sends those entries again. docs/store.md says why this, rather than a savepoint per batch.
    """

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._callbacks: list[tuple[int, Callable[[bool], None]]] = []
        self._wake = asyncio.Event()
        self.commits = 0
        self.failures = 0

    def after_commit(self, callback: Callable[[bool], None], generation: int | None = None) -> None:
        """Call `callback(True)` once everything stored so far is durable.

        If the commit fails (StoreError: disk full, I/O error), or the store rolled back its open
        transaction since the put (another link's put failed), `callback(False)` is called
        instead: nothing of it may be acknowledged.

        Args:
            callback: called once with the outcome.
            generation: the store's `generation` read right after the put (LinkCore notes it in
                its CommitRequest); None to read it now, which is right only if nothing awaited
                since the put.
        """
        noted = self.store.generation if generation is None else generation
        self._callbacks.append((noted, callback))
        self._wake.set()

    def commit_now(self) -> None:
        """Commit at once on this thread and run the waiting callbacks (used at shutdown).

        A failed commit is counted and logged, never raised: the links whose entries it held are
        told (their peers send those entries again later), the others carry on.
        """
        callbacks, self._callbacks = self._callbacks, []
        self._finish(callbacks, self._commit())

    def _commit(self) -> bool:
        """`store.commit()`; True if it made everything put so far durable. Runs on the commit
        thread in `run` (the store serialises its calls with a lock)."""
        try:
            self.store.commit()
        except StoreError as exc:
            self.failures += 1
            log.error("store commit failed: %s", exc)
            return False
        self.commits += 1
        return True

    def _finish(self, callbacks: list[tuple[int, Callable[[bool], None]]], durable: bool) -> None:
        """Tell each waiting driver whether its entries are durable (on the event loop).

        The generation is read after the commit returned: a rollback between a driver's put and
        this moment moved it on, so entries it may have taken are never acknowledged."""
        generation = self.store.generation
        lost = sum(1 for noted, _ in callbacks if noted != generation)
        if not durable and callbacks:
            log.error("%d batches not acknowledged: the commit failed", len(callbacks))
        elif lost:
            log.error("%d batches not acknowledged: a failed put rolled their entries back", lost)
        for noted, callback in callbacks:
            callback(durable and noted == generation)

    async def run(self) -> None:
        """Commit loop; runs until cancelled, committing what is pending when cancelled.

        Each commit (SQLite COMMIT and its fsync) of a `thread_safe` store (SQLiteStore) runs on a
        dedicated thread, so the event loop goes on decoding, verifying and pushing while the
        disk syncs; the callbacks waiting when it started are called on the loop once it
        returned. A cancellation mid-commit waits for that commit (it is on its way to the disk)
        and still tells its callbacks. Where no thread can start (Pyodide in a browser), every
        commit runs on the loop, as for a store that is not thread-safe.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-commit")
        loop = asyncio.get_running_loop()
        in_flight: list[tuple[int, Callable[[bool], None]]] = []
        future: Future[bool] | None = None
        told = loop.create_future()
        threads = self.store.thread_safe
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self.interval > 0:
                    await asyncio.sleep(self.interval)  # gather more batches into this commit
                if not threads:
                    self.commit_now()  # a store only the loop's thread may call, or no threads
                    continue
                in_flight, self._callbacks = self._callbacks, []
                told = loop.create_future()
                try:
                    future = executor.submit(self._commit_and_tell, loop, in_flight, told)
                except RuntimeError:  # "can't start new thread": commit on the loop from now on
                    threads = False
                    self._callbacks = in_flight + self._callbacks
                    self.commit_now()
                    continue
                await asyncio.shield(told)
                future = None
        finally:
            if future is not None and not told.done():  # cancelled mid-commit: wait for it
                durable = self._commit() if future.cancel() else future.result()
                self._tell(in_flight, durable, told)  # (or do it, if not begun)
            executor.shutdown(wait=True)
            if self._callbacks or self.store.pending():
                self.commit_now()

    def _commit_and_tell(
        self,
        loop: asyncio.AbstractEventLoop,
        callbacks: list[tuple[int, Callable[[bool], None]]],
        told: asyncio.Future[None],
    ) -> bool:
        """On the commit thread: commit, then have the loop call the callbacks in its very next
        iteration (one hop; awaiting the thread's future took four: the future's state, the
        shield's two callbacks, the task's wake-up)."""
        durable = self._commit()
        loop.call_soon_threadsafe(self._tell, callbacks, durable, told)
        return durable

    def _tell(
        self,
        callbacks: list[tuple[int, Callable[[bool], None]]],
        durable: bool,
        told: asyncio.Future[None],
    ) -> None:
        if not told.done():  # once, whether the thread's hop or a cancellation gets here first
            told.set_result(None)
            self._finish(callbacks, durable)


@dataclass
class LogPolicy:
    """Which logs this node carries and declares.

    Attributes:
        community: accept any log a peer offers (relays), within `max_logs`.
        community_quota: byte quota of each log accepted that way (None: the store's default).
        max_session_logs: most logs a peer may declare in one session (each costs a table
            entry for the session's life); more is Bye "too-large". At most 5000, so that a
            pass's log list fits one Reconcile message.
        max_logs: most logs the store may carry.
        own: logs this node always declares: address -> (sign_pub, identity signature or b"");
            a member's groups, or a relay's pinned logs.
        declare_all: declare every stored log when initiating (relay to relay).
    """

    community: bool = True
    community_quota: int | None = None
    max_logs: int = 10000
    max_session_logs: int = 4096
    own: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    declare_all: bool = True


class NodeContext:
    """Everything a LinkDriver needs from its node."""

    def __init__(
        self,
        store: Store,
        suite: Suite,
        committer: Committer,
        policy: LogPolicy,
        limits: SessionLimits,
        hub: Hub | None = None,
        static_private: bytes | None = None,
        role: int = 1,
        clock: Callable[[], int] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.suite = suite
        self.committer = committer
        self.policy = policy
        self.limits = limits
        self.hub = hub or Hub()
        self.static_private = static_private
        self.role = role
        self.clock = clock or (lambda: int(time.monotonic() * 1000))
        self.wall_clock = wall_clock or time.time
        self.identity_signatures: dict[str, bytes] = {}
        self.stats: dict[str, int] = {}
        # Relays: pairing, paired devices, relay trust (node/app/pairing.py); None on members.
        self.pairing: RelayPairing | None = None
        # Members: the fingerprint of the relay's pinned link key; any other key is refused.
        self.pinned_fingerprint: str | None = None

    def count(self, name: str, delta: int = 1) -> None:
        """Bump a counter in `stats` (links opened, byes by reason, refusals...)."""
        self.stats[name] = self.stats.get(name, 0) + delta

    def session_static(self) -> bytes:
        """Our X25519 static key for a new session: the node key, or a fresh one (members)."""
        if self.static_private is not None:
            return self.static_private
        return self.suite.random_bytes(32)

    def header_for(self, address: str) -> bytes | None:
        """Our wire header for a log we carry (sign_pub + identity signature when known)."""
        if address in self.policy.own:
            sign_pub, id_sig = self.policy.own[address]
        elif (stored_key := self.store.sign_pub_of(address)) is not None:
            sign_pub = stored_key
            id_sig = b""
        else:
            return None
        id_sig = id_sig or self.identity_signature_of(address, sign_pub) or bytes(64)
        return log_header(sign_pub, id_sig)

    def identity_signature_of(self, address: str, sign_pub: bytes) -> bytes:
        """The identity signature of a stored log, or b"" while the log holds no entry.

        Every entry of a group carries the same identity block (node.sync.wire), so one stored
        entry gives it. Learned from entries received on a link (LinkCore) or, the first time a
        log is declared after a restart, read from one of the log's stored heads and kept here:
        one block read and decode per log per process, and the log's entries go out compact
        from the first sync on. Only an identity the wire can compact against is kept (one
        bound to `sign_pub`; stored entries were verified on the way in).
        """
        known = self.identity_signatures.get(address)
        if known:
            return known
        for cid in self.store.heads(address)[:1]:
            block = self.store.get_block(cid)
            if block is None:
                continue
            identity = decode_entry(block, cid).identity
            if identity.id == sign_pub.hex() and len(identity.signature_id) == 64:
                self.identity_signatures[address] = identity.signature_id
                return identity.signature_id
        return b""

    def accept_log(
        self, address: str, sign_pub: bytes, pin_quota: int | None = None
    ) -> str | None:
        """Carry a log a peer offered? None if yes (registered now), else the reason why not.

        `pin_quota` is given for a log a paired device registers: it is carried pinned, with
        that quota (DESIGN.md §4), whatever the community policy.

        Raises:
            RemoteProtocolError: the address does not commit to `sign_pub` (a forged offer).
        """
        if pin_quota is not None and address not in self.policy.own:
            known = self.store.sign_pub_of(address)
            if known is None:
                verify_address(self.suite, address, sign_pub)  # raises for a forgery
            elif known != sign_pub:
                raise IntegrityError("log %s offered with another signing key" % address[:80])
            self.store.add_log(address, sign_pub, pinned=True, quota=pin_quota)
            return None
        if address in self.policy.own:
            if self.policy.own[address][0] != sign_pub:
                raise IntegrityError("log %s offered with another signing key" % address[:80])
            if not self.store.has_log(address):
                self.store.add_log(address, sign_pub, pinned=True)
            return None
        known = self.store.sign_pub_of(address)
        if known is not None:
            if known != sign_pub:
                raise IntegrityError("log %s offered with another signing key" % address[:80])
            return None
        if not self.policy.community:
            return "not-carried"
        if self.store.log_count() >= self.policy.max_logs:
            return "too-many-logs"
        verify_address(self.suite, address, sign_pub)  # raises IntegrityError for a forgery
        self.store.add_log(address, sign_pub, quota=self.policy.community_quota)
        return None
