"""Issue 16's six findings, each as a regression test.

All six are fixed; none is an expected failure, and no fuzz target lists one as `known`
(contract.Known stays for the next finding that someone else fixes).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from node.errors import RemoteProtocolError
from node.proto.fragment import Reassembler
from node.sync.entry import decode_entry
from node.sync.keyset import KeySet
from node.sync.reconcile import Reconciler

from .contract import KIB

ROOT = Path(__file__).resolve().parents[2]


def peak_of(call: object, *args: object) -> tuple[int, BaseException | None]:
    """Peak traced allocation of call(*args), and what it raised."""
    tracemalloc.start()
    raised: BaseException | None = None
    try:
        call(*args)  # type: ignore[operator]
    except Exception as exc:
        raised = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, raised


# -- finding 1: a member's payload nested 994 deep -------------------------------------------


def test_finding_1_deeply_nested_member_payload_is_a_remote_error() -> None:
    from node.member import logio

    with pytest.raises(RemoteProtocolError):
        logio.parse_op("[" * 994 + "]" * 994)


# -- finding 2: reconciliation bounds past 2**63 ---------------------------------------------

FINDING_2_FRAME = bytes.fromhex(
    "5701000402ffffffffffffffff7f00020000000100000000000000000000000000000000"
)


def test_finding_2_ranges_past_2_63_are_malformed() -> None:
    def key(i: int) -> tuple[int, bytes]:
        return (i, hashlib.sha256(b"r%d" % i).digest())

    relay = Reconciler([KeySet([key(i) for i in range(40)])], False)
    member = Reconciler([KeySet([key(i) for i in range(41)])], True)
    replies = [r for f in member.start() for r in relay.receive(f)]
    assert replies  # the relay answered the opening: the hostile frame comes next
    with pytest.raises(RemoteProtocolError) as caught:
        relay.receive(FINDING_2_FRAME)
    assert caught.value.reason == "malformed"


# -- finding 3: DAG-CBOR costs ~73x its size to reject ---------------------------------------


@pytest.mark.parametrize("item", [b"\xa0", b"\x80"], ids=["empty-maps", "empty-arrays"])
def test_finding_3_entry_rejection_costs_a_small_constant_times_its_size(item: bytes) -> None:
    # The block was 9a0003ff70 and 262,000 items (~73x); 65,000 items show the same.
    block = b"\x99" + (65_000).to_bytes(2, "big") + item * 65_000
    peak, raised = peak_of(decode_entry, block)
    assert isinstance(raised, RemoteProtocolError)
    assert peak <= 256 * KIB + 16 * len(block), "peak %d bytes for %d" % (peak, len(block))


# -- finding 4: header-only BLE continuations were held forever -------------------------------


def test_finding_4_header_only_continuations_end_the_link_at_once() -> None:
    reassembler = Reassembler(4096)
    with pytest.raises(RemoteProtocolError, match="carries no frame bytes") as caught:
        for i in range(1_000_000):
            reassembler.receive_fragment(bytes((0x80 if i == 0 else i & 0x3F,)), 0)
    assert caught.value.reason == "malformed" and i == 0


def test_finding_4_many_small_fragments_hold_bounded_memory() -> None:
    """One frame byte per fragment: frames of at most max_fragments, never more memory."""

    def stream() -> None:
        reassembler = Reassembler(4096)
        for i in range(100_000):  # the old code held 0.84 MB after these
            header = (0x80 if i % 200 == 0 else 0) | (0x40 if i % 200 == 199 else 0) | (i & 0x3F)
            reassembler.receive_fragment(bytes((header,)) + b"x", i / 1000)
        assert reassembler.frames == 500 and reassembler.frames_dropped == 0

    peak, raised = peak_of(stream)
    assert raised is None
    assert peak < 64 * KIB, "peak %d bytes" % peak


# -- finding 5: deeply nested TOML through the real CLI ---------------------------------------


@pytest.mark.parametrize(
    "text",
    ["x = " + "[" * 496 + "]" * 496, "x = " + "{a = " * 331 + "1" + "}" * 331],
    ids=["arrays", "inline-tables"],
)
def test_finding_5_deep_toml_is_one_config_error_line(tmp_path: Path, text: str) -> None:
    config = tmp_path / "waystation.toml"
    config.write_text(text + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "node", "run", "--config", str(config), "--data", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0] and "nested too deeply" in lines[0]
    assert result.stdout == ""


# -- finding 6: damaged member files -----------------------------------------------------------


def group_file_with_dict_device_sk() -> bytes:
    from .seeds import member_files_seeds
    from .targets import Fixtures

    group = json.loads(member_files_seeds(Fixtures())[1])
    group["device_sk"] = {}
    return json.dumps(group).encode()


@pytest.mark.parametrize(
    "content",
    [b'{"$b": 5}', b"[" * 5000 + b"]" * 5000, None],
    ids=["bytes-marker", "nested", "device-sk-dict"],
)
def test_finding_6_damaged_member_file_is_a_member_error(
    tmp_path: Path, content: bytes | None
) -> None:
    from node.member.errors import MemberError
    from node.member.group_state import GroupState
    from node.member.store_files import read_json

    from .targets import Fixtures

    path = tmp_path / "group.json"
    path.write_bytes(content if content is not None else group_file_with_dict_device_sk())
    with pytest.raises(MemberError):
        GroupState.from_dict(Fixtures().suite, read_json(path))
