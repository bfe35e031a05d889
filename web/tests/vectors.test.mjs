// Every vector in tests/vectors, checked by the project's own code in Pyodide with the
// libsodium.js suite (web/py/waystation_web/vectors.py).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { python, repoText } from "./helpers.mjs";

let py;
before(async () => {
  py = await python();
  py.runPython(`
import waystation_sodium
from waystation_web.suite import JsSuite
from waystation_web import vectors
SUITE = JsSuite(waystation_sodium)
`);
});

test("every entry vector: codec, CID, signed bytes, signature, address; forgeries refused", () => {
  const text = repoText("tests", "vectors", "entries.json");
  const expected = JSON.parse(text).length;
  assert.ok(expected >= 20);
  py.globals.set("TEXT", text);
  assert.equal(py.runPython("vectors.check_entry_vectors(SUITE, TEXT)"), expected);
});

test("every Noise XX vector: handshake messages, handshake hash, transport messages", () => {
  const text = repoText("tests", "vectors", "noise", "xx_25519_chachapoly_blake2b.json");
  const expected = JSON.parse(text).vectors.length;
  assert.ok(expected >= 3);
  py.globals.set("TEXT", text);
  assert.equal(py.runPython("vectors.check_noise_vectors(SUITE, TEXT)"), expected);
});

test("a tampered vector is refused (the check can fail)", () => {
  const vectors = JSON.parse(repoText("tests", "vectors", "entries.json"));
  vectors[3].cid = vectors[4].cid;
  py.globals.set("TEXT", JSON.stringify(vectors));
  assert.throws(() => py.runPython("vectors.check_entry_vectors(SUITE, TEXT)"), /entry vector 3: CID/);
});
