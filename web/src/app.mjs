// The page (phase 1): register the service worker, start Python, offer a self-test that creates
// an account and a group and writes a message with the project's own member code. The screens of
// phase 2 (docs/web.md) replace the self-test button.
import { startPython, PYTHON_ROOT } from "./runtime.mjs";

async function loadZipSources(pyodide) {
  const response = await fetch("./waystation-py.zip");
  if (!response.ok) throw new Error(`waystation-py.zip: HTTP ${response.status}`);
  pyodide.unpackArchive(await response.arrayBuffer(), "zip", { extractDir: PYTHON_ROOT });
}

/** Start the runtime; resolves to {pyodide, ms}. Exposed for the benchmarks and tests. */
export async function start() {
  const t0 = performance.now();
  const indexURL = new URL("./pyodide/", document.baseURI).href;
  const pyodide = await startPython({ loadSources: loadZipSources, indexURL });
  pyodide.runPython(`
import waystation_sodium
from waystation_web.suite import JsSuite
SUITE = JsSuite(waystation_sodium)
`);
  return { pyodide, ms: performance.now() - t0 };
}

function selfTest(pyodide) {
  return pyodide.runPython(`
import json
from waystation_web.member import WebMember
m = WebMember(SUITE, "/data/selftest", "Me")
g = m.create_group("self-test")
m.send(g, "hello")
out = json.dumps({"group": g, "messages": json.loads(m.read_json(g))}, indent=1)
m.close()
out
`);
}

const status = document.getElementById("status");
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("./sw.js").catch((err) => { status.textContent = `Offline cache unavailable: ${err}`; });
}
window.waystation = start().then(
  (runtime) => {
    status.textContent = `Ready (Python started in ${Math.round(runtime.ms)} ms).`;
    const button = document.getElementById("selftest");
    button.disabled = false;
    button.onclick = () => { document.getElementById("result").textContent = selfTest(runtime.pyodide); };
    return runtime;
  },
  (err) => { status.textContent = `Could not start: ${err}`; throw err; },
);
