// Shared by the web app's Node tests: one Pyodide per test file, with the project's sources.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startPython } from "../src/runtime.mjs";
import { loadTreeSources, REPO } from "../src/node_sources.mjs";

export { REPO };

/** Pyodide with `node` and `waystation_web` importable and Python's output on stderr. */
export async function python() {
  return startPython({ loadSources: loadTreeSources, stdout: (line) => console.error(line) });
}

/** The text of a file under the repository root. */
export function repoText(...parts) {
  return readFileSync(join(REPO, ...parts), "utf8");
}
