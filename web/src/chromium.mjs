// Debian's headless Chromium through puppeteer-core, with the flags known to work on these
// machines (no background networking: the machine's network is closed) and a fresh profile.
import puppeteer from "puppeteer-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.WAYSTATION_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Launch Chromium; resolves to {browser, close()} (close also removes the profile).
 * @param {object} [options]
 * @param {boolean} [options.bluetooth] enable Web Bluetooth (BlueZ on DBUS_SYSTEM_BUS_ADDRESS)
 * @param {string} [options.camera] a .y4m file Chromium's fake camera shows (permission granted)
 */
export async function launchChromium({ bluetooth = false, camera = null } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "waystation-web-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ...(bluetooth ? ["--enable-experimental-web-platform-features"] : []),
      ...(camera ? ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        `--use-file-for-fake-video-capture=${camera}`] : [])],
  });
  return {
    browser,
    close: async () => { await browser.close(); rmSync(profile, { recursive: true, force: true }); },
  };
}
