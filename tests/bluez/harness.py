"""Host side of the real-BlueZ harness: boot the guest under TCG, collect its JSON-line reports.

Theory of operation: we listen on a UNIX socket in a private temporary directory, then start
qemu-system-x86_64 (TCG, ``-cpu max``; nested KVM does not work on these machines) with the
guest's own kernel and initramfs, its root file system as a copy-on-write snapshot (the image is
never changed), two read-only virtio-9p shares (``harness``: tests/bluez/guest; ``project``: the
tree under test) and a virtio-serial port ``waystation.results`` that qemu connects to our
socket. The guest's runner writes one JSON object per line (boot, ready, test, error, done) and
powers off. Each stage has a deadline: qemu must connect, the guest must report ``ready``, the
tests must report ``done``, and qemu must exit after that; past a deadline the run ends with
what was collected and the tail of the guest's console, and qemu is killed.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MAX_LINE = 1 << 20


@dataclass
class Deadlines:
    """Seconds allowed for each stage of a run (under TCG on a shared 2-core machine)."""

    connect: float = 60.0
    ready: float = 300.0
    done: float = 1800.0
    exit: float = 60.0


@dataclass
class GuestRun:
    """What one boot of the guest reported."""

    events: list[dict[str, Any]] = field(default_factory=list)
    console: str = ""
    failure: str = ""  # why the run ended early ("" when it reached `done` and qemu exited)
    returncode: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # host clock, from qemu's start

    def first(self, event: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == event), None)

    @property
    def tests(self) -> dict[str, dict[str, Any]]:
        """The guest's test reports by name (``cases_bluez.py::test_x[param]``)."""
        return {e["name"]: e for e in self.events if e.get("event") == "test"}

    def explain(self) -> str:
        """A diagnosis for an assertion message: the failure, errors and the console's tail."""
        lines = ["run: %s" % (self.failure or "reached done")]
        for error in (e for e in self.events if e.get("event") == "error"):
            lines.append("guest error in %s: %s" % (error.get("step"), error.get("message")))
            lines.append("guest journal:\n%s" % str(error.get("journal", ""))[-6000:])
        lines.append("console tail:\n" + "\n".join(self.console.splitlines()[-40:]))
        return "\n".join(lines)


def qemu_argv(
    guest: Path, project: Path, harness: Path, socket_path: Path, console: Path, cases: str = ""
) -> list[str]:
    """The qemu command line of one run (`cases`: see run_guest)."""
    append = "root=/dev/vda rw console=ttyS0 panic=-1 loglevel=4"
    if cases:
        append += " waystation.cases=" + cases
    return [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        "1536",
        "-display",
        "none",
        "-monitor",
        "none",
        "-nic",
        "none",
        "-no-reboot",
        "-kernel",
        str(guest / "vmlinuz"),
        "-initrd",
        str(guest / "initrd.img"),
        "-append",
        append,
        "-drive",
        "file=%s,format=raw,if=virtio,snapshot=on" % (guest / "root.ext4"),
        "-virtfs",
        "local,path=%s,mount_tag=harness,security_model=none,readonly=on" % harness,
        "-virtfs",
        "local,path=%s,mount_tag=project,security_model=none,readonly=on" % project,
        "-device",
        "virtio-serial-pci",
        "-chardev",
        "socket,id=results,path=%s" % socket_path,
        "-device",
        "virtserialport,chardev=results,name=waystation.results",
        "-chardev",
        "file,id=console,path=%s" % console,
        "-serial",
        "chardev:console",
    ]


