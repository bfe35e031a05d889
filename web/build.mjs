// `make web`: build the static web app into one folder (default ../build/web).
//
//   index.html, manifest.webmanifest, icon.svg   the installable shell (UI: a phase-1 placeholder)
//   app.js                                       src/app.mjs bundled by esbuild (libsodium.js inside)
//   pyodide/                                     Pyodide's runtime, copied from its npm package
//   waystation-py.zip                            the project's Python (web/pack_python.py)
//   sw.js                                        the service worker, with the list of every file
//                                                above and a version derived from their bytes
//
// Nothing is fetched from anywhere but this folder at run time.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(process.argv[2] ?? join(HERE, "..", "build", "web"));
const PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
  "pyodide-lock.json"];

rmSync(OUT, { recursive: true, force: true });
mkdirSync(join(OUT, "pyodide"), { recursive: true });

// Pyodide stays a separate module, loaded from ./pyodide/ (it finds its wasm beside itself).
const pyodideExternal = {
  name: "pyodide-external",
  setup(b) {
    b.onResolve({ filter: /^pyodide$/ }, () => ({ path: "./pyodide/pyodide.mjs", external: true }));
  },
};
await build({
  entryPoints: [join(HERE, "src", "app.mjs")],
  outfile: join(OUT, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "linked",
  external: ["node:*"],
  plugins: [pyodideExternal],
  logLevel: "warning",
});
for (const name of PYODIDE_FILES) {
  copyFileSync(join(HERE, "node_modules", "pyodide", name), join(OUT, "pyodide", name));
}
execFileSync("python3", [join(HERE, "pack_python.py"), join(OUT, "waystation-py.zip")]);
for (const name of ["index.html", "manifest.webmanifest", "icon.svg"]) {
  copyFileSync(join(HERE, "static", name), join(OUT, name));
}

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}
const hash = createHash("sha256");
const list = files(OUT).sort().map((path) => {
  hash.update(relative(OUT, path)).update(readFileSync(path));
  return "./" + relative(OUT, path).split("\\").join("/");
});
const worker = readFileSync(join(HERE, "src", "sw.js"), "utf8")
  .replace("__VERSION__", hash.digest("hex").slice(0, 16))
  .replace("__FILES__", JSON.stringify(["./", ...list]));
writeFileSync(join(OUT, "sw.js"), worker);
const total = files(OUT).reduce((sum, path) => sum + statSync(path).size, 0);
console.log(JSON.stringify({ out: OUT, files: list.length + 1, bytes: total }));
