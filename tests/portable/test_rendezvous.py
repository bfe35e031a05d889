# Rendezvous points: the four upstream vectors of berty/weshnet pkg/rendezvous/rendezvous_test.go
# (TestGenerateRendezvousPointForPeriod, inputs []byte("topicA") etc.), weshnet's RoundTimePeriod
# cases, and the relay discovery token.

from harness import TestCase

from node.crypto.rendezvous import (
    TOKEN_LENGTH,
    discovery_key,
    next_period,
    relay_token,
    rotation_point,
    round_period,
)
from node.errors import LocalProtocolError

T_A = 1586520000  # 2020-04-10T12:00:00Z
T_B = 1586523600  # 2020-04-10T13:00:00Z
HOUR = 3600


class TestRotationPointVectors(TestCase):
    def test_topic_a_seed_a_time_a(self):
        self.assertEqual(
            rotation_point(b"topicA", b"seedA", T_A).hex(),
            "8b7fdc831ca90f78995f32d8b9cf7bc8682a7fc250fe13a9b7c5c0851a3b8cbc",
        )

    def test_topic_a_seed_a_time_b(self):
        self.assertEqual(
            rotation_point(b"topicA", b"seedA", T_B).hex(),
            "ec86e0cb471195733ebbeb04277aafcfc60a19c09195cf04e60b50857465c27f",
        )

    def test_topic_a_seed_b_time_a(self):
        self.assertEqual(
            rotation_point(b"topicA", b"seedB", T_A).hex(),
            "f87f5dfc4e8a68be75d6008ab3aa0a4295b6049e9ec21f03d0c1410895171683",
        )

    def test_topic_b_seed_a_time_a(self):
        self.assertEqual(
            rotation_point(b"topicB", b"seedA", T_A).hex(),
            "6350bd507198a9acb816dcadae8c5c6ff6c96ee6c9606c8ebe15c1f645ac4c4e",
        )

    def test_point_is_32_bytes(self):
        self.assertEqual(len(rotation_point(b"", b"", 0)), 32)


class TestRoundPeriod(TestCase):
    # weshnet TestRoundTimePeriod_Next cases.
    def test_on_boundary(self):
        self.assertEqual(round_period(T_A, HOUR), T_A)
        self.assertEqual(next_period(T_A, HOUR), T_B)

    def test_negative_interval_is_absolute(self):
        self.assertEqual(round_period(T_A, -HOUR), T_A)
        self.assertEqual(next_period(T_A, -HOUR), T_B)

    def test_inside_period(self):
        t = T_A + 34 * 60 + 56  # 12:34:56
        self.assertEqual(round_period(t, HOUR), T_A)
        self.assertEqual(next_period(t, HOUR), T_B)

    def test_day_interval(self):
        self.assertEqual(round_period(T_A, 86400), 1586476800)  # 2020-04-10T00:00Z

    def test_negative_time_truncates_towards_zero_like_go(self):
        self.assertEqual(round_period(-1, HOUR), 0)
        self.assertEqual(round_period(-3601, HOUR), -3600)

    def test_huge_interval_gives_zero(self):
        # weshnet's "static" rotation interval (~292 years) puts every date in period 0.
        self.assertEqual(round_period(T_A, (1 << 63) // 10**9), 0)

    def test_zero_interval_rejected(self):
        with self.assertRaises(LocalProtocolError):
            round_period(T_A, 0)

    def test_negative_period_start_wraps_like_go_uint64(self):
        self.assertEqual(
            rotation_point(b"t", b"s", -1), rotation_point(b"t", b"s", 0xFFFFFFFFFFFFFFFF)
        )


class TestRelayToken(TestCase):
    def setUp(self):
        self.key = discovery_key(bytes(range(32)))

    def test_token_length(self):
        self.assertEqual(len(relay_token(self.key, T_A)), TOKEN_LENGTH)

    def test_token_is_deterministic(self):
        self.assertEqual(relay_token(self.key, T_A), relay_token(self.key, T_A))

    def test_token_changes_with_period(self):
        self.assertNotEqual(relay_token(self.key, T_A), relay_token(self.key, T_B))

    def test_token_changes_with_key(self):
        other = discovery_key(bytes(range(1, 33)))
        self.assertNotEqual(relay_token(self.key, T_A), relay_token(other, T_A))

    def test_epoch_changes_key(self):
        self.assertNotEqual(discovery_key(bytes(32), 0), discovery_key(bytes(32), 1))

    def test_discovery_key_is_not_the_secret(self):
        self.assertNotEqual(discovery_key(bytes(32)), bytes(32))
        self.assertEqual(len(discovery_key(bytes(32))), 32)

    def test_fixed_value(self):
        # Pinned so a change of the construction cannot go unnoticed (paired devices compute it).
        self.assertEqual(
            discovery_key(bytes(32)).hex(),
            "f727a61d1661ad72f6972c217b303f4e26baf701fb9f6e0ae5f253199339ca16",
        )
        self.assertEqual(relay_token(discovery_key(bytes(32)), T_A).hex(), "0ca4a64135017a72")

    def test_bad_inputs_rejected(self):
        with self.assertRaises(LocalProtocolError):
            discovery_key(bytes(31))
        with self.assertRaises(LocalProtocolError):
            discovery_key(bytes(32), -1)
        with self.assertRaises(LocalProtocolError):
            relay_token(bytes(31), T_A)
