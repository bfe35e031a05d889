# Portable tests for node.sync.entry: structure, encoding, strict decoding and the verify flow.
# MicroPython has no Ed25519, so signatures here come from a fake HMAC-based signer: the point is
# the structure and every check around the signature (tests/test_entry_integrity.py uses PyNaCl).

from harness import TestCase

from node._compat import hmac_sha256, sha256
from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError
from node.sync import dagcbor, gojson
from node.sync.cid import CID, RAW
from node.sync.entry import (
    IDENTITY_TYPE,
    Entry,
    Identity,
    _fast_fields,
    _generic_fields,
    create_entry,
    decode_entry,
    encode_entry,
    entry_key,
    signed_bytes,
    verify_entry,
)

LOG = "/orbitdb/bafyreitest/00ff_berty_group_messages"


def fake_pub(label):
    return sha256(b"fake key " + label)


def fake_sign_for(pub):
    def sign(message):
        return hmac_sha256(pub, message) + hmac_sha256(pub, b"2" + message)

    return sign


def fake_verify(pub, message, signature):
    return fake_sign_for(pub)(message) == signature


PUB = fake_pub(b"a")
SIGN = fake_sign_for(PUB)


def make(payload='{"op":"ADD","value":"AAEC"}', next=None, refs=None, time=1, log=LOG, pub=PUB):
    return create_entry(log, payload, next or [], refs or [], time, pub, fake_sign_for(pub))


