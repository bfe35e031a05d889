// The page: start Python (the project's own member code in Pyodide), open the account kept in
// IndexedDB, and show its screens: create or restore an account, groups, a group's messages,
// members and invitation (text and QR), Bluetooth sync, and the account file. Everything that is
// protocol or storage format is Python (web/py/waystation_web/); this file is only the browser.
import qrcode from "qrcode-generator";
import { startPython, PYTHON_ROOT } from "./runtime.mjs";
import { openStorage, ACCOUNT_DIR } from "./storage.mjs";
import { bluetoothSupported, pairOverBluetooth, syncOverBluetooth } from "./ble.mjs";
import { cameraSupported, scanQr } from "./scan.mjs";

async function loadZipSources(pyodide) {
  const response = await fetch("./waystation-py.zip");
  if (!response.ok) throw new Error(`waystation-py.zip: HTTP ${response.status}`);
  pyodide.unpackArchive(await response.arrayBuffer(), "zip", { extractDir: PYTHON_ROOT });
}

/** Start the runtime; resolves to {pyodide, ms}. Exposed for the benchmarks and tests. */
export async function start() {
  const t0 = performance.now();
  const indexURL = new URL("./pyodide/", document.baseURI).href;
  const pyodide = await startPython({ loadSources: loadZipSources, indexURL });
  pyodide.runPython(`
import waystation_sodium
from waystation_web.suite import JsSuite
from waystation_web.backup import js_kdf
from waystation_web.member import WebMember
SUITE = JsSuite(waystation_sodium)
KDF = js_kdf(waystation_sodium)
`);
  return { pyodide, ms: performance.now() - t0 };
}

const $ = (id) => document.getElementById(id);
const el = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; };
const SCREENS = ["start", "home", "group"];

function show(screen) {
  for (const s of SCREENS) $(s).hidden = s !== screen;
  $("back").hidden = screen !== "group";
  $("error").hidden = true;
}

function fail(err) {
  const text = String(err && err.message ? err.message : err);
  // a Python error arrives with its traceback: show its last line, the message
  $("error").textContent = text.trim().split("\n").pop();
  $("error").hidden = false;
}

/** Run `fn` for a button: disabled while it runs, errors shown in the banner. */
function action(id, fn) {
  $(id).addEventListener("click", async () => {
    $(id).disabled = true;
    $("error").hidden = true;
    try { await fn(); } catch (err) { fail(err); } finally { $(id).disabled = false; }
  });
}

class App {
  constructor(runtime, storage) {
    this.py = runtime.pyodide;
    this.storage = storage;
    this.member = null;
    this.group = null;
  }

  open() {
    const exists = this.py.FS.analyzePath(`${ACCOUNT_DIR}/member.sqlite3`).exists;
    if (exists) this.member = this.py.globals.get("WebMember")(this.py.globals.get("SUITE"), ACCOUNT_DIR);
    this.home();
  }

  home() {
    if (!this.member) { show("start"); return; }
    this.group = null;
    show("home");
    $("account-name").textContent = JSON.parse(this.member.account_json()).name;
    const groups = JSON.parse(this.member.groups_json());
    $("groups").replaceChildren(...groups.map(([id, name]) => {
      const b = el("button", name);
      b.dataset.group = id;
      b.onclick = () => this.openGroup(id);
      return b;
    }));
    $("no-groups").hidden = groups.length > 0;
    $("storage").textContent = this.storage.persisted
      ? "Stored on this phone (the browser keeps it)."
      : "Stored on this phone; the browser may clear it when space runs low: keep an account file.";
  }

  openGroup(id) {
    this.group = id;
    show("group");
    const name = JSON.parse(this.member.groups_json()).find(([gid]) => gid === id)?.[1] ?? id;
    $("group-name").textContent = name;
    this.showMessages();
    const members = JSON.parse(this.member.members_json(id));
    $("members").replaceChildren(...members.map((m) => el("li",
      `${m.names.join(", ") || "(name not known yet)"}${m.me ? " (you)" : ""} · ${m.member.slice(0, 8)}`)));
    const invitation = this.member.invitation(id);
    $("invitation-text").textContent = invitation;
    const qr = qrcode(0, "L");
    qr.addData(invitation);
    qr.make();
    $("qr").innerHTML = qr.createSvgTag({ cellSize: 4, margin: 16, scalable: true }); // quiet zone: 4 modules
  }

  showMessages() {
    const messages = JSON.parse(this.member.read_json(this.group));
    $("messages").replaceChildren(...messages.map((m) => {
      const li = el("li");
      li.className = m.unreadable ? "msg unreadable" : "msg";
      li.append(el("b", m.author), el("span", m.body));
      return li;
    }));
    $("no-messages").hidden = messages.length > 0;
    $("messages").lastElementChild?.scrollIntoView({ block: "end" });
  }
}

