"""The status report of an in-process daemon, asked over its real control socket, including
when the store has failed (the state the operator most needs `status` in)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.app.config import parse_config
from node.app.control import request
from node.app.daemon import Daemon
from node.app.status import render_text
from node.crypto._nacl import NaclSuite


def test_a_failed_store_is_reported_not_fatal(tmp_path: Path) -> None:
    config = parse_config(
        '[lan]\nlisten = "127.0.0.1:0"\nzeroconf = false\npeers = ["127.0.0.1:9"]\n'
    )
    daemon = Daemon(config, NaclSuite(), tmp_path / "relay")

    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        running = asyncio.create_task(daemon.run())
        async with asyncio.timeout(30):
            await daemon.started.wait()
        healthy = await asyncio.to_thread(request, daemon.data_dir, "status")
        assert daemon.ctx is not None
        daemon.ctx.store.close()  # what a failing disk leaves: every store call raises StoreError
        failed = await asyncio.to_thread(request, daemon.data_dir, "status")
        daemon.stop()
        await running
        return healthy, failed

    healthy, failed = asyncio.run(scenario())
    assert healthy["logs"] == 0 and isinstance(healthy["store"], dict)
    assert healthy["store"]["entries"] == 0
    store = failed["store"]
    assert isinstance(store, dict)
    assert "is closed" in str(store["error"])
    assert store["quota"] == healthy["store"]["quota"]
    assert failed["logs"] is None
    assert failed["fingerprint"] == healthy["fingerprint"]
    assert [p["address"] for p in failed["relay_peers"]] == ["tcp:127.0.0.1:9"]  # type: ignore[index]
    text = render_text(failed)
    assert "store      UNAVAILABLE: store " in text
    assert "logs       ? carried (0 pinned)" in text
