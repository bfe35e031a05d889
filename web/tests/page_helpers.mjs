// Shared by the browser tests: waiting for the page's Python, reading and filling elements.
const READY_MS = 120_000;

/** Wait until the page's runtime started (or failed); resolves to the status text. */
export async function waitReady(page) {
  await page.waitForFunction(
    () => /^(Ready|Could not start)/.test(document.getElementById("status").textContent),
    { timeout: READY_MS });
  return page.$eval("#status", (e) => e.textContent);
}

/** The text content of the first element matching `selector`. */
export function text(page, selector) {
  return page.$eval(selector, (e) => e.textContent);
}

/** Replace the value of an input or textarea, as typing would. */
export async function fill(page, selector, value) {
  await page.$eval(selector, (e) => { e.value = ""; });
  await page.type(selector, value);
}
