"""Who is asking: the identity an entry point gives each request it lets into a chain.

An :class:`Identity` is established by the stage where a request *enters* a chain, from the
connection it came in on, never from anything the caller says: the subject and SANs of the
client certificate of a mutual-TLS connection, the ``SO_PEERCRED`` uid/gid/pid of a
unix-socket peer, the address of a plain TCP peer. It then travels with the request as the
message's ``Identity`` (spec/LIBSWARM.md 2.2 and 9.6), so a ``policy`` stage anywhere
downstream sees it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from libchan import Peer

__all__ = ["Identity", "ANONYMOUS", "identity_of_stream", "identity_of_peer", "identity_from_peercert"]

_TRANSPORTS = ("tls", "unix", "tcp", "none")


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """The caller of a request, as its entry point established it.

    * ``transport``: ``tls`` (a verified client certificate), ``unix``, ``tcp`` or ``none``
      (the request was made inside the process, or came in with nothing to tell);
    * ``subject``: the certificate's subject, RFC 4514 style (``CN=alice,O=Example``);
      ``cn``: its common name; ``san``: its subject alternative names, each ``TYPE:value``
      (``DNS:alice.example``, ``IP:10.0.0.1``, ``URI:spiffe://...``, ``email:a@b``);
    * ``uid``, ``gid``, ``pid``: the unix-socket peer's credentials (``SO_PEERCRED``);
    * ``address``: the TCP peer's ``host:port``.
    """

    transport: str = "none"
    subject: str | None = None
    cn: str | None = None
    san: tuple[str, ...] = ()
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.transport not in _TRANSPORTS:
            raise ValueError(f"identity: unknown transport {self.transport!r}")
        for key in ("subject", "cn", "address"):
            v = getattr(self, key)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"identity: {key} must be text")
        for key in ("uid", "gid", "pid"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError(f"identity: {key} must be an integer")
        if not isinstance(self.san, tuple) or not all(isinstance(s, str) for s in self.san):
            raise ValueError("identity: san must be a list of text")

    @property
    def anonymous(self) -> bool:
        """No certificate and no peer credentials: nothing says who this is."""
        return self.subject is None and self.cn is None and self.uid is None

    @property
    def name(self) -> str:
        """A short name for templates and logs: the certificate's CN, else ``uid-N``, else ``anonymous``."""
        if self.cn:
            return self.cn
        if self.subject:
            return self.subject
        if self.uid is not None:
            return f"uid-{self.uid}"
        return "anonymous"

    def to_wire(self) -> dict[str, Any]:
        """The map carried as a message's ``Identity`` (only the fields that are set)."""
        out: dict[str, Any] = {"transport": self.transport}
        for key in ("subject", "cn", "uid", "gid", "pid", "address"):
            v = getattr(self, key)
            if v is not None:
                out[key] = v
        if self.san:
            out["san"] = list(self.san)
        return out

    @classmethod
    def from_wire(cls, value: Any) -> "Identity":
        """Decode :meth:`to_wire`'s map (unknown keys are ignored); raises ValueError."""
        if isinstance(value, Identity):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"identity must be a map, not {type(value).__name__}")
        san = value.get("san") or ()
        if not isinstance(san, (list, tuple)):
            raise ValueError("identity: san must be a list of text")
        return cls(transport=value.get("transport", "none"), subject=value.get("subject"), cn=value.get("cn"),
                   san=tuple(san), uid=value.get("uid"), gid=value.get("gid"), pid=value.get("pid"),
                   address=value.get("address"))


ANONYMOUS = Identity()
"""The identity of a request that carries none."""

_RDN_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
              "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
              "emailAddress": "emailAddress", "domainComponent": "DC", "userId": "UID",
              "serialNumber": "serialNumber"}
_SAN_NAMES = {"IP Address": "IP", "Registered ID": "RID", "DirName": "DirName"}


def _escape_rdn(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def identity_from_peercert(cert: dict[str, Any], **extra: Any) -> Identity:
    """An identity from ``SSLSocket.getpeercert()``'s dict (a *verified* certificate)."""
    rdns = []
    cn = None
    for rdn in cert.get("subject", ()):
        parts = []
        for key, value in rdn:
            if key == "commonName" and cn is None:
                cn = value
            parts.append(f"{_RDN_NAMES.get(key, key)}={_escape_rdn(value)}")
        rdns.append("+".join(parts))
    san = tuple(f"{_SAN_NAMES.get(kind, kind)}:{value}" for kind, value in cert.get("subjectAltName", ()))
    # RFC 4514: the last RDN of the certificate's sequence first (CN=alice,O=Example)
    return Identity(transport="tls", subject=",".join(reversed(rdns)) or None, cn=cn, san=san, **extra)


def identity_of_peer(peer: "Peer | None", *, transport: str | None = None) -> Identity:
    """The identity of a connection's :class:`libchan.Peer`: its verified client certificate
    gives ``tls`` (with the unix credentials or address under it), else ``unix`` or ``tcp``.
    No peer (a session not served by ``libchan.serve``) is ``transport`` (default ``none``)."""
    if peer is None:
        return Identity(transport=transport or "none")
    facts: dict[str, Any] = {k: getattr(peer, k) for k in ("uid", "gid", "pid", "address")
                             if getattr(peer, k) is not None}
    if peer.certificate:
        return identity_from_peercert(peer.certificate, **facts)
    return Identity(transport="unix" if peer.unix else "tcp" if peer.address is not None else transport or "none",
                    **facts)


async def identity_of_stream(stream: trio.abc.Stream) -> Identity:
    """The identity of the peer of an accepted connection.

    A ``trio.SSLStream`` is handshaken first (its errors propagate); its verified client
    certificate, if any, gives ``tls``. The socket under it gives ``SO_PEERCRED`` (unix) or
    the peer address (TCP). A TLS connection without a client certificate is its socket's.
    """
    from libchan.peer import peer_of

    if isinstance(stream, trio.SSLStream):
        await stream.do_handshake()
    return identity_of_peer(peer_of(stream))
