"""tools/flash.py against real files, real loop devices and real compressors.

Images are made here the way the real one is (sfdisk, a FAT boot partition by mkfs.vfat, a data
partition of random bytes), compressed with the real xz/gzip/zstd programs, and written to sparse
files and to loop devices (as root). The system-disk refusal runs against the disk that really
holds `/`, without --yes and with stdin closed, so even a broken check could not write it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLASH = ROOT / "tools" / "flash.py"
MIB = 1024 * 1024
IMAGE_SIZE = 8 * MIB

spec = importlib.util.spec_from_file_location("flash", FLASH)
assert spec is not None and spec.loader is not None
flash = importlib.util.module_from_spec(spec)
sys.modules["flash"] = flash
spec.loader.exec_module(flash)


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        message = "missing programs: %s (tools/debian-packages.txt)" % ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def need_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("loop-device tests need root, and CI runs as root")
        pytest.skip("loop-device tests need root")


def make_image(path: Path, seed: int = 7) -> bytes:
    """An 8 MiB MBR image: FAT boot partition (1-5 MiB), data partition of random bytes."""
    need("sfdisk", "mkfs.vfat")
    with path.open("wb") as f:
        f.truncate(IMAGE_SIZE)
    layout = "label: dos\nstart=2048, size=8192, type=c\nstart=10240, type=83\n"
    subprocess.run(["sfdisk", "-q", str(path)], input=layout, text=True, check=True)
    subprocess.run(
        ["mkfs.vfat", "-n", "BOOT", "--offset", "2048", str(path), str(8192 // 2)],
        check=True, capture_output=True,
    )  # fmt: skip
    rng = random.Random(seed)
    with path.open("r+b") as f:
        f.seek(5 * MIB + MIB // 2)
        f.write(rng.randbytes(MIB))  # data, with holes of zeros around it (for the bmap)
    return path.read_bytes()


def compress(path: Path, how: str) -> Path:
    need(how)
    suffix = {"xz": ".xz", "gzip": ".gz", "zstd": ".zst"}[how]
    subprocess.run([how, "-k", "-q", "-f", str(path)], check=True)
    return path.with_name(path.name + suffix)


def run_flash(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FLASH), *args],
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def sparse(path: Path, size: int, fill: bytes = b"") -> Path:
    with path.open("wb") as f:
        if fill:
            f.write(fill * (size // len(fill)))
        f.truncate(size)
    return path


@contextlib.contextmanager
def loop_device(backing: Path, partitions: bool = False) -> Iterator[str]:
    need_root()
    need("losetup")
    args = ["losetup", "-f", "--show"] + (["-P"] if partitions else []) + [str(backing)]
    try:
        dev = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except subprocess.CalledProcessError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip("no loop device: %s" % exc.stderr)
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "waystation-test.img"
    return path, make_image(path)


@pytest.mark.parametrize("how", ["raw", "xz", "gzip", "zstd"])
def test_writes_and_verifies_every_format_to_a_file(
    tmp_path: Path, image: tuple[Path, bytes], how: str
) -> None:
    path, data = image
    source = path if how == "raw" else compress(path, how)
    target = sparse(tmp_path / "card", 16 * MIB, b"\xa5")
    result = run_flash(str(source), str(target), "--yes", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "written and verified" in result.stdout
    assert target.read_bytes()[:IMAGE_SIZE] == data
    assert target.stat().st_size == 16 * MIB  # nothing beyond the image touched


def test_block_map_writes_only_mapped_ranges_and_checks_them(
    tmp_path: Path, image: tuple[Path, bytes]
) -> None:
    need("bmaptool")
    path, data = image
    bmap = path.with_name(path.name + ".bmap")
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(path)], check=True)
    source = compress(path, "xz")
    target = sparse(tmp_path / "card", 16 * MIB, b"\xa5")
    result = run_flash(str(source), str(target), "--yes", "--quiet")
    assert result.returncode == 0, result.stderr
    written = target.read_bytes()
    parsed = flash.read_bmap(bmap)
    assert parsed.mapped_bytes < IMAGE_SIZE  # the holes were skipped...
    for start, end, _ in parsed.ranges:
        assert written[start:end] == data[start:end]
    hole = next(  # ...and a hole keeps the card's old bytes
        (s for s in range(0, IMAGE_SIZE, 4096)
         if not any(a <= s < b for a, b, _ in parsed.ranges)),
        None,
    )  # fmt: skip
    assert hole is not None and written[hole : hole + 4096] == b"\xa5" * 4096
    # A block map that does not belong to the image is caught by its hashes.
    other = tmp_path / "other.img"
    make_image(other, seed=8)
    shutil.copy(bmap, other.with_name(other.name + ".bmap"))
    target2 = sparse(tmp_path / "card2", 16 * MIB)
    bad = run_flash(str(other), str(target2), "--yes", "--quiet")
    assert bad.returncode == 1 and "block map" in bad.stderr


def test_published_sha256_is_checked(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, _ = image
    source = compress(path, "xz")
    sha = source.with_name(source.name + ".sha256")
    digest = subprocess.run(["sha256sum", str(source)], capture_output=True, text=True, check=True)
    sha.write_text(digest.stdout)
    target = sparse(tmp_path / "card", 16 * MIB)
    assert run_flash(str(source), str(target), "--yes", "--quiet").returncode == 0
    sha.write_text("0" * 64 + "  " + source.name + "\n")
    bad = run_flash(str(source), str(target), "--yes", "--quiet")
    assert bad.returncode == 1 and "damaged or not this image" in bad.stderr


def test_truncated_xz_fails_and_never_writes_the_partition_table(
    tmp_path: Path, image: tuple[Path, bytes]
) -> None:
    path, _ = image
    source = compress(path, "xz")
    data = source.read_bytes()
    truncated = tmp_path / "truncated.img.xz"
    truncated.write_bytes(data[: len(data) // 2])
    target = sparse(tmp_path / "card", 16 * MIB)
    result = run_flash(str(truncated), str(target), "--yes", "--quiet")
    assert result.returncode == 1
    assert "corrupt or truncated" in result.stderr
    assert target.read_bytes()[510:512] != b"\x55\xaa"  # no MBR: not a bootable-looking card


def test_corrupt_xz_stream_fails(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, _ = image
    source = compress(path, "xz")
    data = bytearray(source.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    corrupt = tmp_path / "corrupt.img.xz"
    corrupt.write_bytes(bytes(data))
    target = sparse(tmp_path / "card", 16 * MIB)
    result = run_flash(str(corrupt), str(target), "--yes", "--quiet")
    assert result.returncode == 1
    assert "corrupt or truncated" in result.stderr
    assert "Traceback" not in result.stderr


def test_loop_device_written_and_verified(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, data = image
    source = compress(path, "xz")
    backing = sparse(tmp_path / "card", 16 * MIB, b"\x11")
    with loop_device(backing) as dev:
        result = run_flash(str(source), dev, "--yes", "--quiet")
        assert result.returncode == 0, result.stderr
    assert backing.read_bytes()[:IMAGE_SIZE] == data


def test_too_small_device_is_refused_before_writing(
    tmp_path: Path, image: tuple[Path, bytes]
) -> None:
    path, _ = image
    for source in (path, compress(path, "xz")):  # size known from the file and from xz's index
        backing = sparse(tmp_path / "small", 4 * MIB, b"\x22")
        with loop_device(backing) as dev:
            result = run_flash(str(source), dev, "--yes", "--quiet")
        assert result.returncode == 2
        assert "smaller than the image" in result.stderr
        assert backing.read_bytes() == b"\x22" * (4 * MIB)


def test_too_small_device_found_while_streaming(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    """A gzip image's size is unknown until its end: the write stops at the device's end."""
    path, _ = image
    source = compress(path, "gzip")
    backing = sparse(tmp_path / "small", 4 * MIB)
    with loop_device(backing) as dev:
        result = run_flash(str(source), dev, "--yes", "--quiet")
    assert result.returncode == 1
    assert "larger than" in result.stderr


def root_disk() -> str | None:
    for disk in flash.list_disks():
        if "/" in disk.mountpoints:
            return str(disk.path)
    return None


def test_the_disk_holding_root_is_refused(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, _ = image
    disk = root_disk()
    if disk is None:
        pytest.skip("no block device holds / here (an overlay root?); the recorded case covers it")
    # No --yes and stdin closed: even if the check were broken, the confirmation would refuse.
    result = run_flash(str(path), disk)
    assert result.returncode == 2
    assert "system disk" in result.stderr, result.stderr


def test_system_disk_refused_in_a_recorded_lsblk(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    """The same rule on a loop device that a recorded lsblk output says holds `/`."""
    path, _ = image
    backing = sparse(tmp_path / "card", 16 * MIB, b"\x33")
    with loop_device(backing) as dev:
        recorded = {
            "blockdevices": [
                {"name": dev, "type": "loop", "tran": None, "rm": False, "hotplug": False,
                 "ro": False, "size": 16 * MIB, "model": None, "mountpoints": [None],
                 "children": [{"name": dev + "p2", "type": "part", "mountpoints": ["/"]}]},
            ]
        }  # fmt: skip
        lsblk = tmp_path / "lsblk.json"
        lsblk.write_text(json.dumps(recorded))
        result = run_flash(str(path), dev, "--yes", "--lsblk-json", str(lsblk))
    assert result.returncode == 2 and "system disk" in result.stderr
    assert backing.read_bytes() == b"\x33" * (16 * MIB)


def test_mounted_card_is_refused_unless_unmount(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    """A card with a file system mounted (here the whole device: this kernel makes no partition
    nodes for loop devices) is refused; --unmount unmounts it and writes."""
    path, data = image
    need("mount", "umount", "mkfs.ext4")
    backing = sparse(tmp_path / "card", 16 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(backing)], check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(backing) as dev:
        subprocess.run(["mount", dev, str(mnt)], check=True)
        try:
            refused = run_flash(str(path), dev, "--yes", "--quiet")
            assert refused.returncode == 2 and "is mounted" in refused.stderr, refused.stderr
            assert str(mnt) in refused.stderr
            result = run_flash(str(path), dev, "--yes", "--quiet", "--unmount")
            assert result.returncode == 0, result.stderr
        finally:
            subprocess.run(["umount", str(mnt)], check=False, capture_output=True)
    assert backing.read_bytes()[:IMAGE_SIZE] == data


def test_non_removable_disk_needs_force(tmp_path: Path) -> None:
    disks = flash.parse_lsblk(
        {"blockdevices": [
            {"name": "/dev/nvme0n1", "type": "disk", "tran": "nvme", "rm": False,
             "hotplug": False, "ro": False, "size": 512 * 10**9, "model": "Fast SSD",
             "mountpoints": [None], "children": [{"name": "/dev/nvme0n1p1", "type": "part",
                                                  "mountpoints": ["/data"]}]},
            {"name": "/dev/mmcblk0", "type": "disk", "tran": None, "rm": False, "hotplug": False,
             "ro": False, "size": 32 * 10**9, "model": None, "mountpoints": [None]},
            {"name": "/dev/sdb", "type": "disk", "tran": "usb", "rm": True, "hotplug": True,
             "ro": True, "size": 16 * 10**9, "model": "Card Reader", "mountpoints": [None]},
        ]}
    )  # fmt: skip
    nvme, mmc, locked = disks
    image = tmp_path / "x.img"
    image.write_bytes(b"")
    with pytest.raises(flash.RefusedError, match="not a removable disk"):
        flash.check_target(nvme, image, MIB, disks, force_non_removable=False)
    assert nvme.mountpoints == ["/data"]
    assert mmc.removable  # SD cards in internal readers report rm=0
    flash.check_target(mmc, image, MIB, disks, force_non_removable=False)
    with pytest.raises(flash.RefusedError, match="read-only"):
        flash.check_target(locked, image, MIB, disks, force_non_removable=False)


def test_partition_instead_of_disk_is_refused(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    """A partition is refused in favour of its disk (lsblk recorded: this kernel makes no
    partition nodes for loop devices, so a second loop device stands for the partition)."""
    path, _ = image
    with (
        loop_device(sparse(tmp_path / "disk", 16 * MIB)) as disk,
        loop_device(sparse(tmp_path / "part", 8 * MIB, b"\x44")) as part,
    ):
        lsblk = tmp_path / "lsblk.json"
        lsblk.write_text(json.dumps({"blockdevices": [
            {"name": disk, "type": "loop", "rm": False, "hotplug": False, "ro": False,
             "size": 16 * MIB, "mountpoints": [None],
             "children": [{"name": part, "type": "part", "mountpoints": [None]}]},
        ]}))  # fmt: skip
        result = run_flash(str(path), part, "--yes", "--quiet", "--lsblk-json", str(lsblk))
    assert result.returncode == 2 and "give the whole disk" in result.stderr
    assert (tmp_path / "part").read_bytes() == b"\x44" * (8 * MIB)


def test_confirmation_must_name_the_device(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, data = image
    target = sparse(tmp_path / "card", 16 * MIB)
    wrong = run_flash(str(path), str(target), "--quiet", stdin="/dev/sdz\n")
    assert wrong.returncode == 2 and "not confirmed" in wrong.stderr
    assert target.read_bytes() == bytes(16 * MIB)
    closed = run_flash(str(path), str(target), "--quiet")
    assert closed.returncode == 2 and "no confirmation" in closed.stderr
    right = run_flash(str(path), str(target), "--quiet", stdin=str(target) + "\n")
    assert right.returncode == 0, right.stderr
    assert target.read_bytes()[:IMAGE_SIZE] == data


def test_config_is_validated_first_and_copied_to_the_boot_partition(
    tmp_path: Path, image: tuple[Path, bytes]
) -> None:
    need("mcopy", "mtype")
    path, _ = image
    good = tmp_path / "waystation.toml"
    good.write_text('[node]\nname = "kitchen"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text("[store]\nmax_entry_bytes = -1\n")
    target = sparse(tmp_path / "card", 16 * MIB)
    refused = run_flash(str(path), str(target), "--yes", "--quiet", "--config", str(bad))
    assert refused.returncode == 2 and "max_entry_bytes" in refused.stderr
    assert target.read_bytes() == bytes(16 * MIB)  # nothing written
    result = run_flash(str(path), str(target), "--yes", "--quiet", "--config", str(good))
    assert result.returncode == 0, result.stderr
    assert "waystation.toml copied" in result.stdout
    shown = subprocess.run(
        ["mtype", "-i", "%s@@%d" % (target, MIB), "::waystation.toml"],
        capture_output=True, text=True, check=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"),
    )  # fmt: skip
    assert shown.stdout == good.read_text()


def test_verification_names_the_first_differing_offset(
    tmp_path: Path, image: tuple[Path, bytes]
) -> None:
    """What a fake-capacity card does (a write that does not read back), on a real file."""
    path, _ = image
    target = sparse(tmp_path / "card", 16 * MIB)
    disk = flash.Disk(str(target), 16 * MIB, kind="file", removable=True)
    fd = os.open(target, os.O_RDWR)
    try:
        with path.open("rb") as stream:
            progress = flash.Progress("w", None, as_json=False, quiet=True)
            written = flash.write_image(fd, str(target), stream, None, None, progress)
        os.pwrite(fd, b"\x00\x01", 6 * MIB + 3)  # the card "forgot" two bytes
        with pytest.raises(flash.FlashError, match=r"from byte 4194304.*fake-capacity"):
            flash.verify(fd, disk, written, None, progress)
    finally:
        os.close(fd)


def test_listing_without_device_shows_only_candidates(
    tmp_path: Path, image: tuple[Path, bytes]
) -> None:
    path, _ = image
    recorded = tmp_path / "lsblk.json"
    recorded.write_text(json.dumps({"blockdevices": [
        {"name": "/dev/sda", "type": "disk", "tran": "sata", "rm": False, "hotplug": False,
         "ro": False, "size": 10**12, "model": "System SSD", "mountpoints": ["/"]},
        {"name": "/dev/sdb", "type": "disk", "tran": "usb", "rm": True, "hotplug": True,
         "ro": False, "size": 32 * 10**9, "model": "SD Reader", "mountpoints": [None]},
    ]}))  # fmt: skip
    result = run_flash(str(path), "--lsblk-json", str(recorded))
    assert result.returncode == 0
    assert "/dev/sdb" in result.stdout and "SD Reader" in result.stdout
    assert "/dev/sda" not in result.stdout
