"""Builds (or finds in the cache) the x86-64 Debian bookworm guest that runs a real bluetoothd.

The guest is a root filesystem made by mmdebstrap from Debian's archive (the mirrors this
machine's apt uses, read with `apt-get indextargets`; no host name is written here), with the
packages of packages.txt, a venv at /opt/waystation/venv holding the wheels of requirements.txt
(made on the host with `pip wheel`, so the guest needs no network), and a oneshot unit that
mounts the project read-only over virtio-9p at boot and runs tests/bluez/guest/runner.py from
it. The project itself is not in the image: changing it never rebuilds the guest.

Output, in ``<cache>/<key>/``: ``vmlinuz``, ``initrd.img`` (the guest's own kernel and
initramfs) and ``root.ext4`` (written with ``mkfs.ext4 -d``: no loop mount). ``<key>`` is a hash
of every input file of the build, so a changed package list makes a new guest and an unchanged
one is found again. ``<cache>`` is $WAYSTATION_BLUEZ_CACHE or ``.cache/bluez-guest`` in the work
tree (gitignored).

Usage: ``python tests/bluez/guest/build.py [--cache DIR]``; prints the guest directory.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
INPUTS = (
    "build.py",
    "packages.txt",
    "requirements.txt",
    "guest-init.sh",
    "waystation-bluez.service",
)
SUITE = "bookworm"
VENV = "/opt/waystation/venv"


class BuildError(Exception):
    """The guest could not be built; the message says which step failed and why."""


def default_cache() -> Path:
    return Path(os.environ.get("WAYSTATION_BLUEZ_CACHE", ROOT / ".cache" / "bluez-guest"))


def cache_key() -> str:
    """A hash of every input of the build (file names and contents)."""
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def listed(name: str) -> list[str]:
    """The non-comment lines of one of the list files beside this script."""
    lines = (HERE / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def apt_sources() -> list[str]:
    """One-line apt sources for the guest, from the host's own amd64 `main` index targets."""
    out = run(
        [
            "apt-get",
            "indextargets",
            "--format",
            "$(REPO_URI) $(RELEASE) $(COMPONENT) $(ARCHITECTURE)",
        ],
        "apt-get indextargets",
    )
    sources: list[str] = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[3] != "amd64" or not parts[1].startswith(SUITE):
            continue
        entry = "deb %s %s %s" % (parts[0], parts[1], parts[2])
        if entry not in sources:
            sources.append(entry)
    if not any(source.split()[2] == SUITE for source in sources):
        raise BuildError(
            "apt-get indextargets lists no amd64 %s index: run `apt-get update` first" % SUITE
        )
    return sources


def run(argv: list[str], what: str, **kwargs: object) -> str:
    """Runs one build step; a failure raises BuildError with the step's last output lines."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BuildError("%s failed (exit %d):\n%s" % (what, proc.returncode, tail))
    return str(proc.stdout)


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache directory (a second caller waits, then finds the result)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build(cache: Path) -> Path:
    """Returns the guest directory for the current inputs, building it when it is not cached."""
    key = cache_key()
    guest = cache / key
    if (guest / "guest.json").exists():
        return guest
    if os.geteuid() != 0:
        raise BuildError("building the guest needs root (mmdebstrap in root mode, mkfs.ext4 -d)")
    for tool in ("mmdebstrap", "mkfs.ext4"):
        if shutil.which(tool) is None:
            raise BuildError("%s is not installed (tools/debian-packages.txt lists it)" % tool)
    with locked(cache):
        if (guest / "guest.json").exists():
            return guest
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="bluez-guest-", dir=cache))
        try:
            make_guest(work)
            (work / "guest.json").write_text(
                json.dumps({"key": key, "build_s": round(time.monotonic() - started, 1)}) + "\n"
            )
            remove_unmounted(work / "rootfs")
            remove_unmounted(work / "wheels")
            if guest.exists():
                shutil.rmtree(guest)
            work.rename(guest)
        finally:
            if work.exists():
                remove_unmounted(work)
    return guest


def remove_unmounted(path: Path) -> None:
    """Removes a failed build's directory, unless something is still mounted inside it.

    mmdebstrap mounts /proc, /sys and /dev inside the root while its hooks run; if it died there,
    deleting the tree would reach into those mounts, so the directory is left for a person.
    """
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as mounts:
        busy = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    if busy:
        raise BuildError("not removing %s: still mounted inside it: %s" % (path, ", ".join(busy)))
    shutil.rmtree(path)


def make_guest(work: Path) -> None:
    wheels = work / "wheels"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "-w",
            str(wheels),
            "-r",
            str(HERE / "requirements.txt"),
        ],
        "pip wheel (the guest's Python packages)",
    )
    shutil.copy(HERE / "requirements.txt", wheels / "requirements.txt")
    rootfs = work / "rootfs"
    hooks = [
        'echo waystation-bluez > "$1/etc/hostname"',
        "copy-in %s /tmp" % wheels,
        'chroot "$1" python3 -m venv %s' % VENV,
        'chroot "$1" %s/bin/pip install -q --no-index --find-links /tmp/wheels'
        " -r /tmp/wheels/requirements.txt" % VENV,
        'rm -rf "$1/tmp/wheels"',
        "upload %s /usr/local/sbin/waystation-guest-init" % (HERE / "guest-init.sh"),
        'chmod 755 "$1/usr/local/sbin/waystation-guest-init"',
        "upload %s /etc/systemd/system/waystation-bluez.service"
        % (HERE / "waystation-bluez.service"),
        'chroot "$1" systemctl enable waystation-bluez.service',
        # No login prompt is needed on the console, and the guest has no network to wait for.
        'chroot "$1" systemctl mask serial-getty@ttyS0.service getty@tty1.service',
        'chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer',
    ]
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        "--include=" + ",".join(listed("packages.txt")),
    ]
    argv += ["--customize-hook=" + hook for hook in hooks]
    argv += [SUITE, str(rootfs)]
    argv += apt_sources()
    run(argv, "mmdebstrap")
    boot = rootfs / "boot"
    kernels = sorted(boot.glob("vmlinuz-*"))
    initrds = sorted(boot.glob("initrd.img-*"))
    if not kernels or not initrds:
        raise BuildError("the guest has no kernel or initramfs in /boot")
    shutil.copy(kernels[-1], work / "vmlinuz")
    shutil.copy(initrds[-1], work / "initrd.img")
    size_mib = tree_size(rootfs) // (1 << 20) + 768
    run(
        [
            "mkfs.ext4",
            "-q",
            "-L",
            "waystation",
            "-d",
            str(rootfs),
            str(work / "root.ext4"),
            "%dM" % size_mib,
        ],
        "mkfs.ext4 -d",
    )


def tree_size(path: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=default_cache())
    args = parser.parse_args()
    try:
        print(build(args.cache))
    except BuildError as exc:
        print("bluez guest: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
