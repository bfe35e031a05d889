"""`waystation peer sync` shows progress on stderr while entries move, through a real relay.

The thresholds (200 entries, 1 s) are lowered with the CLI's hidden --progress-entries and
--progress-interval options so ~50 entries suffice; a member syncing with the defaults shows none.
Members are set up in-process (PeerSession) to keep the test fast; every sync is a real
`waystation peer sync` process against a real `waystation run` process.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from node.app.peer_cli import PeerSession
from tests.integration.procs import CLI_DEADLINE_S, WAYSTATION, Relay, child_env

PROGRESS = re.compile(r"^  \.\.\. sent (\d+), received (\d+) entries$")
MESSAGES = 47  # + 3 entries of the group's creation = 50


def peer_sync(data_dir: Path, relay: Relay, *extra: str) -> tuple[str, list[tuple[int, int]]]:
    """Run `peer sync`; its stdout and the (sent, received) of each progress line on stderr."""
    argv = [WAYSTATION, "peer", "sync", "--data", str(data_dir), "--relay", relay.address]
    done = subprocess.run(
        [*argv, "--timeout", "30", *extra],
        capture_output=True,
        text=True,
        timeout=CLI_DEADLINE_S,
        env=child_env(data_dir.parent),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    lines = [PROGRESS.match(line) for line in done.stderr.splitlines()]
    return done.stdout, [(int(m.group(1)), int(m.group(2))) for m in lines if m]


def received_total(stdout: str) -> int:
    match = re.search(r"synced with .*, received (\d+) entries", stdout)
    assert match, stdout
    return int(match.group(1))


def test_sync_progress_lines_follow_the_thresholds(tmp_path: Path) -> None:
    with PeerSession(tmp_path / "a", create_name="A") as alice:
        group = alice.client.create_group("hut", time.time())
        for i in range(MESSAGES):
            alice.client.send(group, "message %d" % i, time.time())
        invitation = alice.client.invitation(group)
    for name in ("b", "c"):
        with PeerSession(tmp_path / name, create_name=name.upper()) as member:
            member.client.join(invitation, time.time())
    with Relay(tmp_path / "relay") as relay:
        # every time entries move past 20: lines, counts never going back, the last one complete
        out, shown = peer_sync(
            tmp_path / "a", relay, "--progress-entries", "20", "--progress-interval", "0"
        )
        assert "sent 50, received 0 entries" in out
        assert shown, "no progress line"
        assert all(sent + received >= 20 for sent, received in shown)
        assert shown == sorted(shown) and shown[-1] == (50, 0)
        # an interval longer than the sync: exactly one line, the first time 20 had moved
        out, shown = peer_sync(
            tmp_path / "b", relay, "--progress-entries", "20", "--progress-interval", "3600"
        )
        assert received_total(out) == 50
        assert len(shown) == 1 and shown[0][1] >= 20
        # the defaults (200 entries): 50 + 3 (b's join) entries moving show nothing
        out, shown = peer_sync(tmp_path / "c", relay)
        assert received_total(out) == 53 and shown == []
