"""The store's limits with real processes (issue 9): a member whose log is over the relay's quota
is told so by `waystation peer sync`; a second daemon on the same data directory is refused."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.integration.procs import Member, Relay


def test_peer_sync_says_the_relay_keeps_the_newest_and_a_second_daemon_is_refused(
    tmp_path: Path,
) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[relay]\ncommunity_log_bytes = 16384\n")
    with contextlib.ExitStack() as stack:
        relay = stack.enter_context(Relay(tmp_path / "relay", config=config))
        alice = Member(tmp_path / "alice", "alice")
        alice.init()
        group = alice.create_group("long talk")
        for i in range(12):
            alice.send(group, "%d " % i + "words " * 330)
        done = alice.run("sync", "--relay", relay.address, "--timeout", "20", check=False)
        assert done.returncode != 0
        assert "ended: quota relay keeps the newest" in done.stderr, done.stderr
        assert "quota 16384 bytes" in done.stderr
        assert relay.log.count("is over its quota") == 1
        # A member who joins later reads the group from the relay and is told of the hole.
        bob = Member(tmp_path / "bob", "bob")
        bob.init()
        assert bob.join(alice.invite(group)) == group
        bob.sync(relay.address)
        read = bob.run("read", group)
        assert "long talk: entries before lamport time" in read.stderr, read.stderr
        assert "are no longer held by any relay you reached" in read.stderr
        assert "no longer held" not in alice.run("read", group).stderr  # alice has it all
        # A second daemon on the same data directory: refused with the first one's pid.
        with pytest.raises(AssertionError) as caught:
            stack.enter_context(Relay(relay.data_dir))
        assert "in use by another waystation daemon (pid %d)" % relay.proc.pid in str(caught.value)
        assert "database is locked" not in str(caught.value)
