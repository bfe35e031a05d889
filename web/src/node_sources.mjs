// Node only: copy the project's Python sources from the source tree into Pyodide's file system.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { PYTHON_ROOT } from "./runtime.mjs";

/** The repository root (this file is web/src/node_sources.mjs). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The Python packages the web app carries, as [source folder, package name]. */
export const PACKAGES = [
  [join(REPO, "node"), "node"],
  [join(REPO, "web", "py", "waystation_web"), "waystation_web"],
];

function copyTree(pyodide, from, to) {
  pyodide.FS.mkdirTree(to);
  for (const name of readdirSync(from)) {
    if (name === "__pycache__") continue;
    const path = join(from, name);
    if (statSync(path).isDirectory()) copyTree(pyodide, path, `${to}/${name}`);
    else if (name.endsWith(".py") || name.endsWith(".toml")) {
      pyodide.FS.writeFile(`${to}/${name}`, readFileSync(path));
    }
  }
}

/** loadSources for startPython: the packages in PACKAGES, straight from the tree. */
export async function loadTreeSources(pyodide) {
  for (const [from, name] of PACKAGES) copyTree(pyodide, from, `${PYTHON_ROOT}/${name}`);
}
