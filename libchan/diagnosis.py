"""What went wrong when a connection could not start: the likely cause and the fix.

Plain functions of what was seen (the peer's first bytes, an ``ssl.SSLError``, a
silence), used by :mod:`libchan.transport` for :class:`~libchan.ConnectError` on the
client and for one log line per refused connection on the server.
"""

from __future__ import annotations

import sys

__all__ = [
    "describe",
    "first_bytes_verdict",
    "silence_verdict",
    "closed_verdict",
    "tls_client_verdict",
    "tls_server_verdict",
    "looks_like_tls",
]

def describe(exc: BaseException) -> str:
    """``Type: text`` of an exception, looking through empty wrappers (trio's TLS errors)."""
    while not str(exc) and exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_PROFILE_NAMES = {"h2": "HTTP/2 (libchan's default profile)", "spdy": "SPDY/3.1 (Go libchan's profile)"}


def looks_like_tls(data: bytes) -> bool:
    """A TLS record header: handshake (22) or alert (21), version 3.x."""
    return len(data) >= 2 and data[0] in (0x15, 0x16) and data[1] == 0x03


def _looks_like_h2_frame(data: bytes) -> bool:
    # The server's connection preface is a SETTINGS frame: type 4 on stream 0.
    return len(data) >= 9 and data[3] == 0x04 and data[5:9] == b"\x00\x00\x00\x00"


def first_bytes_verdict(data: bytes, profile: str) -> str | None:
    """What the server's first bytes say about a mismatch with ``profile``; None if
    they look like the right protocol (the failure is elsewhere)."""
    if looks_like_tls(data):
        return "the server answered with TLS: this is a TLS port, connect to it with tls://"
    if data.startswith(b"HTTP/1.") or data.startswith(b"<"):
        return "the server answered in HTTP/1.x: it is not a libchan server (or it wants HTTP/1.1)"
    if profile == "h2" and data[:2] == b"\x80\x03":
        return (
            "the server speaks SPDY/3.1 (Go libchan's profile), not HTTP/2:"
            " connect with profile='spdy' (rexec: --profile spdy)"
        )
    if profile == "spdy" and _looks_like_h2_frame(data):
        return "the server speaks HTTP/2 (libchan's default profile), not SPDY/3.1: connect with profile='h2'"
    if profile == "spdy" and data[:1] != b"\x80" and data[:4] != b"\x00\x00\x00\x00":
        return "the server's first bytes are not SPDY/3.1 (Go libchan's profile): is it a libchan server?"
    return None


def silence_verdict(profile: str, scheme: str, seconds: float) -> str:
    """The server accepted the connection but said nothing for ``seconds``."""
    other = "spdy" if profile == "h2" else "h2"
    causes = [f"it does not speak {_PROFILE_NAMES[profile]}: try profile={other!r}"]
    if scheme == "tcp":
        causes.append("it is a TLS port: use tls://")
    causes.append("it is not a libchan server")
    return f"the server sent nothing within {seconds:g}s of the connection opening; likely " + ", or ".join(causes)


def closed_verdict(profile: str, scheme: str, reason: str) -> str:
    """The server closed the connection before it said anything."""
    hints = []
    if scheme == "tls":
        hints.append(
            "a server that refused our client certificate (mutual TLS: give ssl= a context with"
            " load_cert_chain(cert, key) of a certificate it trusts)"
        )
    if scheme == "tcp":
        hints.append("a TLS port (use tls://)")
    hints.append(f"a server that does not speak {_PROFILE_NAMES[profile]}")
    return f"the server closed the connection before answering ({reason}); likely " + ", or ".join(hints)


def _reason(exc: BaseException) -> str:
    # (ssl is looked up, not imported: the blocking client imports it for tls:// only,
    # and there is no TLS error without it)
    ssl = sys.modules.get("ssl")
    ssl_error: tuple[type[BaseException], ...] = (ssl.SSLError,) if ssl is not None else ()
    while exc.__cause__ is not None and not isinstance(exc, ssl_error):
        exc = exc.__cause__
    if isinstance(exc, ssl_error):
        return (getattr(exc, "reason", None) or str(exc)).upper()
    return str(exc).upper()


def tls_client_verdict(exc: BaseException) -> str | None:
    """A TLS failure seen by the client, during the handshake or as the server's first
    answer (TLS 1.3 servers refuse a client certificate after the client's handshake)."""
    r = _reason(exc)
    if "CERTIFICATE_REQUIRED" in r:
        return (
            "the server requires a client certificate and we sent none: give ssl= a context"
            " with load_cert_chain(cert, key) (rexec: --cert/--key)"
        )
    if any(k in r for k in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "ACCESS_DENIED")):
        return (
            "the server refused our client certificate (or the lack of one): give ssl= a context with"
            " load_cert_chain(cert, key) of a certificate signed by a CA the server trusts (rexec: --cert/--key)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in r or "CERTIFICATE VERIFY FAILED" in r:
        detail = getattr(exc, "verify_message", None) or "not trusted"
        return (
            f"the server's certificate is {detail}: give ssl= a context that trusts its CA"
            " (ssl.create_default_context(cafile=...); rexec: --ca)"
        )
    if "WRONG_VERSION_NUMBER" in r or "WRONG VERSION NUMBER" in r or "RECORD_LAYER_FAILURE" in r or "PACKET_LENGTH_TOO_LONG" in r:
        return "the server does not speak TLS on this port: connect with tcp://"
    if "UNEXPECTED_EOF" in r or "EOF OCCURRED" in r:
        return (
            "the server closed the connection during the TLS handshake: it probably does not speak"
            " TLS on this port (use tcp://), or it refused us"
        )
    return None


def tls_server_verdict(exc: BaseException) -> str:
    """A TLS handshake that failed on the server: one line for its log."""
    r = _reason(exc)
    if "PEER DID NOT RETURN A CERTIFICATE" in r or "PEER_DID_NOT_RETURN_A_CERTIFICATE" in r:
        return "the client sent no certificate, and this server requires one"
    if "CERTIFICATE_VERIFY_FAILED" in r or "CERTIFICATE VERIFY FAILED" in r:
        detail = getattr(exc, "verify_message", None) or "not trusted"
        return f"the client's certificate is {detail}"
    if "HTTP_REQUEST" in r or "WRONG_VERSION_NUMBER" in r or "RECORD_LAYER_FAILURE" in r or "UNEXPECTED_RECORD" in r:
        return "the client spoke plaintext to this TLS port (it should connect with tls://)"
    if "NO_APPLICATION_PROTOCOL" in r:
        return "the client offered no ALPN protocol this server speaks (h2 or spdy/3.1)"
    if isinstance(exc, TimeoutError) or "TOOSLOW" in r:
        return "the client did not finish the TLS handshake in time"
    return f"TLS handshake failed: {exc}"
