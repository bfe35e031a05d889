// The built PWA shell in Debian's headless Chromium: Python starts in the page, the self-test
// writes and reads a message with the project's own code, every request stays on the page's own
// origin, and after the first load the app starts again with the network gone (service worker).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { serveStatic } from "../src/serve.mjs";
import { launchChromium } from "../src/chromium.mjs";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
const READY_MS = 120_000;
let out, server, chromium;

before(async () => {
  out = mkdtempSync(join(tmpdir(), "waystation-web-build-"));
  execFileSync(process.execPath, [join(WEB, "build.mjs"), out], { stdio: "ignore" });
  server = await serveStatic(out);
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await server?.close();
  rmSync(out, { recursive: true, force: true });
});

async function waitReady(page) {
  await page.waitForFunction(
    () => /^(Ready|Could not start)/.test(document.getElementById("status").textContent),
    { timeout: READY_MS });
  return page.$eval("#status", (e) => e.textContent);
}

test("the shell starts Python, runs the self-test, stays on its origin, works offline", async () => {
  const page = await chromium.browser.newPage();
  const foreign = [];
  page.on("request", (req) => {
    if (!req.url().startsWith(server.url) && !req.url().startsWith("data:")) foreign.push(req.url());
  });
  await page.goto(server.url, { waitUntil: "load" });
  assert.match(await waitReady(page), /^Ready/);

  await page.click("#selftest");
  await page.waitForFunction(() => document.getElementById("result").textContent.length > 0);
  const result = JSON.parse(await page.$eval("#result", (e) => e.textContent));
  assert.equal(result.messages.length, 1);
  assert.equal(result.messages[0].body, "hello");
  assert.equal(result.messages[0].author, "Me");
  assert.match(result.group, /^[0-9a-f]{64}$/);
  assert.deepEqual(foreign, []);
  for (const name of ["/app.js", "/waystation-py.zip", "/pyodide/pyodide.asm.wasm",
    "/pyodide/python_stdlib.zip"]) {
    assert.ok(server.requests.includes(name), `${name} was never requested`);
  }

  // the service worker has cached everything: the app starts with the server's network gone
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  const before = server.requests.length;
  await page.setOfflineMode(true);
  await page.reload({ waitUntil: "load" });
  assert.match(await waitReady(page), /^Ready/);
  assert.equal(server.requests.length, before, "requests reached the server while offline");
  await page.close();
});
