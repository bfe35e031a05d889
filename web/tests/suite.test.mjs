// The libsodium.js suite gives the same bytes as the PyNaCl suite on every method, errors included
// (web/py/waystation_web/suite_cases.py run in Pyodide and under CPython).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { python, REPO } from "./helpers.mjs";

const CPYTHON = process.env.WAYSTATION_PYTHON ?? join(REPO, ".venv", "bin", "python");

test("JsSuite equals NaclSuite on every method", async () => {
  const py = await python();
  const ours = JSON.parse(py.runPython(`
import json, waystation_sodium
from waystation_web.suite import JsSuite
from waystation_web.suite_cases import run_cases
json.dumps(run_cases(JsSuite(waystation_sodium)), sort_keys=True)
`));
  const reference = JSON.parse(execFileSync(CPYTHON, [join(REPO, "web", "tests", "suite_reference.py")],
    { cwd: REPO, encoding: "utf8" }));
  assert.ok(Object.keys(reference).length >= 28);
  assert.equal(reference["x25519 low order"], "error:IntegrityError");
  assert.equal(reference["box wrong key"], "error:IntegrityError");
  assert.deepEqual(ours, reference);
});
