# Rendezvous points and the relay's rotating discovery token (L0, no suite needed).
#
# Theory of operation. Berty (weshnet pkg/rendezvous, reference/berty-wesh.md §7.1) names a meeting
# place that changes every period without any exchange between the parties:
#
#     period_start = trunc(unix_seconds / interval) * interval          (RoundTimePeriod)
#     point        = HMAC-SHA256(key = topic || seed, msg = BE64(period_start))
#
# `trunc` is Go's integer division (towards zero), and BE64 is the two's-complement uint64 of the
# period start, both exactly as weshnet computes them. Topics: the base64 account key for contact
# requests, the store address for heads messages (seed = link_key). Berty's inverted expiry check
# (§7.4) is not reproduced: callers ask for the point of the period they mean.
#
# The relay's discovery token (DESIGN.md §4) is ours, not Berty's. A relay advertises a short token
# over BLE and zeroconf that strangers cannot link from one period to the next, while its paired
# devices can compute it and so recognise their relay:
#
#     discovery_key = HMAC-SHA256(node secret, "waystation/discovery-key/v1" || BE32(epoch))
#     token         = HMAC-SHA256(discovery_key, "waystation-token" || BE64(period_start))[:8]
#
# The discovery key is derived one-way from the relay's secret (so nothing public, such as the
# node's public key which any Noise peer learns, suffices to compute tokens) and is handed to a
# device inside the authenticated pairing session. `epoch` lets the relay change the key when a
# paired device is revoked; the new key is given to the devices that remain paired.

from node._compat import hmac_sha256
from node.errors import LocalProtocolError

DEFAULT_ROTATION_INTERVAL = 24 * 3600  # seconds; the Berty app's -node.rdv-rotation default
TOKEN_INTERVAL = 15 * 60  # seconds; about the rate at which phones rotate their BLE addresses
TOKEN_LENGTH = 8

_UINT64_MASK = 0xFFFFFFFFFFFFFFFF
_DISCOVERY_KEY_LABEL = b"waystation/discovery-key/v1"
_TOKEN_LABEL = b"waystation-token"


def _be64(value: int) -> bytes:
    # Go's uint64(int64): negative values wrap around.
    return (value & _UINT64_MASK).to_bytes(8, "big")


def round_period(unix_seconds: int, interval_seconds: int) -> int:
    """Start of the period holding `unix_seconds` (weshnet RoundTimePeriod).

    A negative interval means its absolute value, as in Go. Division truncates towards zero.
    Raises LocalProtocolError for a zero interval.
    """
    if interval_seconds < 0:
        interval_seconds = -interval_seconds
    if interval_seconds == 0:
        raise LocalProtocolError("rotation interval must not be zero")
    quotient = abs(unix_seconds) // interval_seconds
    if unix_seconds < 0:
        quotient = -quotient
    return quotient * interval_seconds


def next_period(unix_seconds: int, interval_seconds: int) -> int:
    """Start of the period after the one holding `unix_seconds` (weshnet NextTimePeriod)."""
    return round_period(unix_seconds, interval_seconds) + abs(interval_seconds)


def rotation_point(topic: bytes, seed: bytes, period_start: int) -> bytes:
    """The 32-byte rendezvous point: HMAC-SHA256(topic || seed, BE64(period_start))."""
    return hmac_sha256(topic + seed, _be64(period_start))


def discovery_key(node_secret: bytes, epoch: int = 0) -> bytes:
    """The 32-byte key a relay shares with its paired devices so they can compute its tokens.

    Args:
        node_secret: the relay's own secret key material (e.g. its Ed25519 seed); never sent.
        epoch: bumped by the relay to retire the key after a device is revoked (0 .. 2**32-1).
    """
    if len(node_secret) < 32:
        raise LocalProtocolError("node secret must be at least 32 bytes")
    if epoch < 0 or epoch > 0xFFFFFFFF:
        raise LocalProtocolError("discovery key epoch out of range: %d" % epoch)
    return hmac_sha256(node_secret, _DISCOVERY_KEY_LABEL + epoch.to_bytes(4, "big"))


def relay_token(discovery_key: bytes, period_start: int) -> bytes:
    """The 8-byte token a relay advertises during the period starting at `period_start`."""
    if len(discovery_key) != 32:
        raise LocalProtocolError("discovery key must be 32 bytes, got %d" % len(discovery_key))
    return hmac_sha256(discovery_key, _TOKEN_LABEL + _be64(period_start))[:TOKEN_LENGTH]
