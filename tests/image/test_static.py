"""Static checks of the built Raspberry Pi image, read without booting it (seconds).

The image built by images/raspberrypi/build.sh (build/image, or WAYSTATION_IMAGE) is read in
place: its partition table with sfdisk, the FAT boot partition with mtools, the ext4 partitions
with debugfs and blkid at their byte offsets (no loop device, no mount, no root needed). What
these checks cover the boot test (tests/image/test_boot.py) would find only after minutes of
emulation, or not at all (a key or a password baked into the image).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.app.config import load_config

pytestmark = [pytest.mark.image, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
SECTOR = 512


def image_path() -> Path:
    explicit = os.environ.get("WAYSTATION_IMAGE")
    if explicit:
        return Path(explicit)
    found = sorted((ROOT / "build" / "image").glob("waystation-*-rpi-arm64.img"))
    if not found:
        pytest.fail("no image: run `make image` first (or set WAYSTATION_IMAGE)")
    return found[-1]


@dataclass(frozen=True)
class Partition:
    """One MBR partition of the image: where it is, and how to read it in place."""

    image: Path
    number: int
    start: int  # bytes
    size: int  # bytes
    type: str
    bootable: bool

    def blkid(self) -> dict[str, str]:
        out = run("blkid", "-p", "-O", str(self.start), "-S", str(self.size), "-o", "export",
                  str(self.image))  # fmt: skip
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def debugfs(self, request: str) -> str:
        """One debugfs request on this ext4 partition; AssertionError when debugfs complains."""
        done = subprocess.run(
            ["debugfs", "-R", request, "%s?offset=%d" % (self.image, self.start)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        errors = [line for line in done.stderr.splitlines() if not line.startswith("debugfs ")]
        assert not errors, "debugfs %r: %s" % (request, "\n".join(errors))
        return done.stdout

    def read(self, path: str) -> str:
        return self.debugfs("cat %s" % path)

    def listing(self, path: str) -> dict[str, int]:
        """Names in directory `path` (without . and ..) and their mode bits."""
        out = {}
        for line in self.debugfs("ls -p %s" % path).splitlines():
            fields = line.split("/")
            if len(fields) >= 6 and fields[5] not in (".", ".."):
                out[fields[5]] = int(fields[2], 8)
        return out

    def link_target(self, path: str) -> str:
        match = re.search(r"Fast link dest: \"(.*)\"", self.debugfs("stat %s" % path))
        assert match, "%s is not a symbolic link" % path
        return match.group(1)

    def fat(self, *args: str) -> str:
        """An mtools command on this FAT partition (`::NAME` names a file on it)."""
        return run(*args[:1], "-i", "%s@@%d" % (self.image, self.start), *args[1:])


def run(*argv: str) -> str:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=60, check=True, env=env
    ).stdout


@pytest.fixture(scope="module")
def parts() -> dict[str, Partition]:
    for tool in ("sfdisk", "blkid", "debugfs", "mtype", "mdir"):
        if shutil.which(tool) is None:
            pytest.fail("%s is missing (tools/debian-packages.txt)" % tool)
    image = image_path()
    table = json.loads(run("sfdisk", "--json", str(image)))["partitiontable"]
    assert table["label"] == "dos" and table["unit"] == "sectors"
    found = [
        Partition(image, number, p["start"] * SECTOR, p["size"] * SECTOR, p["type"],
                  bool(p.get("bootable")))
        for number, p in enumerate(table["partitions"], 1)
    ]  # fmt: skip
    assert len(found) == 3, table
    return dict(zip(("boot", "root", "data"), found, strict=True))


def test_partition_table(parts: dict[str, Partition]) -> None:
    boot, root, data = parts["boot"], parts["root"], parts["data"]
    # FAT32 (LBA) first and marked active: the Pi's ROM reads the first FAT partition.
    assert (boot.type, boot.bootable) == ("c", True)
    assert (root.type, data.type) == ("83", "83")
    assert boot.start % (4 * MIB) == 0 and root.start % (4 * MIB) == 0  # SD erase-block aligned
    assert boot.start + boot.size <= root.start and root.start + root.size <= data.start
    # The data partition is last, so the first boot can grow it to the end of any card.
    assert data.start + data.size == boot.image.stat().st_size
    assert boot.size >= 128 * MIB and root.size >= 1024 * MIB


def test_labels(parts: dict[str, Partition]) -> None:
    assert [(p.blkid()["TYPE"], p.blkid()["LABEL"]) for p in parts.values()] == [
        ("vfat", "WS_BOOT"), ("ext4", "WS_ROOT"), ("ext4", "WS_DATA"),
    ]  # fmt: skip


def test_boot_partition(parts: dict[str, Partition]) -> None:
    boot = parts["boot"]
    cmdline = boot.fat("mtype", "::cmdline.txt").split()
    # Root by label (no build-host device name); kernel messages on the screen only: the GPIO
    # UART (ttyS1) and the gadget port belong to the management console.
    assert "root=LABEL=WS_ROOT" in cmdline and "rootwait" in cmdline
    consoles = [word for word in cmdline if word.startswith("console=")]
    assert consoles == ["console=tty1"], cmdline
    config = boot.fat("mtype", "::config.txt")
    assert re.search(r"^arm_64bit=1$", config, re.M)
    names = boot.fat("mdir", "-b", "::").split()
    files = {name.removeprefix("::/").lower() for name in names}
    kernel = re.search(r"^kernel=(\S+)", config, re.M)
    initrd = re.search(r"^initramfs (\S+)", config, re.M)
    assert kernel and initrd, config
    assert {kernel.group(1).lower(), initrd.group(1).lower()} <= files
    # The GPU firmware and a device tree for each supported board (docs/operations.md).
    assert {"bootcode.bin", "start.elf", "fixup.dat"} <= files
    for dtb in ("bcm2837-rpi-3-b", "bcm2837-rpi-3-b-plus", "bcm2837-rpi-3-a-plus",
                "bcm2837-rpi-zero-2-w", "bcm2711-rpi-4-b", "bcm2711-rpi-400"):  # fmt: skip
        assert dtb + ".dtb" in files


def test_boot_config_is_valid(parts: dict[str, Partition], tmp_path: Path) -> None:
    """The waystation.toml a user edits passes the daemon's own loader as shipped."""
    shipped = tmp_path / "waystation.toml"
    shipped.write_text(parts["boot"].fat("mtype", "::waystation.toml"))
    # Both carry the management console on the GPIO UART and USB gadget serial.
    console = ("/dev/ttyS1", "/dev/ttyGS0")
    assert load_config(shipped).console.ports == console
    active = tmp_path / "active.toml"
    active.write_text(parts["root"].read("/etc/waystation/waystation.toml"))
    assert load_config(active).node.name == "waystation"
    assert load_config(active).console.ports == console


