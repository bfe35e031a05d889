# The deadlines and sizes of a link session (L0). node.proto.session re-exports them; the daemon
# builds them from its configuration (node/app/config.py).

from node.errors import LocalProtocolError

MIN_WINDOW = 65536  # the smallest Entries credit window a Hello may grant


class SessionLimits:
    """Deadlines (milliseconds) and sizes of one session; the daemon fills them from config."""

    __slots__ = (
        "close_timeout",
        "handshake_timeout",
        "idle_timeout",
        "keepalive_interval",
        "max_item",
        "window",
    )

    def __init__(
        self,
        handshake_timeout: int = 10_000,
        idle_timeout: int = 60_000,
        keepalive_interval: int = 20_000,
        close_timeout: int = 2_000,
        window: int = 1 << 20,
        max_item: int = 256 * 1024 + 4096,
    ) -> None:
        if window < MIN_WINDOW:
            raise LocalProtocolError("a session window is at least %d bytes" % MIN_WINDOW)
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.keepalive_interval = keepalive_interval
        self.close_timeout = close_timeout
        self.window = window
        self.max_item = max_item
