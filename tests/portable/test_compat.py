# Portable tests for node._compat and node.errors.

from harness import TestCase

from node import _compat
from node.errors import (
    ConfigError,
    IntegrityError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)


class CompatTests(TestCase):
    def test_bit_length(self):
        self.assertEqual(_compat.bit_length(0), 0)
        self.assertEqual(_compat.bit_length(1), 1)
        self.assertEqual(_compat.bit_length(255), 8)
        self.assertEqual(_compat.bit_length(256), 9)
        self.assertEqual(_compat.bit_length(1 << 64), 65)

    def test_hmac_sha256_rfc4231_case_2(self):
        mac = _compat.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
        self.assertEqual(
            mac.hex(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        )

    def test_hmac_sha256_long_key_rfc4231_case_6(self):
        mac = _compat.hmac_sha256(
            b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
        )
        self.assertEqual(
            mac.hex(), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        )


class ErrorTests(TestCase):
    def test_protocol_error_is_abstract(self):
        self.assertRaises(TypeError, ProtocolError, "x")

    def test_remote_error_carries_reason(self):
        err = RemoteProtocolError("bad frame", "too-large")
        self.assertEqual(err.reason, "too-large")
        self.assertEqual(err.message, "bad frame")
        self.assertIsInstance(err, ProtocolError)

    def test_integrity_error_reason(self):
        err = IntegrityError("bad signature")
        self.assertEqual(err.reason, "integrity")
        self.assertIsInstance(err, RemoteProtocolError)

    def test_local_error(self):
        self.assertIsInstance(LocalProtocolError("misuse"), ProtocolError)

    def test_config_error_names_key(self):
        err = ConfigError("store.max_entry_bytes", "must be positive")
        self.assertEqual(err.key, "store.max_entry_bytes")
        self.assertIn("store.max_entry_bytes", str(err))
