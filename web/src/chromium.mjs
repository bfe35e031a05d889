// Debian's headless Chromium through puppeteer-core, with the flags known to work on these
// machines (no background networking: the machine's network is closed) and a fresh profile.
import puppeteer from "puppeteer-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.WAYSTATION_CHROMIUM ?? "/usr/bin/chromium";

/** Launch Chromium; resolves to {browser, close()} (close also removes the profile). */
export async function launchChromium() {
  const profile = mkdtempSync(join(tmpdir(), "waystation-web-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  return {
    browser,
    close: async () => { await browser.close(); rmSync(profile, { recursive: true, force: true }); },
  };
}
