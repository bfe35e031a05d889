"""Print run_cases(NaclSuite()) as JSON: the CPython/PyNaCl side of web/tests/suite.test.mjs."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

from waystation_web.suite_cases import run_cases

from node.crypto._nacl import NaclSuite

print(json.dumps(run_cases(NaclSuite()), sort_keys=True))