def test_no_key_and_no_password(parts: dict[str, Partition]) -> None:
    root, data = parts["root"], parts["data"]
    # The node key is made on the device at first start: nothing in either data location.
    assert set(data.listing("/")) == {"lost+found"}
    assert root.listing("/var/lib/waystation") == {}
    assert set(root.listing("/etc/waystation")) == {"waystation.toml"}
    # Every account locked: no password at all (the console is the way in, issue 12).
    for line in root.read("/etc/shadow").splitlines():
        user, password = line.split(":")[:2]
        assert password.startswith(("!", "*")), "account %s has a password" % user
    # No SSH server, no host keys; the machine id is made on the first boot.
    assert "sshd" not in root.listing("/usr/sbin")
    if "ssh" in root.listing("/etc"):
        assert not any(name.startswith("ssh_host_") for name in root.listing("/etc/ssh"))
    assert root.read("/etc/machine-id").strip() == "uninitialized"


def test_data_partition_owned_by_the_service_user(parts: dict[str, Partition]) -> None:
    passwd = {
        fields[0]: fields for fields in
        (line.split(":") for line in parts["root"].read("/etc/passwd").splitlines())
    }  # fmt: skip
    user = passwd["waystation"]
    assert user[6] == "/usr/sbin/nologin"
    owner = re.search(r"User:\s*(\d+)\s+Group:\s*(\d+)", parts["data"].debugfs("stat /"))
    assert owner and owner.groups() == (user[2], user[3])


