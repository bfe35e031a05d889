"""Entries for the store tests: real ipfs-log v2 entries signed with Ed25519 (PyNaCl)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from node.crypto._nacl import NaclSuite
from node.sync.entry import Entry, create_entry, decode_entry

SUITE = NaclSuite()


class Writer:
    """One log's writer: the group signing key, deterministic from a seed byte."""

    def __init__(self, seed: int, log_id: str) -> None:
        self.log_id = log_id
        self.sign_pub, self._secret = SUITE.ed25519_keypair(bytes([seed]) * 32)

    def sign(self, message: bytes) -> bytes:
        return SUITE.ed25519_sign(self._secret, message)

    def entry(
        self,
        time: int,
        parents: Sequence[Entry] = (),
        payload: str = "x",
        signer: Writer | None = None,
    ) -> Entry:
        """An entry of this log; signed by `signer` (default: this writer) and keyed to its key."""
        by = signer or self
        return create_entry(
            self.log_id, payload, [p.cid for p in parents], [], time, by.sign_pub, by.sign
        )


def tampered_cid(entry: Entry, other: Entry) -> Entry:
    """`entry`'s block presented under `other`'s CID."""
    return decode_entry(entry.block, other.cid)


@contextlib.contextmanager
def mounted_tmpfs(mount_point: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted (as root) at `mount_point` with mount `options` ("size=400k", "ro,...").

    Skips the test with the reason when mounting is impossible, but fails it under CI=true.
    """
    mount_point.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "waystation-store-test", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        why = "cannot mount a tmpfs (%s): these tests need root" % done.stderr.strip()
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
