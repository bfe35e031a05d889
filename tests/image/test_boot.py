"""The Raspberry Pi image booted under qemu-system-aarch64 (`make image-test`).

The image built by images/raspberrypi/build.sh (build/image, or WAYSTATION_IMAGE) is copied
(sparse) for each test run, given a test waystation.toml on its FAT partition with mtools, grown
to 4 GiB as a bigger card would be, and booted with `-M virt -cpu cortex-a53` and the image's own
kernel and initramfs (read off the FAT partition). The kernel console is the PL011 (ttyAMA0) on
qemu's stdout, with the journal forwarded to it; the relay's TCP port is forwarded to 127.0.0.1.
A two-port PCI 16550 card gives the guest ttyS0 (unwired) and ttyS1, the image's GPIO UART
console port, whose line is a UNIX socket here. Members on the host are real `waystation peer`
processes.

Checked: the first-boot steps ran (data partition grown, node key made on the device); the
service reached READY; the management console answers `status` on the emulated serial line
wired to ttyS1 (not the kernel console); a member syncs through the forwarded port; a clean
power-off and boot keep the identity and the stored entries; a power cut (qemu killed mid-sync)
keeps the store consistent and every entry the relay acknowledged before it (a completed sync,
not flushed by a clean shutdown since), and the interrupted sync completes after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.procs import Member, child_env

pytestmark = [pytest.mark.image, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
BOOT_DEADLINE_S = float(os.environ.get("WAYSTATION_BOOT_DEADLINE_S", "420"))
SYNC_TIMEOUT_S = 120.0
MIB = 1024 * 1024
# Added to the image's own boot-partition waystation.toml (its [console] section stays).
TEST_CONFIG = """\

[node]
name = "qemu-relay"

