// Web Bluetooth: only what a browser must do. Choose a relay (`requestDevice` filtered on our
// service UUID), connect, read INFO, subscribe to DATA_OUT, write packets to DATA_IN with
// write-without-response. The link itself (fragments, reassembly, the session, sync) is the
// project's Python (web/py/waystation_web/webble.py, node.radio.link.BleLink), and so is knowing
// which relay it is (by the token in INFO: waystation_web.member) and the MTU to cut packets for
// (the one the relay says in INFO). A lost link is retried by reconnecting: reconciliation sends
// only what is still missing (docs/ble.md §1.3).

export const SERVICE_UUID = "6b1d5a40-3c8e-4f7a-9b52-57a7c0de0001";
export const DATA_IN_UUID = "6b1d5a40-3c8e-4f7a-9b52-57a7c0de0002";
export const DATA_OUT_UUID = "6b1d5a40-3c8e-4f7a-9b52-57a7c0de0003";
export const INFO_UUID = "6b1d5a40-3c8e-4f7a-9b52-57a7c0de0004";
const SYNC_TIMEOUT_S = 120;
const ATTEMPTS = 3;
const MTU = 0; // 0: cut packets for the MTU the relay says it sees (INFO), else 23 (docs/ble.md §7)

export function bluetoothSupported() {
  return typeof navigator !== "undefined" && Boolean(navigator.bluetooth);
}

function withTimeout(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Open a GATT link to `device`: the object web/py/waystation_web/webble.py expects. */
async function openGatt(device, timeoutMs) {
  const server = await withTimeout(device.gatt.connect(), timeoutMs, "connect");
  try {
    const service = await server.getPrimaryService(SERVICE_UUID);
    const [dataIn, dataOut, infoChar] = await Promise.all(
      [DATA_IN_UUID, DATA_OUT_UUID, INFO_UUID].map((u) => service.getCharacteristic(u)));
    const info = new Uint8Array((await infoChar.readValue()).buffer);
    const early = [];
    let onPacket = (value) => early.push(value);
    let onEnd = null;
    const notified = (event) => onPacket(new Uint8Array(event.target.value.buffer.slice(0)));
    const gone = () => onEnd?.("disconnected");
    dataOut.addEventListener("characteristicvaluechanged", notified);
    device.addEventListener("gattserverdisconnected", gone);
    await dataOut.startNotifications();
    let chain = Promise.resolve();
    return {
      info,
      label: `ble:web/${device.name || device.id}`,
      listen(packet, end) {
        onPacket = packet;
        onEnd = end;
        for (const value of early.splice(0)) packet(value);
        if (!device.gatt.connected) end("disconnected");
      },
      write(packets) {
        const list = Array.from(packets);
        chain = chain.then(async () => {
          for (const p of list) await dataIn.writeValueWithoutResponse(p);
        });
        return chain;
      },
      async close() {
        dataOut.removeEventListener("characteristicvaluechanged", notified);
        device.removeEventListener("gattserverdisconnected", gone);
        if (device.gatt.connected) device.gatt.disconnect();
      },
    };
  } catch (err) {
    if (device.gatt.connected) device.gatt.disconnect();
    throw err;
  }
}

let chosen = null;

async function chooseRelay(progress) {
  progress("Choose your relay in the list the browser shows…");
  chosen = await navigator.bluetooth.requestDevice({ filters: [{ services: [SERVICE_UUID] }] });
  return chosen;
}

/**
 * Pair with a relay over Bluetooth on the code (or QR text) from its console.
 * @returns {Promise<{ok: boolean, text: string, relayName: string}>}
 */
export async function pairOverBluetooth(member, { code, fingerprint, name, progress }) {
  if (!bluetoothSupported()) throw new Error("This browser has no Web Bluetooth.");
  const device = await chooseRelay(progress);
  const relayName = device.name || "relay";
  progress(`Pairing with ${relayName}…`);
  const r = JSON.parse(await member.pair_ble((ms) => openGatt(device, ms), code, name,
    fingerprint, SYNC_TIMEOUT_S));
  const text = r.ok ? `Paired with ${relayName} (key ${r.fingerprint}).` : `Pairing with ${relayName} failed: ${r.reason}.`;
  return { ok: r.ok, text, relayName };
}

/**
 * Sync `member` (a Python WebMember) with a relay over Bluetooth.
 * @param {object} member the Python WebMember proxy
 * @param {object} options
 * @param {boolean} options.choose ask the person to pick a relay (else the last one)
 * @param {(text: string, fraction?: number) => void} options.progress what is happening
 * @returns {Promise<{ok: boolean, text: string, relayName?: string}>}
 */
export async function syncOverBluetooth(member, { choose, progress }) {
  if (!bluetoothSupported()) throw new Error("This browser has no Web Bluetooth.");
  const device = choose || !chosen ? await chooseRelay(progress) : chosen;
  const name = device.name || "relay";
  let last = null;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    progress(attempt === 1 ? `Connecting to ${name}…` : `Link lost; reconnecting to ${name} (try ${attempt} of ${ATTEMPTS})…`);
    const report = (sent, received) => progress(`Syncing with ${name}: ${sent} sent, ${received} received`);
    last = JSON.parse(await member.sync_ble((ms) => openGatt(device, ms), SYNC_TIMEOUT_S, MTU, report));
    if (last.ok) {
      const whose = last.relay ? `your relay ${name} (key ${last.relay})` : `${name}, not your relay (not paired with this phone)`;
      const text = `Synced with ${whose}: ${last.sent} sent, ${last.received} received, ${last.opened} new messages.`;
      return { ok: true, text, relayName: name, ...last };
    }
  }
  return { ok: false, text: `Sync with ${name} failed: ${last.reason}. Move closer to the relay and try again.`, relayName: name, ...last };
}
