"""sd_notify(3) without libsystemd: tell systemd we are ready, alive, or stopping.

Under a ``Type=notify`` unit systemd sets ``$NOTIFY_SOCKET`` to a ``AF_UNIX`` datagram socket:
a path (``/run/systemd/notify``) or, with a leading ``@``, an abstract socket. Each notification
is one datagram of newline-separated ``KEY=VALUE`` assignments (``READY=1``, ``STATUS=...``,
``WATCHDOG=1``, ``STOPPING=1``). With ``WatchdogSec=`` set, systemd also sets ``$WATCHDOG_USEC``
(and ``$WATCHDOG_PID``): the service must send ``WATCHDOG=1`` more often than that, and the
usual rule is every half period (:meth:`Notifier.watchdog_interval`).

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, so the daemon calls the notifier
unconditionally. Sending never raises: a notification that cannot be delivered is logged and
dropped, because systemd being slow must not take the relay down.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd's notify socket, or does nothing when there is none.

    Args:
        address: the ``$NOTIFY_SOCKET`` value (``/path`` or ``@abstract``), or None for no-op.
        watchdog_usec: the ``$WATCHDOG_USEC`` value in microseconds, or None.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address: str | None = None
        self._socket: socket.socket | None = None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        if not address:
            return
        if address.startswith("@"):
            self._address = "\0" + address[1:]
        elif address.startswith("/"):
            self._address = address
        else:
            # e.g. systemd's "vsock:" form, which a daemon inside a Pi never sees.
            log.warning("NOTIFY_SOCKET %r is not a UNIX socket address; not notifying", address)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Build from ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``.

        The watchdog applies only if ``$WATCHDOG_PID`` is unset or names this process.
        """
        env = os.environ if environ is None else environ
        usec: int | None = None
        text = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if text.isdigit() and (not pid or pid == str(os.getpid())):
            usec = int(text)
        return cls(env.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None if no watchdog."""
        if self._watchdog_usec is None or not self.enabled:
            return None
        return self._watchdog_usec / 2_000_000

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram.

        Returns:
            True if the datagram was sent; False when disabled or the send failed (logged).
        """
        if self._address is None:
            return False
        for item in assignments:
            if "=" not in item or "\n" in item:
                raise ValueError("not a single KEY=VALUE assignment: %r" % item)
        data = "\n".join(assignments).encode("utf-8")
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto(data, self._address)
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", assignments[0].split("=", 1)[0], exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (and ``STATUS=`` if given): start-up is complete."""
        return self.notify("READY=1", *self._status(status))

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line shown by ``systemctl status``."""
        return self.notify(*self._status(text))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: we are alive. Call every :meth:`watchdog_interval` seconds."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify("STOPPING=1", *self._status(status))

    def close(self) -> None:
        """Close the socket (later notifications reopen it)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        return ("STATUS=" + " ".join(text.splitlines()),)
