#!/usr/bin/env python3
"""Write a Waystation SD-card image to a card, verify it, and optionally drop a config on it.

    sudo python3 tools/flash.py IMAGE [DEVICE] [--config waystation.toml] [--yes]

Linux only; the standard library only (`zstandard` from PyPI, or the `zstd` program, for `.zst`
images; `mtools` for `--config`).

What it does, in order (every refusal happens before the first byte is written):

1. With no DEVICE: lists the removable disks it would accept (model, size, mounted partitions)
   and exits. It never picks a disk by itself.
2. Refuses the disk that holds `/`, `/boot`, `/usr` or swap, the disk that holds the image file,
   a disk with mounted partitions (unless `--unmount`, which unmounts them), a non-removable disk
   (unless `--force-non-removable`), a read-only one, and one smaller than the image. Loop devices
   and plain files (tests, or writing an image into a file) count as removable.
3. Asks for confirmation naming the device's model and size (type the device name), unless
   `--yes`.
4. Streams the image (`.img`, `.img.xz`, `.img.gz`, `.img.zst`, recognised by magic bytes, not by
   name) without a temporary file. With `IMAGE.bmap` beside it (or `--bmap`), writes only the
   mapped ranges and checks each range's SHA-256 as it goes. The first MiB (the partition table)
   is written last, so a write that is interrupted never looks like a bootable card.
5. fsyncs, drops the device's page cache (BLKFLSBUF, posix_fadvise), reads back what was written
   and compares it chunk by chunk: a mismatch names the first differing offset (a fake-capacity or
   worn card is the usual cause; the message says so). With `IMAGE.sha256` beside it, the image is
   also checked against the published hash (of the compressed file or of the raw image).
6. `--config FILE`: validated first with the daemon's own loader (before anything is written), and
   copied after verification onto the FAT boot partition as `waystation.toml` (mtools, no mount).

Exit codes: 0 written and verified; 1 failed (I/O error, bad image, verification mismatch);
2 refused or usage error (nothing was written).
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import fcntl
import gzip
import hashlib
import itertools
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

CHUNK = 4 * 1024 * 1024  # write/verify unit; one SHA-256 per chunk for the first-mismatch offset
HEAD = 1024 * 1024  # the first MiB (MBR and the gap before partition 1): written last
BLKFLSBUF = 0x1261  # <linux/fs.h>: flush the block device's buffer cache
BLKGETSIZE64 = 0x80081272
SYSTEM_MOUNTS = ("/", "/boot", "/boot/firmware", "/usr", "/var", "/home", "[SWAP]")
LARGE_DISK = 128 * 10**9  # above this a removable disk gets a warning (an external drive?)
CONFIG_NAME = "waystation.toml"


class RefusedError(Exception):
    """A safety rule refused the operation; nothing was written (exit 2)."""


class FlashError(Exception):
    """The write or its verification failed (exit 1)."""


# -- disks ----------------------------------------------------------------------------------


@dataclass
class Disk:
    """A whole disk as lsblk reports it (or a plain file standing for one)."""

    path: str
    size: int
    model: str = ""
    kind: str = "disk"  # disk, loop, file
    removable: bool = False
    read_only: bool = False
    transport: str = ""
    mountpoints: list[str] = field(default_factory=list)  # of the disk and its partitions
    partitions: list[str] = field(default_factory=list)

    def describe(self) -> str:
        model = self.model or {"loop": "loop device", "file": "file"}.get(self.kind, "disk")
        return "%s (%s, %s)" % (self.path, model, human(self.size))


def human(size: float) -> str:
    """Bytes in a short human form (1000-based, as card makers count)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (size, unit)
        size /= 1000
    raise AssertionError("unreachable")


