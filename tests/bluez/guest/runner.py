"""The guest side of the real-BlueZ harness: bring up the stack, run the cases, report, return.

Runs inside the x86-64 guest (tests/bluez/guest/build.py) as root, started by
/usr/local/sbin/waystation-guest-init with the venv's Python; the guest powers off when it
returns. Steps, each under a deadline:

1. open the results port (virtio-serial ``waystation.results``); every report is one JSON line;
2. ``modprobe hci_vhci``, start ``btmon -w`` (every HCI packet of both controllers and every
   mgmt command, into a btsnoop file), ``btvirt -L -l2`` (two virtual LE controllers, kept
   running as our child), start bluetoothd through systemd with ``--experimental`` (the advertising
   properties we use are experimental in 5.66) and wait until hci0 and hci1 are on the bus;
3. report ``ready`` and run the cases (cases_*.py beside this file) under pytest, reporting each
   test as it ends, with its ``record_property`` values; a failed case's report also carries
   the journal's tail and btmon's decoding of the HCI traffic during that case (its tail);
4. report ``done`` with pytest's exit status.

The project under test is at /mnt/src (read-only) and comes first on sys.path.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PORT = "/dev/virtio-ports/waystation.results"
SNOOP = Path("/run/waystation-btmon.snoop")
SNOOP_HEADER = 16  # btsnoop: "btsnoop\0", version, datalink type; then whole records
HARNESS = Path(__file__).resolve().parent
PROJECT = Path("/mnt/src")
STEP_DEADLINE_S = 60.0
ATTEMPTS = 3
BLUETOOTHD_DROPIN = """[Service]
ExecStart=
ExecStart=/usr/libexec/bluetooth/bluetoothd --experimental
"""
# bluetoothd's main.conf in the guest takes the [GATT] section of our image's (ExchangeMTU,
# Channels); its [General] privacy and LE-only settings are left out (btvirt's controllers are
# LE-only anyway). The root file system is a snapshot: this never reaches the cached image.
IMAGE_MAIN_CONF = PROJECT / "images/raspberrypi/overlay/etc/bluetooth/main.conf"


def main_conf() -> str:
    """The guest's /etc/bluetooth/main.conf: the [GATT] section of the image's."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(IMAGE_MAIN_CONF)
    gatt = parser["GATT"] if parser.has_section("GATT") else {}
    return "[GATT]\n" + "".join("%s = %s\n" % item for item in gatt.items())


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


