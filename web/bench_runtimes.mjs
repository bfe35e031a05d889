// Benchmark (docs/performance.md "Web app runtimes"): node web/bench_runtimes.mjs
// Builds the app, serves it on 127.0.0.1, and in Debian's headless Chromium measures Pyodide's
// cold start (runtime + libsodium + the project's Python), 1,000 messages written and read back
// by the member code, and the wasm memory; the MicroPython wasm port's cold start beside it; and
// the same 1,000 messages under CPython + PyNaCl (native). One JSON line each.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { serveStatic } from "./src/serve.mjs";
import { launchChromium } from "./src/chromium.mjs";

const WEB = dirname(fileURLToPath(import.meta.url));
const N = 1000;
const out = mkdtempSync(join(tmpdir(), "waystation-web-bench-"));
execFileSync(process.execPath, [join(WEB, "build.mjs"), out], { stdio: "ignore" });
const mp = join(WEB, "node_modules", "@micropython", "micropython-webassembly-pyscript");
for (const f of ["micropython.mjs", "micropython.wasm"]) copyFileSync(join(mp, f), join(out, f));

const size = (paths) => paths.reduce((a, p) => {
  const b = readFileSync(p);
  return { raw: a.raw + b.length, gzip: a.gzip + gzipSync(b, { level: 9 }).length };
}, { raw: 0, gzip: 0 });
const all = (d) => readdirSync(d).flatMap((n) => statSync(join(d, n)).isDirectory() ? all(join(d, n)) : [join(d, n)]);
const pyodideFiles = all(out).filter((p) => !p.includes("micropython"));
console.log(JSON.stringify({ case: "download", runtime: "pyodide app (build/web)", ...size(pyodideFiles) }));
console.log(JSON.stringify({ case: "download", runtime: "micropython wasm (runtime only)",
  ...size([join(out, "micropython.mjs"), join(out, "micropython.wasm")]) }));

const server = await serveStatic(out);
const chromium = await launchChromium();
const WORK = `
import json, time
from waystation_web.member import WebMember
m = WebMember(SUITE, "/data/bench", "Bench")
g = m.create_group("bench")
t0 = time.perf_counter()
for i in range(${N}):
    m.send(g, "message %d" % i)
t1 = time.perf_counter()
n = len(json.loads(m.read_json(g)))
t2 = time.perf_counter()
json.dumps({"write_ms": round((t1 - t0) * 1000), "read_ms": round((t2 - t1) * 1000), "n": n})
`;
for (let run = 0; run < 2; run++) {
  const page = await chromium.browser.newPage();
  await page.goto(server.url, { waitUntil: "load" });
  const r = await page.evaluate(async (work) => {
    const runtime = await window.waystation;
    const res = JSON.parse(runtime.pyodide.runPython(work));
    return { start_ms: Math.round(runtime.ms), ...res, wasm_mb: Math.round(runtime.pyodide._module.HEAP8.length / 2 ** 20) };
  }, WORK);
  const m = await page.metrics();
  console.log(JSON.stringify({ case: "chromium", runtime: "pyodide", run, ...r, js_heap_mb: Math.round(m.JSHeapUsedSize / 2 ** 20) }));
  await page.close();
  const mpPage = await chromium.browser.newPage();
  await mpPage.goto(server.url + "icon.svg");
  const mpr = await mpPage.evaluate(async (url) => {
    const t0 = performance.now();
    const { loadMicroPython } = await import(url + "micropython.mjs");
    const mpy = await loadMicroPython({ url: url + "micropython.wasm" });
    mpy.runPython("import hashlib; hashlib.sha256(b'x')");
    return { start_ms: Math.round(performance.now() - t0) };
  }, server.url);
  console.log(JSON.stringify({ case: "chromium", runtime: "micropython", run, ...mpr }));
  await mpPage.close();
}
await chromium.close();
await server.close();
const native = execFileSync(join(WEB, "..", ".venv", "bin", "python"), ["-c", `
import sys, tempfile, json, time
sys.path.insert(0, ${JSON.stringify(join(WEB, "py"))})
from node.crypto._nacl import NaclSuite
SUITE = NaclSuite()
import os; os.chdir(tempfile.mkdtemp())
${WORK.replace("/data/bench", "bench").replace("\njson.dumps(", "\nRESULT = json.dumps(")}
print(RESULT)
`], { encoding: "utf8" });
console.log(JSON.stringify({ case: "native", runtime: "cpython + pynacl", ...JSON.parse(native) }));
