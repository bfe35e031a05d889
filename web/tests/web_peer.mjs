// The web app's member code driven from Node, one JSON command per stdin line, one JSON answer
// per stdout line. tests/integration/test_web_interop.py drives it beside a real relay and a real
// `waystation peer`, as a person would drive the page.
//
//   {"op": "init", "name": "Bob"}        -> {"ok": true}
//   {"op": "group", "name": "friends"}   -> {"ok": true, "result": "<group id>"}
//   {"op": "invite"|"join"|"send"|"read"|"groups"|"sync", ...}  (see OPS below)
//   {"ok": false, "error": "..."} when a command fails.
//
// Pyodide's own output goes to stderr; stdout carries answers only.
import { createInterface } from "node:readline";
import { startPython } from "../src/runtime.mjs";
import { loadTreeSources } from "../src/node_sources.mjs";
import { openTcpStream } from "../src/node_tcp.mjs";

const py = await startPython({
  loadSources: loadTreeSources,
  stdout: (line) => process.stderr.write(line + "\n"),
});
py.runPython(`
import waystation_sodium
from waystation_web.suite import JsSuite
from waystation_web.member import WebMember
SUITE = JsSuite(waystation_sodium)
`);
let member = null;

const OPS = {
  init: ({ name, data }) => {
    member = py.globals.get("WebMember")(py.globals.get("SUITE"), data ?? "/data/member", name);
  },
  group: ({ name }) => member.create_group(name),
  invite: ({ group }) => member.invitation(group),
  join: ({ invitation }) => member.join(invitation),
  groups: () => JSON.parse(member.groups_json()),
  send: ({ group, text }) => member.send(group, text),
  read: ({ group }) => JSON.parse(member.read_json(group)),
  sync: async ({ relay, timeout }) => JSON.parse(await member.sync(openTcpStream, relay, timeout ?? 20)),
};

const lines = createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ok: true, result: "ready" }) + "\n");
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    const command = JSON.parse(line);
    const op = OPS[command.op];
    if (!op) throw new Error(`unknown op ${JSON.stringify(command.op)}`);
    if (command.op !== "init" && member === null) throw new Error("no account: send init first");
    answer = { ok: true, result: (await op(command)) ?? null };
  } catch (err) {
    answer = { ok: false, error: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
member?.close();
