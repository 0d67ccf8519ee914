"""Who is at the other end of a served connection: :class:`Peer`.

``libchan.serve()`` takes it from each connection once its TLS handshake is done, and a
session's handler reads it as :attr:`libchan.Session.peer`: the verified client certificate
(mutual TLS), the ``SO_PEERCRED`` credentials of a unix-socket peer, the TCP peer's address.
It comes from the connection, never from what the peer sends.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
from typing import Any

import trio

__all__ = ["Peer", "peer_of"]


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """The far end of a connection a server accepted.

    * ``certificate``: the client certificate the TLS handshake verified, as
      ``ssl.SSLSocket.getpeercert()`` gives it (``subject``, ``subjectAltName``...), or None
      (no TLS, or no certificate asked for or given);
    * ``uid``, ``gid``, ``pid``: a unix-socket peer's credentials (``SO_PEERCRED``, Linux);
    * ``address``: a TCP peer's ``HOST:PORT`` (``[HOST]:PORT`` for IPv6).
    """

    certificate: dict[str, Any] | None = None
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    address: str | None = None
    unix: bool = False
    """The connection is a unix socket (with or without TLS over it)."""

    def same_principal(self, other: "Peer | None") -> bool:
        """Whether ``other`` is the same certificate and the same unix user and group
        (the address and pid may differ: another connection of the same principal)."""
        if other is None:
            return False
        return (self.certificate, self.uid, self.gid) == (other.certificate, other.uid, other.gid)


def peer_of(stream: trio.abc.Stream) -> Peer:
    """The :class:`Peer` of an accepted ``stream`` (a TLS stream must be handshaken already),
    looking through TLS and wrapping streams (those with ``transport_stream`` or ``inner``)."""
    certificate = None
    sock: Any = None
    layer: Any = stream
    for _ in range(8):
        if layer is None:
            break
        if isinstance(layer, trio.SSLStream) and certificate is None:
            certificate = layer.getpeercert() or None
        sock = getattr(layer, "socket", None)
        if sock is not None:
            break
        layer = getattr(layer, "transport_stream", None) or getattr(layer, "inner", None)
    facts: dict[str, Any] = {}
    try:
        if sock is not None and sock.family == getattr(socket, "AF_UNIX", None):
            facts["unix"] = True
            if hasattr(socket, "SO_PEERCRED"):
                raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                pid, uid, gid = struct.unpack("3i", raw)
                facts.update(uid=uid, gid=gid, pid=pid)
        elif sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = sock.getpeername()[:2]
            facts["address"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    except OSError:
        pass
    return Peer(certificate=certificate, **facts)
