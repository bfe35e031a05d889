"""tests/bluez/ runs only under `make test-bluez` (WAYSTATION_BLUEZ=1): it boots a qemu guest.

The guest-side cases in guest/ are never collected on the host.
"""

from __future__ import annotations

import os

collect_ignore = ["guest"]
if os.environ.get("WAYSTATION_BLUEZ") != "1":
    collect_ignore += ["test_real_bluez.py"]
