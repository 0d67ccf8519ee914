"""Addresses of libchan servers: ``tcp://HOST:PORT``, ``tls://HOST:PORT``, ``unix:///PATH``.

Plain data and parsing, no I/O and no trio: the trio transport
(:mod:`libchan.transport`) and the blocking client (:mod:`libchan.oneshot`) share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Address", "parse_url", "ALPN_H2", "ALPN_SPDY", "ALPN"]

ALPN_H2 = "h2"
ALPN_SPDY = "spdy/3.1"
#: The ALPN protocol a client of each profile offers.
ALPN = {"h2": ALPN_H2, "spdy": ALPN_SPDY}


@dataclass(frozen=True)
class Address:
    scheme: str  # "tcp", "tls" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_url(url: str) -> Address:
    """Parse ``tcp://host:port``, ``tls://host:port`` or ``unix:///path``; ValueError if bad."""
    if not isinstance(url, str):
        raise TypeError("url must be a str")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "unix":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path:
            raise ValueError(f"unix URL needs a path, as in unix:///tmp/chan.sock: {url!r}")
        return Address("unix", path=path)
    if scheme not in ("tcp", "tls"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r} (use tcp://, tls:// or unix://)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    if not parts.hostname or port is None:
        raise ValueError(f"URL needs a host and a port, as in {scheme}://127.0.0.1:9323: {url!r}")
    return Address(scheme, host=parts.hostname, port=port)


def authority_of(address: Address) -> str:
    """The ``:authority`` a client sends for ``address`` (spec section 3)."""
    if address.scheme == "unix":
        return "localhost"
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"
