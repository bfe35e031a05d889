"""Regenerate tests/vectors/entries.json: ipfs-log v2 entries as Berty writes them.

Usage (from the repository root):

    .venv/bin/python tools/gen_vectors.py            # rewrite tests/vectors/entries.json
    .venv/bin/python tools/gen_vectors.py --check    # exit 1 if the file is not what we generate

Everything is derived from fixed seeds (SHA-256 of labels below) and Ed25519 signing is
deterministic, so the output is the same byte for byte on every run; tests/test_vectors.py
regenerates it in memory and compares.

Groups are built as weshnet does: the group signing key is Ed25519.NewKeyFromSeed(secret) and
sign_pub its public key; log ids are orbit-db store addresses (node.crypto.address) for the app's
store types berty_group_metadata and berty_group_messages. Entries are appended with go-orbit-db's
rules (node.sync.log.append_plan: heads as next, Lamport time, refs with pointer count 64).

Each vector: "description", "log_id", "store_type", "group_pk" (hex), "sign_pub" (hex),
"payload_kind" ("orbitdb-op": the Go-marshalled operation {"op":"ADD","value":"<base64 std>"}
whose value stands for an opaque envelope; "raw": a raw string chosen to exercise Go's JSON
escaping), "block" (hex of the DAG-CBOR block), "cid" (base32), "signed_bytes" (hex of the Go
JSON the signature covers).
"""

import base64
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.crypto._nacl import NaclSuite  # noqa: E402
from node.crypto.address import MESSAGES_STORE, METADATA_STORE, store_address  # noqa: E402
from node.sync import gojson  # noqa: E402
from node.sync.entry import Entry, create_entry, signed_bytes  # noqa: E402
from node.sync.log import Log, append_plan  # noqa: E402

OUTPUT = ROOT / "tests" / "vectors" / "entries.json"

RAW_PAYLOADS = [
    ("HTML specials <, >, & (Go escapes them as \\u003c, \\u003e, \\u0026)", "<b>Tom & Jerry</b>"),
    ("U+2028 and U+2029 (Go escapes them)", "line\u2028separator\u2029paragraph"),
    ("quotes, backslash and control characters", 'say "hi"\\ \t\n\r\x01\x1f\x7f'),
    ("non-ASCII text and an astral-plane emoji", "héllo wörld — 日本語 🚀"),
]


def seed(label: str) -> bytes:
    return hashlib.sha256(b"waystation test vectors: " + label.encode()).digest()


def op_payload(envelope: bytes) -> str:
    """orbit-db's operation JSON as Go marshals the struct (op, value; key/docs omitted)."""
    value = base64.b64encode(envelope).decode()
    return gojson.dumps({"op": "ADD", "value": value}).decode()


class Writer:
    """Appends to one log the way go-orbit-db does and records vectors."""

    def __init__(self, suite: NaclSuite, group: str, store_type: str, out: list[dict[str, str]]):
        self.suite = suite
        group_key_pub, _ = suite.ed25519_keypair(seed(group + " group key"))
        secret = seed(group + " secret")
        self.sign_pub, self.sign_sk = suite.ed25519_keypair(secret)
        self.group_pk = group_key_pub
        self.store_type = store_type
        self.log_id = store_address(suite, self.group_pk, self.sign_pub, store_type)
        self.log = Log(self.log_id)
        self.out = out
        self.count = 0

    def sign(self, message: bytes) -> bytes:
        return self.suite.ed25519_sign(self.sign_sk, message)

    def envelope(self) -> bytes:
        self.count += 1
        material = seed("%s %s envelope %d" % (self.log_id, self.store_type, self.count))
        return (material * 4)[: 40 + self.count * 7]

    def append(self, description: str, payload: str | None = None) -> Entry:
        next_cids, refs, time = append_plan(self.log.entries, self.log.clock_time)
        return self._write(description, payload, next_cids, refs, time)

    def fork(self, descriptions: list[str]) -> list[Entry]:
        """Concurrent writers: every entry gets the same next, refs and time."""
        next_cids, refs, time = append_plan(self.log.entries, self.log.clock_time)
        base = self.log
        written = []
        for description in descriptions:
            self.log = base
            written.append(self._write(description, None, next_cids, refs, time))
        view = dict(base.entries)
        for entry in written:
            view[entry.cid] = entry
        self.log = Log(self.log_id, view, base.clock_time)
        return written

    def _write(
        self, description: str, payload: str | None, next_cids: list, refs: list, time: int
    ) -> Entry:
        kind = "raw" if payload is not None else "orbitdb-op"
        if payload is None:
            payload = op_payload(self.envelope())
        entry = create_entry(self.log_id, payload, next_cids, refs, time, self.sign_pub, self.sign)
        self.log = self.log.append(entry)
        self.out.append(
            {
                "description": "%s (%s, time %d, %d next, %d refs)"
                % (description, self.store_type, time, len(entry.next), len(entry.refs)),
                "log_id": self.log_id,
                "store_type": self.store_type,
                "group_pk": self.group_pk.hex(),
                "sign_pub": self.sign_pub.hex(),
                "payload_kind": kind,
                "block": entry.block.hex(),
                "cid": str(entry.cid),
                "signed_bytes": signed_bytes(entry).hex(),
            }
        )
        return entry


def generate() -> list[dict[str, str]]:
    """All vectors, in a fixed order."""
    suite = NaclSuite()
    out: list[dict[str, str]] = []

    messages = Writer(suite, "group A", MESSAGES_STORE, out)
    messages.append("first entry of a log: empty next and refs")
    for i in range(2, 13):
        messages.append("chain entry %d" % i)
    messages.fork(["concurrent head 1 of 2", "concurrent head 2 of 2"])
    messages.append("merge of two concurrent heads")

    metadata = Writer(suite, "group A", METADATA_STORE, out)
    metadata.append("first metadata entry")
    metadata.append("second metadata entry")
    for description, text in RAW_PAYLOADS:
        metadata.append("raw payload: " + description, text)

    other = Writer(suite, "group B", METADATA_STORE, out)
    other.append("another group: first entry")
    other.append("another group: second entry")
    other.fork(["another group: concurrent %d of 3" % i for i in (1, 2, 3)])
    return out


def render(vectors: list[dict[str, str]]) -> str:
    return json.dumps(vectors, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    text = render(generate())
    if "--check" in argv:
        if OUTPUT.read_text() != text:
            print("%s is not what tools/gen_vectors.py generates" % OUTPUT)
            return 1
        print("%s is up to date" % OUTPUT)
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print("wrote %d vectors to %s" % (text.count('"block"'), OUTPUT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