function wire(app) {
  const py = app.py;
  $("back").onclick = () => app.home();
  action("create", async () => {
    const name = $("name").value;
    app.member = py.globals.get("WebMember")(py.globals.get("SUITE"), ACCOUNT_DIR, name);
    await app.storage.save();
    app.home();
  });
  action("import", async () => {
    const file = $("import-file").files[0];
    if (!file) throw new Error("Choose the account file first.");
    const bytes = new Uint8Array(await file.arrayBuffer());
    app.member = py.globals.get("WebMember").import_account(
      py.globals.get("SUITE"), py.globals.get("KDF"), py.toPy(bytes), $("import-pass").value, ACCOUNT_DIR);
    await app.storage.save();
    app.home();
  });
  action("create-group", async () => {
    const id = app.member.create_group($("new-group").value);
    $("new-group").value = "";
    await app.storage.save();
    app.openGroup(id);
  });
  action("join", async () => {
    const id = app.member.join($("invitation-in").value.trim());
    $("invitation-in").value = "";
    await app.storage.save();
    app.openGroup(id);
  });
  action("send", async () => {
    const text = $("message").value;
    if (!text.trim()) return;
    app.member.send(app.group, text);
    $("message").value = "";
    await app.storage.save();
    app.showMessages();
  });
  action("copy-invitation", async () => {
    await navigator.clipboard.writeText($("invitation-text").textContent);
  });
  action("export", async () => {
    const sealed = app.member.export_account(py.globals.get("KDF"), $("export-pass").value);
    const blob = new Blob([sealed.toJs()], { type: "application/octet-stream" });
    sealed.destroy();
    const link = $("export-link");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.hidden = false;
    link.click();
  });
  const runSync = async (choose) => {
    $("sync-progress").hidden = false;
    $("sync-progress").removeAttribute("value");
    try {
      const outcome = await syncOverBluetooth(app.member, {
        choose,
        progress: (text, fraction) => {
          $("sync-outcome").textContent = text;
          if (fraction !== undefined) $("sync-progress").value = fraction;
        },
      });
      $("sync-outcome").textContent = outcome.text;
      app.lastSync = outcome; // for the tests: which relay it was, the MTU packets were cut for
      if (outcome.relayName) {
        $("relay-name").textContent = outcome.relayName;
        $("sync-again").hidden = false;
      }
      await app.storage.save();
    } finally {
      $("sync-progress").hidden = true;
    }
  };
  action("pair", async () => {
    const progress = (t) => { $("sync-outcome").textContent = t; };
    const outcome = await pairOverBluetooth(app.member, {
      code: $("pair-code").value, fingerprint: $("pair-fingerprint").value,
      name: $("pair-name").value, progress,
    });
    $("sync-outcome").textContent = outcome.text;
    if (outcome.ok) {
      $("pair-code").value = "";
      $("relay-name").textContent = outcome.relayName;
      $("sync-again").hidden = false;
      await app.storage.save();
    }
  });
  // Scanning a QR code into a field (the invitation, or the relay's pairing QR text, which
  // pair_ble takes whole): the person checks it and presses Join / Pair.
  let stopScan = null;
  const scanInto = (button, field) => action(button, async () => {
    $("scanner").hidden = false;
    $("scan-status").textContent = "Point the camera at the QR code…";
    const cancel = new Promise((resolve) => { stopScan = resolve; });
    try {
      const { text, decoder } = await scanQr($("scan-video"), { cancel });
      $("scanner").dataset.decoder = decoder;
      if (text) $(field).value = text;
      $("scan-status").textContent = text ? "QR code read." : "No QR code read.";
    } finally {
      $("scanner").hidden = true;
      stopScan = null;
    }
  });
  $("scan-cancel").addEventListener("click", () => stopScan?.());
  scanInto("scan-invitation", "invitation-in");
  scanInto("scan-pair", "pair-code");
  if (cameraSupported()) for (const id of ["scan-invitation", "scan-pair"]) $(id).hidden = false;
  action("find-relay", () => runSync(true));
  action("sync-again", () => runSync(false));
  if (!bluetoothSupported()) {
    $("find-relay").disabled = true;
    $("pair").disabled = true;
    $("sync-outcome").textContent = "This browser has no Web Bluetooth (Chrome on Android or a laptop has it; Safari on iPhone does not).";
  }
}

const status = $("status");
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("./sw.js").catch((err) => { status.textContent = `Offline cache unavailable: ${err}`; });
}
window.waystation = start().then(
  async (runtime) => {
    const storage = await openStorage(runtime.pyodide);
    const app = new App(runtime, storage);
    wire(app);
    app.open();
    status.textContent = `Ready (Python started in ${Math.round(runtime.ms)} ms).`;
    status.hidden = true; // the text stays for the tests and the benchmark

    return { ...runtime, app };
  },
  (err) => { status.textContent = `Could not start: ${err}`; throw err; },
);
