# Store addresses on both interpreters: a pinned address (cross-checked against libipld in
# tests/test_address.py's reference computation), parsing, and commitment to the writer.

from harness import TestCase

from node.crypto.address import (
    METADATA_STORE,
    access_controller_json,
    parse_address,
    store_address,
    verify_address,
)
from node.errors import IntegrityError, RemoteProtocolError

GPK = bytes(range(32))
SIGN_PUB = bytes(range(32, 64))
PINNED = (
    "/orbitdb/bafyreicp6zzphod7ilm6g3l3cjy4rvs37aqxyytqxs5hrhuuqybihhdzqa/"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f_berty_group_metadata"
)


class TestAddressPortable(TestCase):
    def test_pinned_address(self):
        self.assertEqual(store_address(None, GPK, SIGN_PUB, METADATA_STORE), PINNED)

    def test_access_controller_json_is_sorted(self):
        data = access_controller_json(GPK, SIGN_PUB, METADATA_STORE)
        self.assertTrue(data.startswith(b'{"group_id":["0001'))
        self.assertLess(data.index(b'"store_type"'), data.index(b'"write"'))

    def test_parse(self):
        cid, group_pk, store_type = parse_address(PINNED)
        self.assertEqual(group_pk, GPK)
        self.assertEqual(store_type, METADATA_STORE)
        self.assertEqual(str(cid), PINNED.split("/")[2])

    def test_verify(self):
        self.assertEqual(verify_address(None, PINNED, SIGN_PUB), (GPK, METADATA_STORE))
        with self.assertRaises(IntegrityError):
            verify_address(None, PINNED, bytes(32))

    def test_malformed(self):
        for text in ("", "/orbitdb/", PINNED + "/x", PINNED.replace("_berty", "-berty")):
            with self.assertRaises(RemoteProtocolError):
                parse_address(text)