def reencode(entry, **changes):
    """The entry's block decoded to a dict, changed (dotted keys for nested maps), re-encoded."""
    obj = dagcbor.decode(entry.block)
    for path, value in changes.items():
        target = obj
        parts = path.split("__")
        for part in parts[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return dagcbor.encode(obj)


_DELETE = object()


class CreateTests(TestCase):
    def test_create_decode_round_trip(self):
        parent = make(time=1)
        entry = make("x", [parent.cid], [parent.cid], 2)
        decoded = decode_entry(entry.block)
        self.assertEqual(decoded, entry)
        self.assertEqual(decoded.cid, entry.cid)
        self.assertEqual(decoded.log_id, LOG)
        self.assertEqual(decoded.payload, "x")
        self.assertEqual(decoded.next, [parent.cid])
        self.assertEqual(decoded.refs, [parent.cid])
        self.assertEqual(decoded.v, 2)
        self.assertEqual(decoded.key, b"\x08\x01\x12\x20" + PUB)
        self.assertEqual(decoded.clock_id, decoded.key)
        self.assertEqual(decoded.clock_time, 2)
        self.assertEqual(decoded.sign_pub, PUB)
        self.assertEqual(decoded.identity, entry.identity)
        self.assertEqual(encode_entry(decoded), entry.block)
        self.assertEqual(signed_bytes(decoded), signed_bytes(entry))

    def test_cid_is_dag_cbor_sha256_of_block(self):
        entry = make()
        self.assertEqual(entry.cid, CID.from_block(entry.block))
        self.assertEqual(entry.cid.codec, 0x71)
        self.assertTrue(str(entry.cid).startswith("bafyrei"))

    def test_block_field_order_is_canonical(self):
        entry = make()
        block = entry.block
        positions = [
            block.index(b"\x61v"),
            block.index(b"\x62id"),
            block.index(b"\x63key"),
            block.index(b"\x63sig"),
            block.index(b"\x64hash"),
            block.index(b"\x64next"),
            block.index(b"\x64refs"),
            block.index(b"\x65clock"),
            block.index(b"\x67payload"),
            block.index(b"\x68identity"),
        ]
        self.assertEqual(positions, sorted(positions))
        self.assertEqual(block[0], 0xAA)  # map of 10

    def test_identity_block(self):
        entry = make()
        ident = dagcbor.decode(entry.block)["identity"]
        self.assertEqual(ident["id"], PUB.hex())
        self.assertEqual(ident["type"], "betry_group_entry")
        self.assertEqual(ident["publicKey"], "08011220" + PUB.hex())
        self.assertEqual(ident["signatures"]["id"], SIGN(PUB.hex().encode()).hex())
        self.assertEqual(ident["signatures"]["publicKey"], "")

    def test_signed_bytes_exact(self):
        parent = make(time=1)
        entry = make("<a&b>\u2028", [parent.cid], [], 2)
        expected = (
            '{"clock":{"id":"08011220%s","time":2},"hash":null,"id":"%s","next":["%s"],'
            '"payload":"\\u003ca\\u0026b\\u003e\\u2028","refs":[],"v":2}'
            % (PUB.hex(), LOG, parent.cid.to_base58())
        ).encode()
        self.assertEqual(signed_bytes(entry), expected)
        self.assertEqual(entry.sig, SIGN(expected))

    def test_signed_bytes_match_generic_gojson(self):
        a = make(time=1)
        b = make("b", [a.cid], [], 2)
        entry = make('{"op":"ADD","value":"+/=="} "\\ \x01 é 🚀', [b.cid, a.cid], [a.cid], 3)
        generic = gojson.dumps(
            {
                "clock": {"id": entry.clock_id.hex(), "time": entry.clock_time},
                "hash": None,
                "id": entry.log_id,
                "next": [c.to_base58() for c in entry.next],
                "payload": entry.payload,
                "refs": [c.to_base58() for c in entry.refs],
                "v": 2,
            }
        )
        self.assertEqual(signed_bytes(entry), generic)
        self.assertEqual(signed_bytes(decode_entry(entry.block)), generic)

    def test_duplicate_links_dropped_like_go(self):
        a = make(time=1)
        b = make("b", time=1)
        entry = make("c", [a.cid, b.cid, a.cid], [b.cid, b.cid], 2)
        self.assertEqual(entry.next, [a.cid, b.cid])
        self.assertEqual(entry.refs, [b.cid])

    def test_create_rejects_bad_arguments(self):
        with self.assertRaises(LocalProtocolError):
            create_entry("", "p", [], [], 1, PUB, SIGN)
        with self.assertRaises(LocalProtocolError):
            create_entry(LOG, b"p", [], [], 1, PUB, SIGN)
        with self.assertRaises(LocalProtocolError):
            create_entry(LOG, "p", [], [], -1, PUB, SIGN)
        with self.assertRaises(LocalProtocolError):
            create_entry(LOG, "p", [], [], 1, PUB[:31], SIGN)
        with self.assertRaises(LocalProtocolError):
            create_entry(LOG, "p", ["bafy"], [], 1, PUB, SIGN)
        with self.assertRaises(LocalProtocolError):
            create_entry(LOG, "p", [], [], 1, PUB, lambda m: b"short")

    def test_entry_key(self):
        self.assertEqual(entry_key(PUB), b"\x08\x01\x12\x20" + PUB)
        with self.assertRaises(LocalProtocolError):
            entry_key(b"\x00" * 33)

    def test_sort_key_and_repr(self):
        entry = make(time=7)
        self.assertEqual(entry.sort_key(), (7, entry.key, str(entry.cid)))
        self.assertIn("time=7", repr(entry))
        self.assertIn("betry_group_entry", repr(entry.identity))
        self.assertEqual(hash(entry), hash(entry.cid))


class VerifyTests(TestCase):
    def test_verify_passes(self):
        entry = decode_entry(make().block)
        verify_entry(entry, fake_verify, PUB)
        verify_entry(entry, fake_verify)

    def test_wrong_log_key(self):
        entry = decode_entry(make().block)
        with self.assertRaisesRegex(IntegrityError, "is not the log's key"):
            verify_entry(entry, fake_verify, fake_pub(b"b"))

    def test_bad_signature(self):
        entry = make()
        forged = reencode(entry, sig=bytes(64).hex())
        with self.assertRaisesRegex(IntegrityError, "sig is not a signature"):
            verify_entry(decode_entry(forged), fake_verify, PUB)

    def test_payload_changed(self):
        forged = reencode(make("hello"), payload="hellp")
        with self.assertRaisesRegex(IntegrityError, "sig is not a signature"):
            verify_entry(decode_entry(forged), fake_verify, PUB)

    def test_bad_identity_signature(self):
        forged = reencode(make(), identity__signatures__id=("11" * 64))
        with self.assertRaisesRegex(IntegrityError, "identity.signatures.id"):
            verify_entry(decode_entry(forged), fake_verify, PUB)

    def test_identity_id_mismatch(self):
        forged = reencode(make(), identity__id=fake_pub(b"b").hex())
        with self.assertRaisesRegex(IntegrityError, "identity.id"):
            verify_entry(decode_entry(forged), fake_verify, PUB)

    def test_identity_public_key_mismatch(self):
        other = "08011220" + fake_pub(b"b").hex()
        forged = reencode(make(), identity__publicKey=other)
        with self.assertRaisesRegex(IntegrityError, "identity.publicKey"):
            verify_entry(decode_entry(forged), fake_verify, PUB)

    def test_cid_mismatch(self):
        entry = make()
        other = make("other")
        claimed = decode_entry(entry.block, other.cid)
        self.assertEqual(claimed.cid, other.cid)
        with self.assertRaisesRegex(IntegrityError, "block hashes to"):
            verify_entry(claimed, fake_verify, PUB)

    def test_enc_links_refused_by_verify(self):
        block = reencode(make(), enc_links="Zm9v", enc_links_nonce="YmFy")
        entry = decode_entry(block)
        self.assertEqual(entry.enc_links, "Zm9v")
        self.assertEqual(entry.enc_links_nonce, "YmFy")
        self.assertEqual(encode_entry(entry), block)
        with self.assertRaisesRegex(IntegrityError, "encrypted links"):
            verify_entry(entry, fake_verify, PUB)


class DecodeTests(TestCase):
    def setUp(self):
        parent = make(time=1)
        self.entry = make("payload", [parent.cid], [parent.cid], 2)

    def bad(self, exc, text, block, **kwargs):
        with self.assertRaisesRegex(exc, text):
            decode_entry(block, **kwargs)

    def test_not_a_map(self):
        self.bad(RemoteProtocolError, "expected a map", dagcbor.encode([1, 2]))

    def test_not_cbor(self):
        self.bad(RemoteProtocolError, "offset", b"\xaa\x61")

    def test_missing_field(self):
        for field in ("v", "id", "key", "sig", "hash", "next", "refs", "clock", "payload"):
            self.bad(
                RemoteProtocolError,
                "lacks field " + field,
                reencode(self.entry, **{field: _DELETE}),
            )
        self.bad(
            RemoteProtocolError, "lacks field identity", reencode(self.entry, identity=_DELETE)
        )

    def test_extra_field(self):
        self.bad(RemoteProtocolError, "unexpected field zz", reencode(self.entry, zz=1))
        self.bad(
            RemoteProtocolError,
            "clock has unexpected field x",
            reencode(self.entry, clock__x=1),
        )

    def test_nested_missing_fields(self):
        self.bad(
            RemoteProtocolError, "clock lacks field time", reencode(self.entry, clock__time=_DELETE)
        )
        self.bad(
            RemoteProtocolError,
            "identity lacks field type",
            reencode(self.entry, identity__type=_DELETE),
        )
        self.bad(
            RemoteProtocolError,
            "identity.signatures lacks field publicKey",
            reencode(self.entry, identity__signatures__publicKey=_DELETE),
        )
        self.bad(RemoteProtocolError, "clock is list", reencode(self.entry, clock=[]))

    def test_version(self):
        self.bad(RemoteProtocolError, "v=1", reencode(self.entry, v=1))
        self.bad(RemoteProtocolError, "v=3", reencode(self.entry, v=3))
        self.bad(RemoteProtocolError, "v is str", reencode(self.entry, v="2"))
        self.bad(RemoteProtocolError, "v is bool", reencode(self.entry, v=True))

    def test_wrong_types(self):
        self.bad(RemoteProtocolError, "id is int", reencode(self.entry, id=5))
        self.bad(RemoteProtocolError, "is empty", reencode(self.entry, id=""))
        self.bad(RemoteProtocolError, "payload is bytes", reencode(self.entry, payload=b"x"))
        self.bad(RemoteProtocolError, "hash is str", reencode(self.entry, hash="x"))
        self.bad(RemoteProtocolError, "key is bytes", reencode(self.entry, key=b"\x08"))
        self.bad(RemoteProtocolError, "next is NoneType", reencode(self.entry, next=None))
        self.bad(RemoteProtocolError, "is str, expected a CID", reencode(self.entry, refs=["bafy"]))
        self.bad(RemoteProtocolError, "clock.time is str", reencode(self.entry, clock__time="1"))
        self.bad(RemoteProtocolError, "identity.id is int", reencode(self.entry, identity__id=1))

    def test_hex_strictness(self):
        key = self.entry.key.hex()
        self.bad(RemoteProtocolError, "not lower-case hex", reencode(self.entry, key=key.upper()))
        self.bad(RemoteProtocolError, "not lower-case hex", reencode(self.entry, sig="zz" * 64))
        self.bad(
            RemoteProtocolError, "not lower-case hex", reencode(self.entry, sig=" " + "00" * 64)
        )
        self.bad(RemoteProtocolError, "sig is 63 bytes", reencode(self.entry, sig="00" * 63))
        self.bad(
            RemoteProtocolError,
            "identity.signatures.id is 1 bytes",
            reencode(self.entry, identity__signatures__id="00"),
        )

    def test_key_form(self):
        short = "08011220" + PUB.hex()[:-2]
        self.bad(
            IntegrityError,
            "not a marshalled Ed25519",
            reencode(self.entry, key=short, clock__id=short),
        )
        wrong = "08021220" + PUB.hex()
        self.bad(
            IntegrityError,
            "not a marshalled Ed25519",
            reencode(self.entry, key=wrong, clock__id=wrong),
        )

    def test_clock_id_must_equal_key(self):
        other = "08011220" + fake_pub(b"b").hex()
        self.bad(IntegrityError, "clock.id", reencode(self.entry, clock__id=other))

    def test_clock_time_bounds(self):
        self.bad(RemoteProtocolError, "outside", reencode(self.entry, clock__time=-1))
        self.bad(RemoteProtocolError, "outside", reencode(self.entry, clock__time=1 << 63))
        entry = decode_entry(reencode(self.entry, clock__time=(1 << 63) - 1))
        self.assertEqual(entry.clock_time, (1 << 63) - 1)

    def test_links(self):
        parent = self.entry.next[0]
        raw = CID(RAW, parent.digest)
        self.bad(RemoteProtocolError, "not a CIDv1 dag-cbor link", reencode(self.entry, next=[raw]))
        self.bad(
            RemoteProtocolError,
            "next lists a CID twice",
            reencode(self.entry, next=[parent, parent]),
        )
        many = [CID.from_block(bytes([i])) for i in range(5)]
        self.bad(RemoteProtocolError, "more than 4", reencode(self.entry, refs=many), max_links=4)
        self.assertEqual(decode_entry(reencode(self.entry, refs=many)).refs, many)

    def test_identity_type(self):
        self.bad(
            RemoteProtocolError, "identity.type", reencode(self.entry, identity__type="orbitdb")
        )

    def test_payload_bound(self):
        big = make("x" * 101)
        self.bad(RemoteProtocolError, "payload is larger than 100", big.block, max_payload=100)
        decode_entry(big.block, max_payload=101)
        wide = make("é" * 51)  # 102 bytes of UTF-8 in 51 characters
        self.bad(RemoteProtocolError, "payload is larger than 100", wide.block, max_payload=100)

    def test_block_bound(self):
        with self.assertRaises(RemoteProtocolError) as ctx:
            decode_entry(b"\x00" * 100000, max_payload=1000)
        self.assertEqual(ctx.exception.reason, "too-large")

    def test_log_id_bound(self):
        self.bad(RemoteProtocolError, "more than 512", reencode(self.entry, id="x" * 513))

    def test_enc_links_must_come_together(self):
        self.bad(RemoteProtocolError, "come together", reencode(self.entry, enc_links="x"))
        self.bad(
            RemoteProtocolError,
            "enc_links is int",
            reencode(self.entry, enc_links=1, enc_links_nonce="x"),
        )

    def test_trailing_bytes(self):
        self.bad(RemoteProtocolError, "", self.entry.block + b"\x00")

    def test_fast_and_generic_paths_agree(self):
        # Every single-byte change of a valid block: both parsers give the same fields or the
        # fast one steps aside (and the generic one decides).
        block = self.entry.block
        self.assertEqual(_fast_fields(block, 64), _generic_fields(block))
        for pos in range(len(block)):
            for delta in (1, 0x80):
                mutated = block[:pos] + bytes([block[pos] ^ delta]) + block[pos + 1 :]
                try:
                    fast = _fast_fields(mutated, 64)
                except Exception:
                    continue
                self.assertEqual(fast, _generic_fields(mutated))


class ValueTests(TestCase):
    def test_identity_equality(self):
        a = Identity("ab", b"k", b"s")
        self.assertEqual(a, Identity("ab", b"k", b"s", b"", IDENTITY_TYPE))
        self.assertNotEqual(a, Identity("ab", b"k", b"t"))
        self.assertEqual(hash(a), hash(Identity("ab", b"k", b"s")))

    def test_entry_equality(self):
        a = make("a")
        self.assertEqual(a, decode_entry(a.block))
        self.assertNotEqual(a, make("b"))
        self.assertFalse(a == "a")
        self.assertTrue(isinstance(a, Entry))
