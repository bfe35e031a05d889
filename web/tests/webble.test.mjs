// The web-only parts of Bluetooth sync and of the account file, under Node:
// - waystation_web.webble (Pyodide) on a fake GATT object: packets cut for the MTU and tagged,
//   other centrals' notifications dropped, a full relay and a foreign INFO refused (the
//   connection closed), a connection lost mid-frame is a LinkError; packets cut for the MTU the
//   relay's INFO says (23 when it says nothing);
// - waystation_web.member: a paired relay recognised by the token in its INFO (its pin and our
//   device key used), any other token "not your relay";
// - web/src/ble.mjs retries a lost link by reconnecting, and reports a clear outcome;
// - the account file: Argon2id of libsodium.js equals PyNaCl's; export/import round trip; a wrong
//   passphrase refused;
// - the HKDF stand-in that lets spake2 run in Pyodide (waystation_web.spake2_deps): RFC 5869 A.3,
//   and a SPAKE2 exchange completes with equal keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { python } from "./helpers.mjs";
import { syncOverBluetooth } from "../src/ble.mjs";

let shared = null;
const pyodide = () => (shared ??= python()); // one Pyodide for the file

function fakeGatt(info) {
  const gatt = {
    info: Uint8Array.from(info), label: "ble:web/fake", written: [], closed: 0, listeners: null,
    write(packets) { for (const p of packets) gatt.written.push(Uint8Array.from(p)); return Promise.resolve(); },
    listen(onPacket, onEnd) { gatt.listeners = { onPacket, onEnd }; },
    close() { gatt.closed += 1; return Promise.resolve(); },
  };
  return gatt;
}

const INFO = (linkId, version = 1) => [version, linkId, 0, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];

test("webble: MTU-sized tagged writes, foreign tags dropped, full relay and lost link", async () => {
  const py = await pyodide();
  const gatts = [];
  py.globals.set("open_gatt", async () => { const g = fakeGatt(INFO(gatts.length ? 0 : 7)); gatts.push(g); return g; });
  py.globals.set("gatts", gatts);
  const result = JSON.parse(await py.runPythonAsync(`
import json
from node.errors import LinkError
from node.link import PeerAddress
from node.proto.fragment import Fragmenter
from pyodide.ffi import to_js
from waystation_web.webble import WebBleDialer
dialer = WebBleDialer(open_gatt, 1 << 18, 23)
link = await dialer.dial(PeerAddress.parse("ble:web"), 5)
await link.send([bytes(range(200))])
g = gatts[0]
written = [bytes(p.to_py()) for p in g.written]
frame = b"from the relay " * 10
packets = [bytes([7]) + f for f in Fragmenter().fragment(frame, 100)]
g.listeners.onPacket(to_js(bytes([9]) + packets[0][1:]))  # another central's: dropped
for p in packets:
    g.listeners.onPacket(to_js(p))
got = await link.recv()
g.listeners.onPacket(to_js(packets[0]))  # a frame begins, then the connection is gone
g.listeners.onEnd("disconnected")
try:
    await link.recv()
    lost = "no error"
except LinkError as exc:
    lost = str(exc)
await link.close()
try:
    await dialer.dial(PeerAddress.parse("ble:web"), 5)
    full = "no error"
except LinkError as exc:
    full = exc.cause
json.dumps({"sizes": sorted({len(p) for p in written}), "tags": sorted({p[0] for p in written}),
            "same": got == frame, "lost": lost, "full": full, "closed": [x.closed for x in gatts]})
`));
  assert.ok(result.sizes.every((n) => n <= 20), `packets over MTU 23: ${result.sizes}`);
  assert.deepEqual(result.tags, [7]);
  assert.equal(result.same, true);
  assert.match(result.lost, /disconnected in the middle of a frame/);
  assert.equal(result.full, "full");
  assert.deepEqual(result.closed, [1, 1]);
});

const withMtu = (linkId, mtu) => [...INFO(linkId), mtu >> 8, mtu & 0xff];

test("webble: packets cut for the MTU the relay's INFO says, else for 23", async () => {
  const py = await pyodide();
  const infos = [withMtu(3, 185), INFO(3), withMtu(3, 0)];
  const gatts = [];
  py.globals.set("open_gatt", async () => { const g = fakeGatt(infos.shift()); gatts.push(g); return g; });
  py.globals.set("gatts", gatts);
  const result = JSON.parse(await py.runPythonAsync(`
import json
from node.link import PeerAddress
from waystation_web.webble import WebBleDialer
seen = []
for i in range(3):
    dialer = WebBleDialer(open_gatt, 1 << 18)  # mtu 0: as the relay says
    link = await dialer.dial(PeerAddress.parse("ble:web"), 5)
    await link.send([bytes(1000)])
    seen.append([dialer.info.mtu, max(len(p.to_py()) for p in gatts[i].written)])
    await link.close()
json.dumps(seen)
`));
  assert.deepEqual(result, [[185, 182], [0, 20], [0, 20]]); // a packet fills the ATT payload, MTU - 3
});

