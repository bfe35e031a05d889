"""A bug inside one link's driver costs that link, not the daemon (Daemon._drive)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.app.config import default_config
from node.app.daemon import Daemon
from node.app.peer import LinkDriver
from node.crypto._nacl import NaclSuite
from tests.sync_helpers import make_context


class ClosingLink:
    label = "test:link"
    kind = "pipe"
    frame_hint = 65535

    def __init__(self) -> None:
        self.closed = False

    async def recv(self) -> bytes | None:
        return None

    async def send(self, frames: list[bytes]) -> None:
        return None

    async def close(self) -> None:
        self.closed = True


class BrokenDriver(LinkDriver):
    async def run(self):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("a bug")


def test_internal_error_in_a_driver_is_contained(tmp_path: Path) -> None:
    from node.proto.messages import ROLE_RELAY
    from node.sync.store import MemoryStore

    suite = NaclSuite()
    daemon = Daemon(default_config(), suite, tmp_path)

    async def scenario() -> str:
        daemon.ctx = make_context(MemoryStore(suite.ed25519_verify), ROLE_RELAY)
        link = ClosingLink()
        outcome = await daemon._drive(BrokenDriver(daemon.ctx, link, initiator=False))
        assert link.closed
        return outcome.reason

    assert asyncio.run(scenario()) == "internal-error"
    assert daemon.ctx is not None
    assert daemon.ctx.stats["links.closed.internal-error"] == 1