class Reporter:
    """Writes JSON lines to the results port; also the pytest plugin that reports each test."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
        self._snoop_at = 0  # where the btsnoop file stood when the running test started

    def emit(self, event: str, **fields: Any) -> None:
        line = (
            json.dumps({"event": event, "uptime_s": round(uptime(), 2), **fields}, default=str)
            + "\n"
        )
        data = line.encode()
        while data:
            data = data[os.write(self._fd, data) :]

    # -- pytest plugin hooks ---------------------------------------------------------------

    def pytest_collectreport(self, report: Any) -> None:
        """A module that cannot even be imported is an error the host must see by name."""
        if report.outcome == "failed":
            self.emit(
                "test",
                name=report.nodeid,
                when="collect",
                outcome="failed",
                duration_s=0.0,
                message=str(report.longrepr)[-6000:],
                properties={},
            )

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self._snoop_at = SNOOP.stat().st_size if SNOOP.exists() else 0

    def pytest_runtest_logreport(self, report: Any) -> None:
        """One ``test`` line per test: its call phase, or a setup/teardown that did not pass."""
        if report.when == "teardown" and report.outcome == "passed":
            teardown = {str(k): v for k, v in report.user_properties if k == "connections_left_up"}
            if teardown:  # what a fixture found after the case: a note, not a test result
                self.emit("note", name=report.nodeid, **teardown)
            return
        if report.when != "call" and report.outcome == "passed":
            return
        self.emit(
            "test",
            name=report.nodeid,
            when=report.when,
            outcome=report.outcome,
            duration_s=round(report.duration, 3),
            message=str(report.longrepr)[-8000:] if report.outcome == "failed" else "",
            journal=journal_tail(40) if report.outcome == "failed" else "",
            btmon=hci_trace(self._snoop_at) if report.outcome == "failed" else "",
            log=str(getattr(report, "caplog", ""))[-30000:] if report.outcome == "failed" else "",
            properties={str(k): v for k, v in report.user_properties},
        )


def run(argv: list[str], deadline: float = STEP_DEADLINE_S) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=deadline, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), proc.returncode, proc.stderr))
    return proc.stdout


def start_controllers() -> subprocess.Popen[bytes]:
    """btvirt with two LE controllers; returns once udev has both (or raises)."""
    btvirt = subprocess.Popen(
        ["btvirt", "-L", "-l2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # udev tells us when the controllers exist; a deadline, no fixed wait.
    run(["udevadm", "wait", "--timeout=%d" % STEP_DEADLINE_S,
         "/sys/class/bluetooth/hci0", "/sys/class/bluetooth/hci1"])  # fmt: skip
    return btvirt


def stop_controllers(btvirt: subprocess.Popen[bytes]) -> None:
    btvirt.terminate()
    btvirt.wait(timeout=STEP_DEADLINE_S)
    run(["udevadm", "wait", "--removed", "--timeout=%d" % STEP_DEADLINE_S,
         "/sys/class/bluetooth/hci0", "/sys/class/bluetooth/hci1"])  # fmt: skip


def bring_up(reporter: Reporter) -> subprocess.Popen[bytes]:
    """Controllers and bluetoothd up; returns btvirt (our child, to stop at the end).

    On a loaded host the guest's vCPUs can stall for seconds, and the kernel gives up on a
    controller whose HCI Reset is not answered within 2 s ("hci0: Opcode 0x0c03 failed: -110");
    bluetoothd then never sees it. So the controllers get up to ATTEMPTS fresh starts, each
    reported to the host as a ``retry`` event.
    """
    # The drop-in comes first: udev starts bluetooth.service as soon as a controller appears.
    dropin = Path("/run/systemd/system/bluetooth.service.d")
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "experimental.conf").write_text(BLUETOOTHD_DROPIN)
    Path("/etc/bluetooth/main.conf").write_text(main_conf())
    run(["systemctl", "daemon-reload"])
    run(["modprobe", "hci_vhci"])
    # btmon first, so it sees the controllers appear; the file is decoded only for a failure
    subprocess.Popen(
        ["btmon", "-w", str(SNOOP)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    sys.path.insert(0, str(HARNESS))
    from bluez_guest import bluez_version, wait_adapters

    for attempt in range(1, ATTEMPTS + 1):
        btvirt = start_controllers()
        run(["systemctl", "start", "bluetooth.service"])
        try:
            adapters = asyncio.run(wait_adapters(("hci0", "hci1"), STEP_DEADLINE_S))
            break
        except TimeoutError as exc:
            if attempt == ATTEMPTS:
                raise
            reporter.emit("retry", step="controllers", attempt=attempt, message=str(exc))
            stop_controllers(btvirt)
    pid = run(["systemctl", "show", "-P", "MainPID", "bluetooth.service"]).strip()
    cmdline = Path("/proc/%s/cmdline" % pid).read_bytes().replace(b"\0", b" ")
    reporter.emit(
        "ready", adapters=adapters, bluez=bluez_version(), bluetoothd=cmdline.decode().strip(),
        attempts=attempt, main_conf=Path("/etc/bluetooth/main.conf").read_text(),
    )  # fmt: skip
    return btvirt


def selected() -> list[str]:
    """``-k`` for the cases named by ``waystation.cases=A,B`` on the kernel command line."""
    for word in Path("/proc/cmdline").read_text().split():
        if word.startswith("waystation.cases="):
            return ["-k", " or ".join(word.split("=", 1)[1].split(","))]
    return []


def hci_trace(since: int, lines: int = 600) -> str:
    """btmon's decoding of the HCI packets and mgmt commands captured since byte `since`."""
    with contextlib.suppress(Exception):
        data = SNOOP.read_bytes()
        since = max(since, SNOOP_HEADER)
        piece = Path("/run/waystation-btmon-case.snoop")
        piece.write_bytes(data[:SNOOP_HEADER] + data[since:])
        out = run(["btmon", "-t", "-r", str(piece)], deadline=120).splitlines()
        return "\n".join(out[-lines:])
    return "(no btmon trace)"


def journal_tail(lines: int = 60) -> str:
    with contextlib.suppress(Exception):
        return run(["journalctl", "-b", "--no-pager", "-n", str(lines), "-o", "short-monotonic"])
    return "(no journal)"


def main() -> int:
    # The port appears when udev has loaded virtio_console; wait for it, with a deadline.
    run(["udevadm", "wait", "--timeout=%d" % STEP_DEADLINE_S, PORT])
    reporter = Reporter(PORT)
    reporter.emit("boot", kernel=os.uname().release)
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(PROJECT))
    try:
        btvirt = bring_up(reporter)
    except Exception as exc:  # everything goes to the host, which fails the run with it
        reporter.emit(
            "error",
            step="bring-up",
            message="%s: %s" % (type(exc).__name__, exc),
            journal=journal_tail(),
        )
        return 1
    import pytest

    started = time.monotonic()
    status = pytest.main(
        [
            *selected(),
            "-c",
            str(HARNESS / "guest-pytest.ini"),
            "--rootdir",
            str(HARNESS),
            "-p",
            "no:cacheprovider",
            "-q",
            str(HARNESS),
        ],
        plugins=[reporter],
    )
    reporter.emit("done", exitstatus=int(status), tests_s=round(time.monotonic() - started, 1))
    btvirt.terminate()
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
