// Starting the web app's Python: Pyodide (from the npm package, never a CDN), the crypto bridge
// to libsodium.js, and the project's own Python sources (`node` and `waystation_web`).
//
// The same function runs in Node (tests, benchmarks, the interop test) and in the page; only
// where the files come from differs (`loadSources`): Node writes them from the source tree
// (web/src/node_sources.mjs), the page unpacks the zip that `make web` built.

import { loadPyodide } from "pyodide";
import sodium from "libsodium-wrappers-sumo";
import { makeSodiumBridge } from "./sodium_bridge.mjs";

/** Where the Python sources live in Pyodide's file system. */
export const PYTHON_ROOT = "/lib/waystation";

/**
 * Start Pyodide with the project's Python importable and the libsodium bridge registered.
 * @param {object} options
 * @param {(pyodide: object) => Promise<void>} options.loadSources writes the sources under PYTHON_ROOT
 * @param {string} [options.indexURL] where pyodide.asm.wasm and python_stdlib.zip are (the page's)
 * @param {(line: string) => void} [options.stdout] where Python's print goes
 * @returns {Promise<object>} the Pyodide instance
 */
export async function startPython({ loadSources, indexURL, stdout, stderr }) {
  await sodium.ready;
  const pyodide = await loadPyodide({
    indexURL,
    packages: [],
    stdout: stdout ?? (() => {}),
    stderr: stderr ?? ((line) => console.error(line)),
  });
  pyodide.registerJsModule("waystation_sodium", makeSodiumBridge(sodium));
  pyodide.FS.mkdirTree(PYTHON_ROOT);
  await loadSources(pyodide);
  pyodide.runPython(`import sys\nsys.path.insert(0, ${JSON.stringify(PYTHON_ROOT)})`);
  return pyodide;
}
