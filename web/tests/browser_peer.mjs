// The built web app in headless Chromium with Web Bluetooth, driven as a person would (clicks
// and typing), one JSON command per stdin line, one JSON answer per stdout line (like
// web_peer.mjs). tests/radio/test_web_ble.py runs it with DBUS_SYSTEM_BUS_ADDRESS naming a
// private bus where BlueZoo and the relay's real GATT server live.
//
//   {"op": "init", "name": "Bea"}             create the account in the page
//   {"op": "join", "invitation": "..."}       -> the group id
//   {"op": "sync", "choose": true}            Find a relay (device chooser answered) and sync
//                                             -> {"ok", "text"} (the outcome the page shows),
//                                             "relay" (the paired relay it was, or ""), "mtu"
//   {"op": "pair", "code": "1234-5678", "fingerprint": "...", "name": "Bea's phone"}
//                                             -> {"ok", "text"}
//   {"op": "read", "group": "<id>"}           -> [{"author", "body"}] as the page shows them
//   {"op": "send", "group": "<id>", "text": "..."}
//   {"op": "screenshot", "path": "x.png"}
//   {"op": "metrics"}                         -> {"js_heap_mb", "wasm_mb"} (CDP Performance.getMetrics;
//                                             Pyodide's wasm memory) for bench/web_sync.py
import { createInterface } from "node:readline";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { serveStatic } from "../src/serve.mjs";
import { launchChromium } from "../src/chromium.mjs";
import { waitReady, text, fill } from "./page_helpers.mjs";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
const SYNC_MS = 150_000;
const out = mkdtempSync(join(tmpdir(), "waystation-web-build-"));
execFileSync(process.execPath, [join(WEB, "build.mjs"), out], { stdio: "ignore" });
const server = await serveStatic(out);
const chromium = await launchChromium({ bluetooth: true });
const page = await chromium.browser.newPage();
await page.setViewport({ width: 360, height: 740 });
page.on("console", (m) => process.stderr.write(`page: ${m.text()}\n`));
await page.goto(server.url, { waitUntil: "load" });
const status = await waitReady(page);
if (!status.startsWith("Ready")) throw new Error(status);

async function home() {
  if (!(await page.$eval("#back", (e) => e.hidden))) await page.click("#back");
  await page.waitForSelector("#home:not([hidden])");
}

async function openGroup(group) {
  await home();
  await page.click(`#groups button[data-group="${group}"]`);
  await page.waitForSelector("#group:not([hidden])");
}

async function failed() {
  return (await page.$eval("#error", (e) => e.hidden)) ? null : text(page, "#error");
}

/** Click `button`, then answer the browser's device chooser with the relay, as a person would. */
async function chooseRelay(button) {
  const [prompt] = await Promise.all([page.waitForDevicePrompt({ timeout: 30_000 }), page.click(button)]);
  const device = await prompt.waitForDevice(() => true, { timeout: 30_000 });
  await prompt.select(device);
}

/** Wait for #sync-outcome to change from `before` to a final text; {ok, text}. */
async function outcome(before, final) {
  await page.waitForFunction(
    (old, pattern) => {
      const t = document.getElementById("sync-outcome").textContent;
      return (t !== old && new RegExp(pattern).test(t)) || !document.getElementById("error").hidden;
    },
    { timeout: SYNC_MS }, before, final.source);
  const error = await failed();
  if (error) throw new Error(error);
  const t = await text(page, "#sync-outcome");
  return { ok: /^(Synced|Paired)/.test(t), text: t };
}

const OPS = {
  init: async ({ name }) => {
    await page.waitForSelector("#start:not([hidden])");
    await fill(page, "#name", name);
    await page.click("#create");
    await page.waitForSelector("#home:not([hidden])");
  },
  join: async ({ invitation }) => {
    await home();
    await page.$eval("#invitation-in", (e, v) => { e.closest("details").open = true; e.value = v; }, invitation);
    await page.click("#join");
    await page.waitForSelector("#group:not([hidden]), #error:not([hidden])");
    const error = await failed();
    if (error) throw new Error(error);
    return page.evaluate(() => window.waystation.then((w) => w.app.group));
  },
  pair: async ({ code, fingerprint, name }) => {
    await home();
    const before = await text(page, "#sync-outcome");
    await page.$eval("#pair-box", (e) => { e.open = true; });
    await fill(page, "#pair-code", code);
    await fill(page, "#pair-fingerprint", fingerprint ?? "");
    await fill(page, "#pair-name", name);
    await chooseRelay("#pair");
    return outcome(before, /^(Paired|Pairing with .* failed)/);
  },
  sync: async ({ choose }) => {
    await home();
    const before = await text(page, "#sync-outcome");
    if (choose) await chooseRelay("#find-relay");
    else await page.click("#sync-again");
    const shown = await outcome(before, /^(Synced|Sync with .* failed)/);
    const last = await page.evaluate(() => window.waystation.then((w) => w.app.lastSync));
    return { ...shown, relay: last.relay, mtu: last.mtu };
  },
  read: async ({ group }) => {
    await openGroup(group);
    return page.$$eval("#messages li", (items) => items.map((li) => ({
      author: li.querySelector("b").textContent, body: li.querySelector("span").textContent })));
  },
  send: async ({ group, text: body }) => {
    await openGroup(group);
    const count = await page.$$eval("#messages li", (l) => l.length);
    await fill(page, "#message", body);
    await page.click("#send");
    await page.waitForFunction((n) => document.querySelectorAll("#messages li").length > n, {}, count);
  },
  screenshot: async ({ path, full }) => { await page.screenshot({ path, fullPage: Boolean(full) }); },
  metrics: async () => {
    const m = await page.metrics();
    const wasm = await page.evaluate(() => window.waystation.then((w) => w.pyodide._module.HEAP8.length));
    return { js_heap_mb: +(m.JSHeapUsedSize / 2 ** 20).toFixed(1), wasm_mb: +(wasm / 2 ** 20).toFixed(1) };
  },
};

console.log(JSON.stringify({ ok: true, result: "ready" }));
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const { op, ...args } = JSON.parse(line);
  try {
    const result = await OPS[op](args);
    console.log(JSON.stringify({ ok: true, result: result ?? null }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, error: `${err && err.stack ? err.stack : err}` }));
  }
}
await chromium.close();
await server.close();
rmSync(out, { recursive: true, force: true });