test("member: a paired relay is recognised by its token; any other is not your relay", async () => {
  const py = await pyodide();
  py.globals.set("make_gatt", (info) => {
    const g = fakeGatt(info.toJs());
    g.write = () => { g.listeners.onEnd("disconnected"); return Promise.resolve(); }; // a quick end
    return g;
  });
  const result = JSON.parse(await py.runPythonAsync(`
import json, time, waystation_sodium
from node.app.pair_client import RelayPin, save_pin
from node.crypto.rendezvous import TOKEN_INTERVAL, discovery_key, relay_token, round_period
from node.link import PeerAddress
from waystation_web.member import WebMember
from waystation_web.suite import JsSuite
m = WebMember(JsSuite(waystation_sodium), "/data/tokens", "Tia")
key, stranger = discovery_key(bytes(range(32))), discovery_key(bytes(32))
save_pin(m.data_dir, PeerAddress("ble", "fp-mine"), RelayPin("fp-mine", bytes(32), key))
outcomes = []
for k in (key, stranger):
    token = relay_token(k, round_period(int(time.time()), TOKEN_INTERVAL))
    info = bytes([1, 5, 0, 4, 0, 0]) + token + (247).to_bytes(2, "big")
    async def open_gatt(ms, info=info):
        return make_gatt(info)
    outcomes.append(json.loads(await m.sync_ble(open_gatt, 10)))
m.close()
json.dumps({"relays": json.loads(m.relays_json()),
            "seen": [[o["ok"], o["relay"], o["mtu"]] for o in outcomes]})
`));
  assert.deepEqual(result.relays, ["fp-mine"]);
  assert.deepEqual(result.seen, [[false, "fp-mine", 247], [false, "", 247]]);
});

test("ble.mjs: a lost link is retried by reconnecting; the outcome says what happened", async () => {
  const device = { name: "relay-7", id: "x", gatt: {} };
  const asked = [];
  const original = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", {
    value: { bluetooth: { requestDevice: async (o) => { asked.push(o); return device; } } },
    configurable: true,
  });
  const answers = [
    { ok: false, reason: "ble:web/relay-7: disconnected in the middle of a frame" },
    { ok: true, reason: "", sent: 2, received: 5, opened: 1, rounds: 1, relay: "ab12-cd34" },
  ];
  const member = { sync_ble: async () => JSON.stringify(answers.shift()) };
  const seen = [];
  const outcome = await syncOverBluetooth(member, { choose: true, progress: (t) => seen.push(t) });
  assert.equal(outcome.ok, true);
  assert.equal(outcome.text, "Synced with your relay relay-7 (key ab12-cd34): 2 sent, 5 received, 1 new messages.");
  assert.deepEqual(asked[0].filters, [{ services: ["6b1d5a40-3c8e-4f7a-9b52-57a7c0de0001"] }]);
  assert.ok(seen.some((t) => /reconnecting to relay-7 \(try 2 of 3\)/.test(t)), seen.join("\n"));

  const failing = { sync_ble: async () => JSON.stringify({ ok: false, reason: "timed out" }) };
  const bad = await syncOverBluetooth(failing, { choose: false, progress: () => {} });
  assert.equal(bad.ok, false);
  assert.match(bad.text, /^Sync with relay-7 failed: timed out\./);
  assert.equal(asked.length, 1, "the relay chosen before is used again");
  if (original) Object.defineProperty(globalThis, "navigator", original);
  else delete globalThis.navigator;
});

test("account file: Argon2id as PyNaCl, round trip, wrong passphrase refused", async () => {
  const py = await pyodide();
  const result = JSON.parse(await py.runPythonAsync(`
import json, waystation_sodium
from pathlib import Path
from waystation_web.backup import js_kdf
from waystation_web.member import WebMember
from waystation_web.suite import JsSuite
suite, kdf = JsSuite(waystation_sodium), js_kdf(waystation_sodium)
vector = kdf(b"correct horse", bytes(range(16))).hex()
m = WebMember(suite, "/data/a", "Ana")
g = m.create_group("kept")
m.send(g, "in the file")
sealed = m.export_account(kdf, "correct horse")
m.send(g, "still works after export")
m.close()
try:
    WebMember.import_account(suite, kdf, sealed, "wrong horse", "/data/b")
    wrong = "no error"
except Exception as exc:
    wrong = str(exc)
b = WebMember.import_account(suite, kdf, sealed, "correct horse", "/data/c")
json.dumps({"vector": vector, "wrong": wrong, "magic": sealed[:8].decode(),
            "account": json.loads(b.account_json()), "bodies": [x["body"] for x in json.loads(b.read_json(g))]})
`));
  assert.equal(result.vector, "9aab5a81db651bf866ff7b6169794d2ad9bb00f3d95177925a5fca692a34dbd1"); // PyNaCl argon2id.kdf
  assert.equal(result.magic, "WSACCT01");
  assert.match(result.wrong, /wrong passphrase/);
  assert.deepEqual(result.account, { name: "Ana" });
  assert.deepEqual(result.bodies, ["in the file"]);
});

test("spake2 in Pyodide: HKDF stand-in on RFC 5869 A.3; both sides agree", async () => {
  const py = await pyodide();
  const result = JSON.parse(py.runPython(`
import json
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf import hkdf
from node.app.pake import Spake2Side
okm = hkdf.HKDF(algorithm=hashes.SHA256(), length=42, salt=b"", info=b"").derive(b"\\x0b" * 22)
a = Spake2Side("A", b"12345678", b"id a", b"id b")
b = Spake2Side("B", b"12345678", b"id a", b"id b")
ma, mb = a.start(), b.start()
json.dumps({"okm": okm.hex(), "same": a.finish(mb) == b.finish(ma)})
`));
  assert.equal(result.okm, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
  assert.equal(result.same, true);
});