def test_units_enabled(parts: dict[str, Partition]) -> None:
    root = parts["root"]
    wants = "/etc/systemd/system/multi-user.target.wants"
    enabled = root.listing(wants)
    for unit in ("waystation.service", "waystation-firstboot.service",
                 "waystation-config.service", "waystation-gadget.service",
                 "systemd-networkd.service"):  # fmt: skip
        assert unit in enabled, "%s is not enabled" % unit
    # The console ports are the daemon's: no login getty on them; the gadget port is made when a
    # USB device controller is there (at boot, or when udev adds it later).
    for port in ("ttyS1", "ttyGS0"):
        getty = "/etc/systemd/system/serial-getty@%s.service" % port
        assert root.link_target(getty) == "/dev/null"
    gadget = root.read("/etc/systemd/system/waystation-gadget.service")
    assert "modprobe g_serial" in gadget and "Before=waystation.service" in gadget
    rules = root.read("/etc/udev/rules.d/90-waystation-gadget.rules")
    assert 'SUBSYSTEM=="udc"' in rules and "waystation-gadget.service" in rules
    assert root.link_target(wants + "/waystation.service") == (
        "/etc/systemd/system/waystation.service"
    )
    assert root.link_target("/etc/systemd/system/systemd-firstboot.service") == "/dev/null"
    unit = root.read("/etc/systemd/system/waystation.service")
    assert "Type=notify" in unit and "WatchdogSec=" in unit
    drop_in = root.read("/etc/systemd/system/waystation.service.d/image.conf")
    assert "After=bluetooth.service" in drop_in and "User=waystation" in drop_in
    assert "/opt/waystation/bin/waystation run" in drop_in
    assert "waystation" in root.listing("/opt/waystation/bin")
    # A relay without a cable must not wait two minutes for the network before it starts.
    wait_online = root.read(
        "/etc/systemd/system/systemd-networkd-wait-online.service.d/waystation.conf"
    )
    assert "--any" in wait_online and "--timeout=30" in wait_online


def test_journald_cap_and_mounts(parts: dict[str, Partition]) -> None:
    root = parts["root"]
    journald = root.read("/etc/systemd/journald.conf.d/waystation.conf")
    cap = re.search(r"^SystemMaxUse=(\d+)M$", journald, re.M)
    assert cap and int(cap.group(1)) <= 64
    assert re.search(r"^Storage=persistent$", journald, re.M)
    mounts = {}
    for line in root.read("/etc/fstab").splitlines():
        if line.strip() and not line.startswith("#"):
            source, target, kind, options = line.split()[:4]
            mounts[target] = (source, kind, set(options.split(",")))
    assert mounts["/"][:2] == ("LABEL=WS_ROOT", "ext4")
    assert mounts["/boot/firmware"][:2] == ("LABEL=WS_BOOT", "vfat")
    assert mounts["/var/lib/waystation"][:2] == ("LABEL=WS_DATA", "ext4")
    for _, _, flags in mounts.values():
        assert "noatime" in flags
    assert {"nodev", "nosuid", "noexec"} <= mounts["/var/lib/waystation"][2]


def test_bluez_settings(parts: dict[str, Partition]) -> None:
    conf = parts["root"].read("/etc/bluetooth/main.conf")
    assert re.search(r"^ControllerMode = le$", conf, re.M)
    assert re.search(r"^Privacy = device$", conf, re.M)


def test_published_files(parts: dict[str, Partition]) -> None:
    """The .img.xz beside the image, with its .bmap and a .sha256 that matches."""
    image = parts["boot"].image
    packed = image.with_name(image.name + ".xz")
    assert image.with_name(image.name + ".bmap").stat().st_size > 0
    listed = packed.with_name(packed.name + ".sha256").read_text().split()
    assert listed[1] == packed.name
    digest = hashlib.sha256()
    with packed.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    assert listed[0] == digest.hexdigest()