def parse_lsblk(data: dict[str, object]) -> list[Disk]:
    """Disks from `lsblk -J -b -p -o NAME,TYPE,TRAN,RM,HOTPLUG,RO,SIZE,MODEL,MOUNTPOINTS`."""
    disks: list[Disk] = []
    devices = data.get("blockdevices")
    if not isinstance(devices, list):
        raise FlashError("lsblk printed no blockdevices list")
    for dev in devices:
        if not isinstance(dev, dict) or dev.get("type") not in ("disk", "loop"):
            continue
        name = str(dev.get("name") or "")
        disk = Disk(
            path=name,
            size=int(dev.get("size") or 0),
            model=str(dev.get("model") or "").strip(),
            kind=str(dev.get("type")),
            read_only=bool(dev.get("ro")),
            transport=str(dev.get("tran") or ""),
        )
        base = os.path.basename(name)
        disk.removable = bool(
            dev.get("rm")
            or dev.get("hotplug")
            or disk.transport in ("usb", "mmc")
            or base.startswith("mmcblk")
            or disk.kind == "loop"
        )
        stack = [dev]
        while stack:
            node = stack.pop()
            mounts = node.get("mountpoints") or []
            if isinstance(mounts, list):
                disk.mountpoints.extend(str(m) for m in mounts if m)
            children = node.get("children") or []
            if isinstance(children, list):
                for child in children:
                    if isinstance(child, dict):
                        disk.partitions.append(str(child.get("name") or ""))
                        stack.append(child)
        disks.append(disk)
    return disks


def list_disks(lsblk_json: str | None = None) -> list[Disk]:
    """Every disk and loop device on this machine (from lsblk, or a recorded lsblk output)."""
    if lsblk_json is not None:
        text = Path(lsblk_json).read_text()
    else:
        try:
            text = subprocess.run(
                ["lsblk", "-J", "-b", "-p", "-o",
                 "NAME,TYPE,TRAN,RM,HOTPLUG,RO,SIZE,MODEL,MOUNTPOINTS"],
                capture_output=True, text=True, check=True, timeout=10,
            ).stdout  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            raise FlashError("cannot list disks with lsblk: %s" % exc) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FlashError("lsblk printed something that is not JSON: %s" % exc) from exc
    if not isinstance(data, dict):
        raise FlashError("lsblk printed no JSON object")
    return parse_lsblk(data)


def disk_of_file(path: Path, disks: list[Disk]) -> Disk | None:
    """The disk whose partition is mounted where `path` lives (longest mountpoint wins)."""
    best: tuple[int, Disk] | None = None
    real = str(path.resolve())
    for disk in disks:
        for mount in disk.mountpoints:
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if mount.startswith("/") and inside and (best is None or len(mount) > best[0]):
                best = (len(mount), disk)
    return best[1] if best else None


def target_disk(device: str, disks: list[Disk]) -> Disk:
    """The Disk for DEVICE: a whole disk or loop device from lsblk, or a plain file."""
    path = Path(device)
    try:
        mode = os.stat(device).st_mode
    except OSError as exc:
        raise RefusedError("%s: %s" % (device, exc.strerror)) from exc
    if stat.S_ISREG(mode):
        return Disk(str(path), path.stat().st_size, kind="file", removable=True)
    if not stat.S_ISBLK(mode):
        raise RefusedError("%s is neither a block device nor a file" % device)
    real = os.path.realpath(device)
    for disk in disks:
        if os.path.realpath(disk.path) == real:
            return disk
        if real in (os.path.realpath(p) for p in disk.partitions):
            raise RefusedError("%s is a partition of %s: give the whole disk" % (device, disk.path))
    raise RefusedError("%s is not a disk lsblk knows" % device)


def check_target(
    disk: Disk, image: Path, image_size: int, disks: list[Disk], force_non_removable: bool
) -> list[str]:
    """Refuse what must never be written; returns warnings for what only deserves one."""
    system = [m for m in disk.mountpoints if m in SYSTEM_MOUNTS]
    if system:
        raise RefusedError(
            "%s holds %s: this is the system disk; refusing to write it"
            % (disk.describe(), ", ".join(system))
        )
    holder = disk_of_file(image, disks)
    if holder is not None and holder.path == disk.path:
        raise RefusedError("%s holds the image file %s" % (disk.describe(), image))
    if disk.read_only:
        raise RefusedError("%s is read-only (is the card's lock switch on?)" % disk.describe())
    if not disk.removable and not force_non_removable:
        raise RefusedError(
            "%s is not a removable disk; if you are sure, add --force-non-removable"
            % disk.describe()
        )
    if disk.kind != "file" and disk.size < image_size:
        raise RefusedError(
            "%s is smaller than the image (%s)" % (disk.describe(), human(image_size))
        )
    warnings = []
    if disk.size > LARGE_DISK and disk.kind != "file":
        warnings.append("%s is larger than most SD cards: is it really the card?" % disk.describe())
    return warnings


