"""Level 2 BLE tests: our radio code against a real bluetoothd 5.66 in an x86-64 guest (qemu TCG).

One guest boot per module runs every case of guest/cases_bluez.py; each test here asserts on the
report of one case, so a failure names the case and carries the guest's traceback. Run with
`make test-bluez` (it sets WAYSTATION_BLUEZ=1). The project under test is this tree, or the
tree named by $WAYSTATION_BLUEZ_PROJECT. Without qemu, mmdebstrap or root the tests skip, except
under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bluez.harness import GuestRun, run_guest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "guest"))
from build import BuildError, build, default_cache  # noqa: E402

# Building the guest and one boot with every case take minutes under TCG (the pyproject's 300 s
# per test would fire in the fixture): the run has its own deadlines (harness.Deadlines).
pytestmark = pytest.mark.timeout(3600)

# Every case the guest must run and pass; a case the guest ran that is not listed fails too.
CASES = [
    "cases_bluez.py::test_both_controllers_appear",
    "cases_bluez.py::test_peripheral_registers_application_and_advertisement",
    "cases_bluez.py::test_phone_finds_connects_and_syncs[acquire]",
    "cases_bluez.py::test_phone_finds_connects_and_syncs[dbus]",
    "cases_bluez.py::test_smallest_and_largest_mtu[23]",
    "cases_bluez.py::test_smallest_and_largest_mtu[517]",
    "cases_bluez.py::test_central_disconnects_mid_transfer_and_resumes",
    "cases_bluez.py::test_bluetoothd_restart_under_a_connected_relay",
    "cases_bluez.py::test_two_relays_sync",
]


def missing_prerequisites() -> list[str]:
    missing = [
        tool for tool in ("qemu-system-x86_64", "mmdebstrap", "mkfs.ext4") if not shutil.which(tool)
    ]
    if os.geteuid() != 0:
        missing.append("root (mmdebstrap in root mode)")
    return missing


@pytest.fixture(scope="module")
def guest_run() -> Iterator[GuestRun]:
    missing = missing_prerequisites()
    if missing:
        why = "real-BlueZ tests cannot run: missing %s" % ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    project = Path(os.environ.get("WAYSTATION_BLUEZ_PROJECT", HERE.parents[1])).resolve()
    started = time.monotonic()
    try:
        guest = build(default_cache())
    except BuildError as exc:
        pytest.fail("building the guest failed: %s" % exc)
    built_s = time.monotonic() - started
    run = run_guest(guest, project)
    saved = guest.parent / "last-run.jsonl"  # every report, for a person reading a failure
    saved.write_text("".join(json.dumps(event) + "\n" for event in run.events))
    summary = {
        "guest": guest.name,
        "project": str(project),
        "build_or_cache_s": round(built_s, 1),
        "build_s_when_made": json.loads((guest / "guest.json").read_text()).get("build_s"),
        "host_s": run.seconds,
        "guest_uptime_ready_s": (run.first("ready") or {}).get("uptime_s"),
        "failure": run.failure,
        "reports": str(saved),
    }
    print("bluez-guest " + json.dumps(summary))
    for event in run.events:
        if event.get("event") == "test" and event.get("properties"):
            print("bluez-case " + json.dumps({"name": event["name"], **event["properties"]}))
    yield run


def test_guest_reaches_ready_with_two_controllers(guest_run: GuestRun) -> None:
    ready = guest_run.first("ready")
    assert ready is not None, guest_run.explain()
    assert sorted(ready["adapters"]) == ["hci0", "hci1"], ready
    assert "5.66" in ready["bluez"], ready


@pytest.mark.parametrize("case", CASES)
def test_case_passes_in_the_guest(guest_run: GuestRun, case: str) -> None:
    report = guest_run.tests.get(case)
    assert report is not None, "the guest did not report %s\n%s" % (case, guest_run.explain())
    assert report["outcome"] == "passed", (
        "%s %s in the guest:\n%s\n-- journal --\n%s\n-- btmon --\n%s"
        % (
            case,
            report["outcome"],
            report["message"],
            "\n".join(str(report.get("journal", "")).splitlines()[-30:]),
            "\n".join(str(report.get("btmon", "")).splitlines()[-80:]),
        )
    )


def test_the_guest_ran_exactly_the_listed_cases_and_powered_off(guest_run: GuestRun) -> None:
    assert not guest_run.failure, guest_run.explain()
    assert sorted(guest_run.tests) == sorted(CASES)
    done = guest_run.first("done")
    assert done is not None and done["exitstatus"] == 0, done
