"""TCP endpoints (L1): ``HOST:PORT`` text <-> HostPort, for the config, the listener and the dialer.

Validation only, no I/O: a host is an IP literal (IPv6 in brackets when a port follows), a DNS
name, or (for listening) the name of a network interface; the listener and the dialer resolve it.
Errors are ConfigError naming the key or flag the text came from.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from node.errors import ConfigError

DEFAULT_PORT = 4740


@dataclass(frozen=True, slots=True)
class HostPort:
    """A TCP endpoint. ``host`` is an IP literal (IPv6 without brackets) or a DNS name."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)


def _valid_hostname(name: str) -> bool:
    # RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
    if not name or len(name) > 253:
        return False
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    for label in labels:
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(c.isascii() and (c.isalnum() or c == "-") for c in label):
            return False
    return True


def parse_host_port(text: str, key: str = "address", *, allow_port_zero: bool = False) -> HostPort:
    """Parse ``HOST:PORT``; an IPv6 host goes in brackets: ``[::1]:4740``.

    Args:
        text: the endpoint as written by the user.
        key: the config key or flag the text came from, named in errors.
        allow_port_zero: accept port 0 (listen on a port the kernel picks; tests use it).

    Returns:
        The endpoint, with the brackets of an IPv6 host removed.

    Raises:
        ConfigError: naming ``key`` and what is wrong with ``text``.
    """
    if not isinstance(text, str):
        raise ConfigError(key, "must be a string HOST:PORT, got %s" % type(text).__name__)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ConfigError(key, "%r: missing ']' after the IPv6 address" % text)
        host, rest = text[1:close], text[close + 1 :]
        if not rest.startswith(":"):
            raise ConfigError(key, "%r: expected ':PORT' after ']'" % text)
        port_text = rest[1:]
        try:
            if ipaddress.ip_address(host.split("%", 1)[0]).version != 6:
                raise ValueError(host)
        except ValueError:
            raise ConfigError(
                key, "%r: only an IPv6 address goes in brackets, got %r" % (text, host)
            ) from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ConfigError(key, "%r: expected HOST:PORT" % text)
        if ":" in host:
            raise ConfigError(
                key, "%r: write an IPv6 address in brackets, e.g. [::1]:%d" % (text, DEFAULT_PORT)
            )
        if not host:
            raise ConfigError(key, "%r: the host is empty" % text)
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if host.replace(".", "").isdigit() or not _valid_hostname(host):
                raise ConfigError(
                    key, "%r: %r is neither an IP address nor a host name" % (text, host)
                ) from None
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise ConfigError(key, "%r: the port must be a number 1..65535" % text)
    port = int(port_text)
    low = 0 if allow_port_zero else 1
    if not low <= port <= 65535:
        raise ConfigError(key, "%r: the port must be in %d..65535" % (text, low))
    return HostPort(host, port)
