// The built web app in Debian's headless Chromium: create an account, a group, write a message,
// see the invitation (text and QR) and the members; everything survives a reload (IndexedDB);
// the account file restores the account in another browser profile; every request stays on the
// page's own origin, and after the first load the app starts again with the network gone; an
// invitation's QR code shown to Chromium's fake camera is read (jsQR) and joined.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { serveStatic } from "../src/serve.mjs";
import { launchChromium } from "../src/chromium.mjs";
import { waitReady, text, fill } from "./page_helpers.mjs";
import { writeQrY4m } from "./qr_y4m.mjs";
import { REPO } from "./helpers.mjs";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
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

test("account, group, message, invitation, members; kept over a reload; offline; own origin", async () => {
  const page = await chromium.browser.newPage();
  await page.setViewport({ width: 360, height: 740 });
  const foreign = [];
  page.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith(server.url) && !url.startsWith("data:") && !url.startsWith("blob:")) foreign.push(url);
  });
  await page.goto(server.url, { waitUntil: "load" });
  assert.match(await waitReady(page), /^Ready/);
  await page.waitForSelector("#start:not([hidden])");
  if (process.env.WAYSTATION_SCREENSHOTS) await page.screenshot({ path: join(process.env.WAYSTATION_SCREENSHOTS, "web-start.png") });

  await fill(page, "#name", "Ana");
  await page.click("#create");
  await page.waitForSelector("#home:not([hidden])");
  assert.equal(await text(page, "#account-name"), "Ana");

  await page.click("#home details:nth-of-type(2) summary");
  await fill(page, "#new-group", "Allotment");
  await page.click("#create-group");
  await page.waitForSelector("#group:not([hidden])");
  assert.equal(await text(page, "#group-name"), "Allotment");
  await fill(page, "#message", "Water the beans at six");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 1);
  assert.match(await text(page, "#messages li"), /Ana.*Water the beans at six/s);
  assert.match(await text(page, "#members"), /Ana \(you\)/);
  const invitation = await text(page, "#invitation-text");
  assert.ok(invitation.length > 40, invitation);
  assert.ok(await page.$("#qr svg"), "no QR code");
  if (process.env.WAYSTATION_SCREENSHOTS) {
    await page.click("#invite-box summary");
    await page.screenshot({ path: join(process.env.WAYSTATION_SCREENSHOTS, "web-group.png"), fullPage: true });
  }
  // one-handed at 360 px: nothing wider than the screen
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360));

  // kept in IndexedDB: a reload finds the account, the group and the message
  await page.reload({ waitUntil: "load" });
  assert.match(await waitReady(page), /^Ready/);
  await page.waitForSelector("#home:not([hidden])");
  assert.equal(await text(page, "#groups button"), "Allotment");
  if (process.env.WAYSTATION_SCREENSHOTS) await page.screenshot({ path: join(process.env.WAYSTATION_SCREENSHOTS, "web-home.png") });

  // the account file, sealed under a passphrase, downloaded as a person would
  const downloads = mkdtempSync(join(tmpdir(), "waystation-web-downloads-"));
  const cdp = await page.createCDPSession();
  await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads, eventsEnabled: true });
  const downloaded = new Promise((resolve) => cdp.on("Browser.downloadProgress", (e) => { if (e.state === "completed") resolve(); }));
  await page.click("#home details:nth-of-type(4) summary");
  await fill(page, "#export-pass", "correct horse");
  await page.click("#export");
  await downloaded;
  const file = join(downloads, "account.waystation");
  assert.ok(readFileSync(file).subarray(0, 8).equals(Buffer.from("WSACCT01")));

  assert.deepEqual(foreign, []);
  for (const name of ["/app.js", "/waystation-py.zip", "/pyodide/pyodide.asm.wasm", "/pyodide/python_stdlib.zip"]) {
    assert.ok(server.requests.includes(name), `${name} was never requested`);
  }
  // the service worker has cached everything: the app starts with the server's network gone
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  const seen = server.requests.length;
  await page.setOfflineMode(true);
  await page.reload({ waitUntil: "load" });
  assert.match(await waitReady(page), /^Ready/);
  assert.equal(server.requests.length, seen, "requests reached the server while offline");
  await page.close();

  // restore in a fresh profile (another browser context): wrong passphrase first
  const context = await chromium.browser.createBrowserContext();
  const fresh = await context.newPage();
  await fresh.goto(server.url, { waitUntil: "load" });
  assert.match(await waitReady(fresh), /^Ready/);
  await fresh.waitForSelector("#start:not([hidden])");
  await fresh.click("#start summary");
  await (await fresh.$("#import-file")).uploadFile(file);
  await fill(fresh, "#import-pass", "wrong horse");
  await fresh.click("#import");
  await fresh.waitForSelector("#error:not([hidden])", { timeout: 60_000 });
  assert.match(await text(fresh, "#error"), /wrong passphrase/);
  await fill(fresh, "#import-pass", "correct horse");
  await fresh.click("#import");
  await fresh.waitForSelector("#home:not([hidden])", { timeout: 60_000 });
  assert.equal(await text(fresh, "#account-name"), "Ana");
  await fresh.click("#groups button");
  await fresh.waitForFunction(() => document.querySelectorAll("#messages li").length === 1);
  assert.match(await text(fresh, "#messages li"), /Water the beans at six/);
  await context.close();
  rmSync(downloads, { recursive: true, force: true });
});

test("camera: an invitation's QR code scanned (Chromium's fake camera), then joined", async () => {
  // a real invitation, from a desktop member (`waystation peer`), shown to the fake camera
  const home = mkdtempSync(join(tmpdir(), "waystation-web-camera-"));
  const peer = (...args) => execFileSync(join(REPO, ".venv", "bin", "waystation"), ["peer", ...args, "--data", join(home, "alice")],
    { encoding: "utf8", env: { ...process.env, XDG_DATA_HOME: home } }).trim();
  peer("init", "--name", "Alice");
  const group = peer("group", "create", "Seed swap");
  const invitation = peer("invite", group);
  const picture = join(home, "invitation.y4m");
  const { modules } = writeQrY4m(picture, invitation);
  const camera = await launchChromium({ camera: picture });
  try {
    const page = await camera.browser.newPage();
    await page.setViewport({ width: 360, height: 740 });
    await page.goto(server.url, { waitUntil: "load" });
    assert.match(await waitReady(page), /^Ready/);
    await page.waitForSelector("#start:not([hidden])");
    await fill(page, "#name", "Bea");
    await page.click("#create");
    await page.waitForSelector("#home:not([hidden])");
    await page.click("#home details:nth-of-type(3) summary"); // Join a group
    await page.click("#scan-invitation");
    await page.waitForFunction(() => document.getElementById("invitation-in").value.length > 0, { timeout: 60_000 });
    assert.equal(await page.$eval("#invitation-in", (e) => e.value), invitation, `QR of ${modules} modules`);
    const decoder = await page.$eval("#scanner", (e) => e.dataset.decoder);
    const native = await page.evaluate(() => "BarcodeDetector" in window);
    assert.equal(decoder, native ? decoder : "jsQR"); // no BarcodeDetector in Chromium on Linux
    assert.ok(await page.$eval("#scanner", (e) => e.hidden), "the camera is stopped");
    await page.click("#join");
    await page.waitForSelector("#group:not([hidden])");
    assert.equal(await text(page, "#group-name"), "Seed swap");
  } finally {
    await camera.close();
    rmSync(home, { recursive: true, force: true });
  }
});
