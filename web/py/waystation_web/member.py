"""The member facade of the web app: one account, its groups and messages, and sync.

Theory of operation
-------------------
The page (phase 2) and the Node tests call this, never `node` directly. It wires the same parts as
`waystation peer` (node.app.peer_cli): a Store (SQLite, in Pyodide's file system: MEMFS now,
IndexedDB-backed in phase 2), a MemberClient, and the crypto suite, here JsSuite (libsodium.js)
instead of PyNaCl. Syncing dials through a JavaScript stream opener (`StreamDialer`) and runs the
project's own LinkDriver (node.app.sync_client.sync_with): the protocol code is the desktop
member's, byte for byte. Like `peer sync`, one sync is up to MAX_SYNC_ROUNDS passes: process what
arrived, and pass again while processing wrote entries (chain keys for new members).

Results cross to JavaScript as JSON text, so the page needs no knowledge of Python objects.
"""

import json
import time
from pathlib import Path
from typing import Any

from node.app.sync_client import MAX_FRAME, member_context, sync_with
from node.crypto.api import Suite
from node.errors import LinkError, NodeError
from node.link import Dialers, PeerAddress
from node.member.client import MemberClient, is_initialised
from node.store.sqlite import SQLiteStore
from waystation_web.jslink import StreamDialer

MAX_SYNC_ROUNDS = 3


class WebMember:
    """An opened member data directory in the browser's (or Node's) Pyodide file system.

    Args:
        suite: the crypto suite (JsSuite in the page).
        data_dir: the directory (created if missing).
        name: the display name, to create the account when the directory holds none.
    """

    def __init__(self, suite: Suite, data_dir: str, name: str | None = None) -> None:
        self.suite = suite
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = SQLiteStore.open_in(self.data_dir, suite.ed25519_verify)
        try:
            if is_initialised(self.data_dir):
                self.client = MemberClient(suite, self.store, self.data_dir)
            elif name is not None:
                self.client = MemberClient.init(suite, self.store, self.data_dir, name)
            else:
                raise NodeError("no member account in %s and no name to create one" % data_dir)
        except BaseException:
            self.store.close()
            raise

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def create_group(self, name: str) -> str:
        """Create a group; returns its id."""
        return self.client.create_group(name, time.time())

    def invitation(self, group: str) -> str:
        """The invitation text of a group."""
        return self.client.invitation(group)

    def join(self, invitation: str) -> str:
        """Join a group from an invitation; returns its id."""
        return self.client.join(invitation, time.time())

    def groups_json(self) -> str:
        """The groups as JSON: [[id, name], ...]."""
        return json.dumps(self.client.list_groups())

    def send(self, group: str, text: str) -> str:
        """Write a message; returns the entry's CID."""
        now = time.time()
        self.client.process(now)
        return str(self.client.send(group, text, now))

    def read_json(self, group: str) -> str:
        """The group's messages as JSON (node.member.client.Message.to_json each)."""
        self.client.process(time.time())
        return json.dumps([m.to_json() for m in self.client.read(group)])

    async def sync(self, open_stream: Any, address: str, timeout: float) -> str:
        """Sync with the relay at `address` (``tcp:HOST:PORT``) through `open_stream`.

        Returns JSON: {"ok", "reason", "sent", "received", "opened", "rounds"}; a relay that
        cannot be reached or a sync that times out is an outcome ("ok": false), not an exception.
        """
        dialers = Dialers([StreamDialer(open_stream, MAX_FRAME)])
        deadline = time.monotonic() + timeout
        result: dict[str, Any] = {"ok": False, "reason": "", "sent": 0, "received": 0}
        result.update(opened=self.client.process(time.time()).opened, rounds=0)
        for _ in range(MAX_SYNC_ROUNDS):
            logs = {log.address: (log.sign_pub, log.identity_signature)
                    for log in self.client.sync_logs()}
            ctx = member_context(self.store, self.suite, logs)
            try:
                outcome = await sync_with(
                    ctx, PeerAddress.parse(address), deadline - time.monotonic(), None, dialers
                )
            except TimeoutError:
                result["reason"] = "timed out"
                return json.dumps(result)
            except LinkError as exc:
                result["reason"] = str(exc)
                return json.dumps(result)
            result["rounds"] += 1
            result["sent"] += outcome.entries_sent
            result["received"] += outcome.entries_received
            if not outcome.in_sync:
                result["reason"] = "%s %s" % (outcome.reason or "closed", outcome.text)
                return json.dumps(result)
            before = self.store.stats().get("entries", 0)
            result["opened"] += self.client.process(time.time()).opened
            if self.store.stats().get("entries", 0) == before:
                break
        result["ok"] = True
        return json.dumps(result)