[lan]
listen = "0.0.0.0:4740"
zeroconf = false
"""


def image_path() -> Path:
    explicit = os.environ.get("WAYSTATION_IMAGE")
    if explicit:
        return Path(explicit)
    found = sorted((ROOT / "build" / "image").glob("waystation-*-rpi-arm64.img"))
    if not found:
        pytest.fail("no image: run `make image` first (or set WAYSTATION_IMAGE)")
    return found[-1]


def fat_offset(image: Path) -> int:
    with image.open("rb") as f:
        mbr = f.read(512)
    assert mbr[510:512] == b"\x55\xaa", "no MBR in %s" % image
    return int.from_bytes(mbr[446 + 8 : 446 + 12], "little") * 512


def mtools(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    return subprocess.run(list(args), check=True, capture_output=True, env=env, timeout=60)


class Guest:
    """One qemu run of the image; the console is read line by line by a thread."""

    def __init__(self, image: Path, kernel: Path, initrd: Path, workdir: Path) -> None:
        self.port = free_port()
        self.log = (workdir / ("console-%d.log" % self.port)).open("w", encoding="utf-8")
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self.qmp_path = workdir / ("qmp-%d.sock" % self.port)
        self.serial_path = workdir / ("ttyS1-%d.sock" % self.port)
        argv = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1024",
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "root=LABEL=WS_ROOT rw console=ttyAMA0 net.ifnames=0 panic=10 "
                       "systemd.journald.forward_to_console=1",
            "-drive", "file=%s,format=raw,if=virtio,cache=unsafe" % image,
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:4740" % self.port,
            "-device", "virtio-net-pci,netdev=n0",
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
            "-chardev", "null,id=spare",
            "-chardev", "socket,id=gpio,path=%s,server=on,wait=off" % self.serial_path,
            "-device", "pci-serial-2x,chardev1=spare,chardev2=gpio",
        ]  # fmt: skip
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.log.write(line + "\n")
            self.log.flush()
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        self.proc.stdout.close()
        self.log.close()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
        """The first console line from index `since` matching `pattern` (a deadline, no sleep)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = since
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    tail = "\n".join(self.lines[-60:])
                    raise AssertionError(
                        "console never showed %r (qemu %s); last lines:\n%s"
                        % (pattern, "exited" if self._eof else "running", tail)
                    )
                self._changed.wait(remaining)

    def console(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def console_command(self, command: str, timeout: float = 60.0) -> str:
        """Type `command` on the serial console port (ttyS1); its echo and output, to the prompt."""
        prompt = CONSOLE_PROMPT.encode()
        deadline = time.monotonic() + timeout
        seen, answer = b"", -1  # answer: where the command's echo starts in `seen`
        with socket.socket(socket.AF_UNIX) as line:
            line.connect(str(self.serial_path))
            line.sendall(b"\r")  # a fresh prompt
            # Done at a prompt after the echo and at least one line of output.
            while answer < 0 or not (
                seen[answer:].endswith(prompt) and seen[answer:].count(b"\n") >= 2
            ):
                if answer < 0 and seen.endswith(prompt):
                    answer = len(seen)
                    line.sendall(command.encode() + b"\r")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("the console on ttyS1 said, within %.0f s:\n%s"
                                         % (timeout, seen.decode("utf-8", "replace")))  # fmt: skip
                line.settimeout(remaining)
                try:
                    chunk = line.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    raise AssertionError("the serial line closed: %r" % seen)
                seen += chunk
        return seen[answer:].decode("utf-8", "replace")

    def power_off(self, timeout: float = 180.0) -> None:
        """The power button (ACPI/GPIO key through QMP): a clean shutdown, then qemu exits."""
        with socket.socket(socket.AF_UNIX) as qmp:
            qmp.settimeout(10)
            qmp.connect(str(self.qmp_path))
            reader = qmp.makefile("rb")
            reader.readline()  # greeting
            for command in ("qmp_capabilities", "system_powerdown"):
                qmp.sendall(json.dumps({"execute": command}).encode() + b"\n")
                reader.readline()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "the guest did not power off within %.0f s; last lines:\n%s"
                % (timeout, "\n".join(self.lines[-40:]))
            ) from None
        self._reader.join(10)

    def power_cut(self) -> None:
        """Pull the plug: qemu killed, nothing flushed."""
        self.proc.kill()
        self.proc.wait(30)
        self._reader.join(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.power_cut()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """A writable copy of the image as a 4 GiB card with the test config, and its kernel."""
    for tool in ("qemu-system-aarch64", "mcopy", "mtype"):
        if shutil.which(tool) is None:
            pytest.fail("%s is missing (tools/debian-packages.txt)" % tool)
    image = image_path()
    work = tmp_path_factory.mktemp("card")
    copy = work / "card.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(copy)], check=True)
    offset = fat_offset(copy)
    target = "%s@@%d" % (copy, offset)
    config = work / "waystation.toml"
    config.write_text(mtools("mtype", "-i", target, "::waystation.toml").stdout.decode()
                      + TEST_CONFIG)  # fmt: skip
    mtools("mcopy", "-o", "-i", target, str(config), "::waystation.toml")
    boot_config = mtools("mtype", "-i", target, "::config.txt").stdout.decode()
    kernel_name = re.search(r"^kernel=(\S+)", boot_config, re.M)
    initrd_name = re.search(r"^initramfs (\S+)", boot_config, re.M)
    assert kernel_name and initrd_name, "config.txt names no kernel/initramfs:\n" + boot_config
    kernel, initrd = work / "vmlinuz", work / "initrd.img"
    mtools("mcopy", "-i", target, "::" + kernel_name.group(1), str(kernel))
    mtools("mcopy", "-i", target, "::" + initrd_name.group(1), str(initrd))
    with copy.open("r+b") as f:
        f.truncate(4096 * MIB)  # a bigger card than the image: first boot grows the data part
    yield copy, kernel, initrd


def boot(card: tuple[Path, Path, Path], workdir: Path) -> Guest:
    image, kernel, initrd = card
    return Guest(image, kernel, initrd, workdir)


CONSOLE_PROMPT = "qemu-relay> "  # node.name in TEST_CONFIG
READY = r"Started waystation\.service"
LISTENING = r"relay (\S+) listening on"


def test_first_boot_sync_reboot_and_power_cut(
    card: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    members = tmp_path / "members"
    alice, bob = Member(members / "alice", "alice"), Member(members / "bob", "bob")
    alice.init()
    bob.init()
    group = alice.create_group("kitchen table")
    bob.join(alice.invite(group))

    # -- first boot ---------------------------------------------------------------------------
    guest = boot(card, tmp_path)
    try:
        grown = guest.wait_for(r"first-boot: data partition (\S+) grown", BOOT_DEADLINE_S)
        assert grown.group(1) == "/dev/vda3"
        applied = guest.wait_for(r"waystation-config: applied /boot/firmware/waystation.toml",
                                 BOOT_DEADLINE_S)  # fmt: skip
        assert applied
        guest.wait_for(r"waystation-config: host name set to qemu-relay", BOOT_DEADLINE_S)
        guest.wait_for(READY, BOOT_DEADLINE_S)
        ready_s = time.monotonic() - guest.started
        identity = guest.wait_for(LISTENING, 60).group(1)
        status = guest.console_command("status")
        assert re.search(r"node +\S+ \(qemu-relay\)", status), status
        assert "/dev/ttyS1 open" in status, status  # the answer came over that port
        relay = "127.0.0.1:%d" % guest.port
        bob.sync(relay, SYNC_TIMEOUT_S)
        alice.sync(relay, SYNC_TIMEOUT_S)
        first = ["before the reboot %d" % i for i in range(5)]
        for text in first:
            alice.send(group, text)
        alice.sync(relay, SYNC_TIMEOUT_S)
        guest.power_off()
    finally:
        guest.kill()
    assert guest.proc.returncode == 0, "qemu exit status %r" % guest.proc.returncode
    (ROOT / "build" / "image").mkdir(parents=True, exist_ok=True)
    (ROOT / "build" / "image" / "boot-times.json").write_text(
        json.dumps({"first_boot_to_ready_s": round(ready_s, 1)}) + "\n"
    )

    # -- second boot: same identity, entries kept ------------------------------------------
    guest = boot(card, tmp_path)
    try:
        guest.wait_for(READY, BOOT_DEADLINE_S)
        assert "data partition /dev/vda3 grown" not in guest.console()  # first boot only once
        assert guest.wait_for(LISTENING, 60).group(1) == identity
        relay = "127.0.0.1:%d" % guest.port
        bob.sync(relay, SYNC_TIMEOUT_S)
        assert [m["body"] for m in bob.read(group)] == first

        # Entries the relay acknowledged (the sync completed) and never flushed by a clean
        # shutdown: the power cut below must not lose them.
        acked = ["acknowledged before the cut %d" % i for i in range(20)]
        for text in acked:
            alice.send(group, text)
        alice.sync(relay, SYNC_TIMEOUT_S)

        # A power cut in the middle of a sync.
        second = ["during the power cut %d" % i for i in range(300)]
        for text in second:
            alice.send(group, text)
        syncing = subprocess.Popen(
            [*alice_sync_argv(alice, relay)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=child_env(alice.data_dir.parent),
        )  # fmt: skip
        assert syncing.stderr is not None
        for line in syncing.stderr:  # progress lines: entries are moving
            if "sent" in line:
                break
        guest.power_cut()
        syncing.communicate(timeout=SYNC_TIMEOUT_S)  # it fails (link lost); pipes closed
    finally:
        guest.kill()

    # -- third boot: consistent store, nothing acknowledged lost --------------------------
    guest = boot(card, tmp_path)
    try:
        guest.wait_for(READY, BOOT_DEADLINE_S)
        assert guest.wait_for(LISTENING, 60).group(1) == identity
        relay = "127.0.0.1:%d" % guest.port
        bob.sync(relay, SYNC_TIMEOUT_S)
        texts = [m["body"] for m in bob.read(group)]
        kept = first + acked
        assert texts[: len(kept)] == kept  # every acknowledged entry survived the cut
        alice.sync(relay, SYNC_TIMEOUT_S)  # the interrupted sync completes
        bob.sync(relay, SYNC_TIMEOUT_S)
        assert [m["body"] for m in bob.read(group)] == kept + second
        guest.power_off()
    finally:
        guest.kill()


def alice_sync_argv(member: Member, relay: str) -> list[str]:
    from tests.integration.procs import WAYSTATION

    return [
        WAYSTATION, "peer", "sync", "--data", str(member.data_dir), "--relay", relay,
        "--timeout", str(SYNC_TIMEOUT_S), "--progress-entries", "1", "--progress-interval", "0",
    ]  # fmt: skip