def unmount_all(disk: Disk) -> None:
    """Unmount every mounted partition of `disk`."""
    for mount in sorted(set(disk.mountpoints), key=len, reverse=True):
        result = subprocess.run(["umount", mount], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RefusedError("cannot unmount %s: %s" % (mount, result.stderr.strip()))
    disk.mountpoints.clear()


# -- images ---------------------------------------------------------------------------------


def open_image(path: Path) -> tuple[BinaryIO, BinaryIO, str]:
    """(raw file, decompressed stream, format name); the format comes from the magic bytes."""
    raw = path.open("rb")
    magic = raw.read(6)
    raw.seek(0)
    stream: BinaryIO
    # The streams are closed by the caller (run()), with the raw file.
    if magic.startswith(b"\xfd7zXZ\x00"):
        stream, name = cast(BinaryIO, lzma.LZMAFile(raw)), "xz"  # noqa: SIM115
    elif magic.startswith(b"\x1f\x8b"):
        stream, name = cast(BinaryIO, gzip.GzipFile(fileobj=raw)), "gzip"
    elif magic.startswith(b"BZh"):
        stream, name = cast(BinaryIO, bz2.BZ2File(raw)), "bzip2"
    elif magic.startswith(b"\x28\xb5\x2f\xfd"):
        stream, name = _zstd_stream(raw, path), "zstd"
    else:
        stream, name = raw, "raw"
    return raw, stream, name


def _zstd_stream(raw: BinaryIO, path: Path) -> BinaryIO:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        if shutil.which("zstd") is None:
            raise RefusedError(
                "a .zst image needs the zstandard Python package or the zstd program"
            ) from None
        proc = subprocess.Popen(
            ["zstd", "-dcq", "--", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None
        return cast(BinaryIO, _ProcessStream(proc))
    return zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[no-any-return]


class _ProcessStream:
    """A decompressing child's stdout; a non-zero exit at the end is a corrupt stream."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    def read(self, size: int = -1) -> bytes:
        assert self._proc.stdout is not None
        data = self._proc.stdout.read(size)
        if not data and self._proc.wait() != 0:
            err = self._proc.stderr
            detail = err.read().decode(errors="replace").strip() if err else ""
            raise FlashError("the image is corrupt or truncated (zstd: %s)" % detail)
        return data

    def close(self) -> None:
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        with contextlib.suppress(OSError):
            self._proc.kill()
        self._proc.wait()


@dataclass
class BlockMap:
    """A bmaptool block map: which ranges of the image hold data, with their hashes."""

    image_size: int
    block_size: int
    ranges: list[tuple[int, int, str]]  # (first byte, end byte, sha256 hex or "")

    @property
    def mapped_bytes(self) -> int:
        return sum(end - start for start, end, _ in self.ranges)


def read_bmap(path: Path) -> BlockMap:
    """Parse a .bmap file (format 1.x/2.x, SHA-256 or no checksums)."""
    try:
        root = ET.parse(path).getroot()
        image_size = int((root.findtext("ImageSize") or "").strip())
        block_size = int((root.findtext("BlockSize") or "").strip())
        checksum_type = (root.findtext("ChecksumType") or "").strip().lower()
        ranges = []
        for node in root.iter("Range"):
            text = (node.text or "").strip()
            first, _, last = text.partition("-")
            start = int(first) * block_size
            end = min((int(last or first) + 1) * block_size, image_size)
            digest = node.get("chksum", "") if checksum_type == "sha256" else ""
            ranges.append((start, end, digest))
    except (ET.ParseError, ValueError, OSError) as exc:
        raise RefusedError("%s is not a usable block map: %s" % (path, exc)) from exc
    if block_size <= 0 or image_size <= 0:
        raise RefusedError("%s: block size and image size must be positive" % path)
    ranges.sort()
    for (_, end, _), (start, _, _) in itertools.pairwise(ranges):
        if start < end:
            raise RefusedError("%s: ranges overlap" % path)
    return BlockMap(image_size, block_size, ranges)


def read_sha256_file(path: Path) -> str:
    """The hex digest in a `sha256sum`-style file."""
    word = path.read_text().split()[0] if path.read_text().split() else ""
    if len(word) != 64 or any(c not in "0123456789abcdefABCDEF" for c in word):
        raise RefusedError("%s holds no SHA-256 digest" % path)
    return word.lower()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def image_size_of(path: Path, stream_format: str, bmap: BlockMap | None) -> int | None:
    """The raw image size, when it can be known before writing."""
    if bmap is not None:
        return bmap.image_size
    if stream_format == "raw":
        return path.stat().st_size
    if stream_format == "xz":
        with contextlib.suppress(lzma.LZMAError, OSError):
            return _xz_uncompressed_size(path)
    return None


def _xz_uncompressed_size(path: Path) -> int | None:
    """Read the xz index for the uncompressed size (single-stream files)."""
    with path.open("rb") as f:
        f.seek(-12, os.SEEK_END)
        footer = f.read(12)
        if footer[-2:] != b"YZ":
            return None
        backward = (int.from_bytes(footer[4:8], "little") + 1) * 4
        f.seek(-12 - backward, os.SEEK_END)
        index = f.read(backward)
    if not index or index[0] != 0:
        return None
    pos = 1
    count, pos = _xz_varint(index, pos)
    total = 0
    for _ in range(count):
        _unpadded, pos = _xz_varint(index, pos)
        size, pos = _xz_varint(index, pos)
        total += size
    return total


def _xz_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 63:
            raise ValueError("xz varint too long")


# -- writing --------------------------------------------------------------------------------


class Progress:
    """Bytes, rate and ETA on stderr (or JSON lines with --json), at most a few times a second."""

    def __init__(self, what: str, total: int | None, as_json: bool, quiet: bool) -> None:
        self.what, self.total, self.as_json, self.quiet = what, total, as_json, quiet
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not final and now - self.last < 0.5):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        eta = (self.total - done) / rate if self.total and rate > 0 else None
        if self.as_json:
            print(json.dumps({"stage": self.what, "bytes": done, "total": self.total,
                              "rate": round(rate), "eta_s": eta and round(eta, 1)}),
                  file=sys.stderr, flush=True)  # fmt: skip
            return
        share = " %5.1f%%" % (100 * done / self.total) if self.total else ""
        tail = " ETA %ds" % eta if eta is not None and not final else ""
        end = "\n" if final else "\r"
        print("\r%s%s %s at %s/s%s   " % (self.what, share, human(done), human(rate), tail),
              end=end, file=sys.stderr, flush=True)  # fmt: skip


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes (short only at the stream's end); decoding errors become FlashError."""
    parts = []
    want = size
    while want:
        try:
            data = stream.read(want)
        except (lzma.LZMAError, OSError, EOFError, gzip.BadGzipFile) as exc:
            raise FlashError(
                "the image is corrupt or truncated: %s" % (str(exc) or type(exc).__name__)
            ) from exc
        if not data:
            break
        parts.append(data)
        want -= len(data)
    return b"".join(parts)


def open_target(disk: Disk) -> int:
    """Open for writing: O_EXCL on block devices keeps the kernel from mounting partitions."""
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    if disk.kind != "file":
        flags |= os.O_EXCL
    try:
        return os.open(disk.path, flags)
    except OSError as exc:
        if exc.errno == 16:  # EBUSY
            raise RefusedError("%s is busy (mounted or in use)" % disk.path) from exc
        raise FlashError("cannot open %s: %s" % (disk.path, exc.strerror)) from exc


def pwrite_all(fd: int, data: bytes, offset: int, device: str) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.pwrite(fd, view, offset)
        except OSError as exc:
            raise FlashError(
                "write to %s failed at byte %d: %s" % (device, offset, exc.strerror)
            ) from exc
        if written == 0:
            raise FlashError(
                "write to %s made no progress at byte %d (device full?)" % (device, offset)
            )
        view = view[written:]
        offset += written


@dataclass
class Written:
    """What went onto the device: its length, per-piece hashes, and the raw image's hash."""

    size: int = 0
    chunks: list[tuple[int, int, bytes]] = field(default_factory=list)  # (offset, length, sha256)
    head: list[tuple[int, bytes]] = field(default_factory=list)  # first-MiB pieces, written last
    raw_sha256: str = ""


def write_image(
    fd: int,
    device: str,
    stream: BinaryIO,
    bmap: BlockMap | None,
    max_size: int | None,
    progress: Progress,
) -> Written:
    """Stream the image onto `fd`, the first MiB last; returns what to verify."""
    whole = hashlib.sha256()
    written = Written()
    ranges = bmap.ranges if bmap else None
    range_index = 0
    offset = 0
    while True:
        data = read_exactly(stream, CHUNK)
        if not data:
            break
        if max_size is not None and offset + len(data) > max_size:
            raise FlashError(
                "the image is larger than %s (%s): stopped before its end"
                % (device, human(max_size))
            )
        whole.update(data)
        if ranges is None:
            _write_piece(fd, device, data, offset, written)
        else:  # only the mapped parts of this chunk
            while range_index < len(ranges) and ranges[range_index][1] <= offset:
                range_index += 1
            index = range_index
            while index < len(ranges) and ranges[index][0] < offset + len(data):
                start, end, _ = ranges[index]
                lo, hi = max(start, offset), min(end, offset + len(data))
                _write_piece(fd, device, data[lo - offset : hi - offset], lo, written)
                index += 1
        offset += len(data)
        progress.update(offset)
    if bmap is not None and offset != bmap.image_size:
        raise FlashError(
            "the image is %d bytes but its block map says %d: truncated or the wrong .bmap"
            % (offset, bmap.image_size)
        )
    # The partition table goes on last: an interrupted write never looks like a bootable card.
    for start, piece in written.head:
        pwrite_all(fd, piece, start, device)
    progress.update(offset, final=True)
    written.size = offset
    written.raw_sha256 = whole.hexdigest()
    return written


def _write_piece(fd: int, device: str, data: bytes, offset: int, written: Written) -> None:
    """Write `data` at `offset`; what falls in the first MiB is zeroed now and written last."""
    if not data:
        return
    written.chunks.append((offset, len(data), hashlib.sha256(data).digest()))
    if offset < HEAD:
        cut = min(len(data), HEAD - offset)
        written.head.append((offset, data[:cut]))
        pwrite_all(fd, bytes(cut), offset, device)
        data, offset = data[cut:], offset + cut
    if data:
        pwrite_all(fd, data, offset, device)


def flush_device(fd: int, disk: Disk) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise FlashError("fsync of %s failed: %s" % (disk.path, exc.strerror)) from exc
    if disk.kind != "file":
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, BLKFLSBUF, 0)
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def verify(
    fd: int, disk: Disk, written: Written, bmap: BlockMap | None, progress: Progress
) -> None:
    """Read back every written piece and compare; name the first differing offset."""
    done = 0
    for offset, length, digest in sorted(written.chunks):
        try:
            data = os.pread(fd, length, offset)
        except OSError as exc:
            raise FlashError(
                "reading %s back failed at byte %d: %s" % (disk.path, offset, exc.strerror)
            ) from exc
        if len(data) != length or hashlib.sha256(data).digest() != digest:
            raise FlashError(
                "verification failed: %s differs from the image in the %s from byte %d. "
                "A fake-capacity or worn-out card, or a bad reader, is the usual cause: try "
                "another card or reader (a capacity test such as f3 or H2testw tells)."
                % (disk.path, human(length), offset)
            )
        done += length
        progress.update(done)
    if bmap is not None:
        for start, end, hex_digest in bmap.ranges:
            if not hex_digest:
                continue
            data = os.pread(fd, end - start, start)
            if hashlib.sha256(data).hexdigest() != hex_digest.lower():
                raise FlashError(
                    "the image does not match its block map at bytes %d-%d: wrong or damaged "
                    ".bmap, or a damaged image" % (start, end)
                )
    progress.update(done, final=True)


# -- the boot partition ---------------------------------------------------------------------


def first_fat_partition(fd: int) -> int:
    """Byte offset of the first FAT partition in the MBR at the start of the device."""
    mbr = os.pread(fd, 512, 0)
    if len(mbr) != 512 or mbr[510:512] != b"\x55\xaa":
        raise FlashError("the written image has no MBR partition table")
    for slot in range(4):
        entry = mbr[446 + 16 * slot : 446 + 16 * (slot + 1)]
        if entry[4] in (0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E):
            return int.from_bytes(entry[8:12], "little") * 512
    raise FlashError("the written image has no FAT boot partition")


def validate_config(path: Path) -> None:
    """Check `path` with the daemon's own configuration loader (from this repository)."""
    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    try:
        from node.app.config import load_config
        from node.errors import ConfigError
    except ImportError as exc:
        raise RefusedError(
            "--config needs Waystation's configuration loader (run flash.py from a checkout or "
            "an install of waystation): %s" % exc
        ) from exc
    finally:
        sys.path.remove(str(repo))
    try:
        load_config(path)
    except ConfigError as exc:
        raise RefusedError("%s is not a valid configuration: %s" % (path, exc)) from exc
    except OSError as exc:
        raise RefusedError("cannot read %s: %s" % (path, exc.strerror)) from exc


def copy_config(disk: Disk, fd: int, config: Path) -> None:
    """Copy `config` onto the FAT boot partition as waystation.toml (mtools; no mount)."""
    offset = first_fat_partition(fd)
    if shutil.which("mcopy") is None:
        raise FlashError("--config needs mtools (apt install mtools)")
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    result = subprocess.run(
        ["mcopy", "-o", "-i", "%s@@%d" % (disk.path, offset), str(config), "::" + CONFIG_NAME],
        capture_output=True, text=True, check=False, env=env, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise FlashError(
            "writing %s to the boot partition failed: %s" % (CONFIG_NAME, result.stderr)
        )
    check = subprocess.run(
        ["mtype", "-i", "%s@@%d" % (disk.path, offset), "::" + CONFIG_NAME],
        capture_output=True, check=False, env=env, timeout=60,
    )  # fmt: skip
    if check.returncode != 0 or check.stdout != config.read_bytes():
        raise FlashError("%s on the boot partition does not read back as written" % CONFIG_NAME)


# -- the command ----------------------------------------------------------------------------


def confirm(disk: Disk, ask: Callable[[str], str]) -> None:
    prompt = "Everything on %s will be erased.\nType the device name (%s) to go on: " % (
        disk.describe(),
        disk.path,
    )
    try:
        answer = ask(prompt)
    except EOFError:
        raise RefusedError("no confirmation (stdin closed); add --yes to skip it") from None
    if answer.strip() not in (disk.path, os.path.basename(disk.path)):
        raise RefusedError("not confirmed; nothing was written")


def print_candidates(disks: list[Disk], image: Path) -> None:
    holder = disk_of_file(image, disks)
    rows = [
        d
        for d in disks
        if d.removable and d.kind == "disk" and d.size > 0
        and not any(m in SYSTEM_MOUNTS for m in d.mountpoints)
        and (holder is None or holder.path != d.path)
    ]  # fmt: skip
    if not rows:
        print("No removable disk found. Insert the SD card (and its reader), then run again.")
        return
    print("Removable disks (give one as DEVICE):")
    for disk in rows:
        mounted = " mounted: %s" % ", ".join(disk.mountpoints) if disk.mountpoints else ""
        print("  %-14s %-28s %10s%s" % (disk.path, disk.model or "-", human(disk.size), mounted))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flash.py",
        description="Write a Waystation image to an SD card and verify it.",
    )
    parser.add_argument("image", type=Path, help=".img, .img.xz, .img.gz or .img.zst")
    parser.add_argument("device", nargs="?", help="the card, e.g. /dev/sdb or /dev/mmcblk0")
    parser.add_argument(
        "--config", type=Path, help="a waystation.toml to put on the boot partition"
    )
    parser.add_argument("--bmap", type=Path, help="block map (default: IMAGE.bmap if present)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--unmount", action="store_true", help="unmount the card's partitions")
    parser.add_argument(
        "--force-non-removable", action="store_true", help="allow a disk that is not removable"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip reading back (not advised)")
    parser.add_argument("--json", action="store_true", help="progress as JSON lines on stderr")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--lsblk-json", help=argparse.SUPPRESS)  # tests: a recorded lsblk output
    return parser


def companion(image: Path, suffix: str) -> Path | None:
    """IMAGE.bmap / IMAGE.sha256 beside the image (also with the compression suffix removed)."""
    candidates = [image.with_name(image.name + suffix)]
    for ext in (".xz", ".gz", ".zst", ".bz2"):
        if image.name.endswith(ext):
            candidates.append(image.with_name(image.name[: -len(ext)] + suffix))
    return next((c for c in candidates if c.exists()), None)


def run(args: argparse.Namespace, ask: Callable[[str], str] = input) -> int:
    image: Path = args.image
    if not image.is_file():
        raise RefusedError("%s: no such image file" % image)
    disks = list_disks(args.lsblk_json)
    if args.device is None:
        print_candidates(disks, image)
        return 0
    if args.config is not None:
        validate_config(args.config)
    bmap_path = args.bmap or companion(image, ".bmap")
    bmap = read_bmap(bmap_path) if bmap_path else None
    sha_path = companion(image, ".sha256")
    expected = read_sha256_file(sha_path) if sha_path else None
    if expected is not None and expected == file_sha256(image):
        expected = None  # the published hash is the file's own: checked before writing
    raw, stream, fmt = open_image(image)
    try:
        size = image_size_of(image, fmt, bmap)
        disk = target_disk(args.device, disks)
        warnings = check_target(disk, image, size or 0, disks, args.force_non_removable)
        if disk.mountpoints:
            if not args.unmount:
                raise RefusedError(
                    "%s is mounted (%s); unmount it or add --unmount"
                    % (disk.describe(), ", ".join(disk.mountpoints))
                )
            unmount_all(disk)
        for warning in warnings:
            print("warning: " + warning, file=sys.stderr)
        if not args.yes:
            confirm(disk, ask)
        fd = open_target(disk)
        try:
            capacity = disk.size if disk.kind != "file" else None
            if disk.kind != "file":
                with contextlib.suppress(OSError):
                    capacity = int.from_bytes(
                        fcntl.ioctl(fd, BLKGETSIZE64, bytes(8)), sys.byteorder
                    )
            what = "writing %s image to %s" % (fmt, disk.path)
            written = write_image(
                fd, disk.path, stream, bmap, capacity,
                Progress(what, size, args.json, args.quiet),
            )  # fmt: skip
            if expected is not None and expected != written.raw_sha256:
                raise FlashError(
                    "%s matches neither %s nor the image inside it: the download is damaged or "
                    "not this image; the card holds it anyway, do not boot it" % (image, sha_path)
                )
            flush_device(fd, disk)
            if not args.no_verify:
                verify(fd, disk, written, bmap, Progress("verifying", written.size,
                                                          args.json, args.quiet))  # fmt: skip
            if args.config is not None:
                copy_config(disk, fd, args.config)
                flush_device(fd, disk)
        finally:
            os.close(fd)
    finally:
        stream.close()
        raw.close()
    verified = "written and verified" if not args.no_verify else "written (not verified)"
    print("%s: %s, %s%s" % (disk.path, human(written.size), verified,
                            ", %s copied" % CONFIG_NAME if args.config else ""))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except RefusedError as exc:
        print("flash.py: refused: %s" % exc, file=sys.stderr)
        return 2
    except FlashError as exc:
        print("flash.py: failed: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nflash.py: interrupted; the card is incomplete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