async def _run(guest: Path, project: Path, deadlines: Deadlines, cases: str) -> GuestRun:
    result = GuestRun()
    with tempfile.TemporaryDirectory(prefix="ws-bluez-") as tmp:
        sock_path, console = Path(tmp) / "results.sock", Path(tmp) / "console.log"
        connected: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue(1)
        writers: list[asyncio.StreamWriter] = []  # kept open until the run ends

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            if connected.empty():
                connected.put_nowait(reader)

        server = await asyncio.start_unix_server(on_connect, path=str(sock_path), limit=MAX_LINE)
        start = time.monotonic()
        argv = qemu_argv(guest, project, HERE / "guest", sock_path, console, cases)
        qemu = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            result.failure = await _collect(result, connected, deadlines, start)
            try:
                async with asyncio.timeout(deadlines.exit):
                    await qemu.wait()
                result.seconds["exit"] = round(time.monotonic() - start, 1)
            except TimeoutError:
                result.failure = (
                    result.failure or "qemu did not exit within %.0f s" % deadlines.exit
                )
        finally:
            if qemu.returncode is None:
                qemu.kill()
                await qemu.wait()
            result.returncode = qemu.returncode
            assert qemu.stdout is not None
            qemu_out = (await qemu.stdout.read()).decode(errors="replace")
            server.close()
            for writer in writers:
                writer.close()
            result.console = console.read_text(errors="replace") if console.exists() else ""
            if qemu_out.strip():
                result.console += "\n[qemu] " + qemu_out
    return result


async def _collect(
    result: GuestRun,
    connected: asyncio.Queue[asyncio.StreamReader],
    deadlines: Deadlines,
    start: float,
) -> str:
    """Reads reports until ``done``; returns "" or why it stopped early."""
    try:
        async with asyncio.timeout(deadlines.connect):
            reader = await connected.get()
    except TimeoutError:
        return "qemu did not open the results port within %.0f s" % deadlines.connect
    stage, limit = "ready", deadlines.ready
    while True:
        try:
            async with asyncio.timeout(limit):
                line = await reader.readline()
        except TimeoutError:
            return "no %s report within %.0f s" % (stage, limit)
        except ValueError:
            return "a report line longer than %d bytes" % MAX_LINE
        if not line:
            return "the guest closed the results port before done"
        try:
            event = json.loads(line)
        except ValueError:
            return "a report that is not JSON: %r" % line[:200]
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            return "a report without an event name: %r" % line[:200]
        result.events.append(event)
        kind = event["event"]
        result.seconds.setdefault(kind, round(time.monotonic() - start, 1))
        if kind == "error":
            return "the guest reported an error in %s" % event.get("step")
        if kind == "ready":
            stage, limit = "done", deadlines.done
        if kind == "done":
            return ""


def run_guest(
    guest: Path, project: Path, deadlines: Deadlines | None = None, cases: str = ""
) -> GuestRun:
    """Boots the guest in `guest` (see guest/build.py) on `project` and returns its reports.

    `cases`, when given, runs only the cases whose names contain one of its comma-separated
    words (runner.py turns it into pytest's ``-k``); it travels on the guest's kernel command
    line, so it may not contain spaces.
    """
    if any(c.isspace() for c in cases):
        raise ValueError("cases may not contain spaces: %r" % cases)
    return asyncio.run(_run(guest, project, deadlines or Deadlines(), cases))


def main() -> int:
    """``python tests/bluez/harness.py [PROJECT] [-k WORD,...]``: build or find the guest, run."""
    import argparse
    import sys

    sys.path.insert(0, str(HERE / "guest"))
    from build import build, default_cache

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("project", nargs="?", type=Path, default=HERE.parents[1])
    parser.add_argument("-k", dest="cases", default="", help="only cases naming one of these")
    args = parser.parse_args()
    guest = build(default_cache())
    run = run_guest(guest, args.project.resolve(), cases=args.cases)
    saved = guest.parent / "last-run.jsonl"
    saved.write_text("".join(json.dumps(e) + "\n" for e in run.events))
    print("all reports: %s" % saved)
    for event in run.events:
        if event.get("event") != "test":
            print(json.dumps(event)[:2000])
            continue
        print("%-70s %s %.1fs %s" % (event["name"], event["outcome"], event["duration_s"],
                                    json.dumps(event.get("properties") or {})))  # fmt: skip
        if event["outcome"] == "failed":
            print("\n".join(str(event["message"]).splitlines()[-25:]))
            print("-- journal --\n" + "\n".join(str(event.get("journal")).splitlines()[-25:]))
            print("-- btmon --\n" + "\n".join(str(event.get("btmon")).splitlines()[-60:]))
    print(json.dumps({"seconds": run.seconds, "failure": run.failure}))
    if run.failure:
        print(run.explain(), file=sys.stderr)
    return 0 if not run.failure else 1


if __name__ == "__main__":
    raise SystemExit(main())
