"""Start-up checks of the data directory and the store (issue 9 §1): each is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.app.datadir import LOCK_FILE, claim_data_dir
from node.app.identity import NODE_KEY_FILE
from node.errors import StoreError
from node.store.sqlite import FILENAME, SQLiteStore
from tests.store_helpers import SUITE, Writer, mounted_tmpfs

HOLDER = """
import sys
from pathlib import Path
from node.app.datadir import claim_data_dir
claim = claim_data_dir(Path(sys.argv[1]))
print("claimed", flush=True)
sys.stdin.read()  # hold the claim until the test closes our stdin
"""


def test_a_second_daemon_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    first = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "claimed"
        with pytest.raises(StoreError) as caught:
            claim_data_dir(tmp_path)
        message = str(caught.value)
        assert "in use by another waystation daemon (pid %d)" % first.pid in message
        assert str(tmp_path) in message and "locked" not in message
    finally:
        assert first.stdin is not None
        first.stdin.close()
        first.wait(timeout=30)
        assert first.stdout is not None
        first.stdout.close()
    claim_data_dir(tmp_path).release()  # the lock went with the process: no stale lock


def test_the_claim_is_released_and_can_be_taken_again(tmp_path: Path) -> None:
    claim = claim_data_dir(tmp_path / "new")  # created on first start
    assert (tmp_path / "new" / LOCK_FILE).read_text().strip() == str(os.getpid())
    claim.release()
    claim = claim_data_dir(tmp_path)
    claim.release()
    claim.release()
    claim_data_dir(tmp_path).release()


def test_a_read_only_data_directory_says_so(tmp_path: Path) -> None:
    with (
        mounted_tmpfs(tmp_path / "ro", "ro,size=64k") as mount_point,
        pytest.raises(StoreError, match=r"data directory .*/ro is read-only"),
    ):
        claim_data_dir(mount_point)


def test_an_empty_store_next_to_a_node_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / NODE_KEY_FILE).write_bytes(b"k" * 32)
    (tmp_path / FILENAME).write_bytes(b"")
    with pytest.raises(StoreError, match=r"store .* is empty \(0 bytes\) but the node key"):
        claim_data_dir(tmp_path)
    (tmp_path / FILENAME).unlink()
    claim_data_dir(tmp_path).release()  # a new node: no store yet is fine


def test_quick_check_names_the_file_and_what_to_do(tmp_path: Path) -> None:
    writer = Writer(7, "log-q")
    store = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
    store.add_log(writer.log_id, writer.sign_pub)
    store.put_entries([writer.entry(t, payload="p" * 3000) for t in range(1, 60)], 100)
    store.commit()
    store.quick_check()  # a sound file passes
    store.close()
    path = tmp_path / FILENAME
    raw = bytearray(path.read_bytes())
    for offset in range(4096 * 3, len(raw), 4096):  # break the page headers of every B-tree page
        raw[offset : offset + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError) as caught:
        damaged = SQLiteStore.open_in(tmp_path, SUITE.ed25519_verify)
        try:
            damaged.quick_check()
        finally:
            damaged.close()
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert "damaged; stop the daemon, move the file aside" in message, message
