"""The requests of the HTTP/2 profile (spec/PROTOCOL.md sections 5 to 7): their paths,
content type and session headers. Plain data, no I/O: the trio engine
(:mod:`libchan.engine.core`) and the blocking client (:mod:`libchan.oneshot`) share them."""

from __future__ import annotations

__all__ = ["CONTENT_TYPE", "PATH_PARK", "PATH_SESSION", "PATH_STREAM", "request_headers"]

#: The control stream, whose end is the session's end (spec 6.2).
PATH_SESSION = "/libchan/v1/session"
#: A parked request, answered when the server opens a stream (spec 7.2).
PATH_PARK = "/libchan/v1/park"
#: A stream the client opens (spec 7.1).
PATH_STREAM = "/libchan/v1/stream"
#: Every body is a CBOR sequence (spec 8).
CONTENT_TYPE = "application/cbor-seq"


def request_headers(scheme: str, authority: str, path: str, session_id: str) -> list[tuple[str, str]]:
    """The headers every request of a session carries (spec 5); a stream's reference
    headers (spec 7.1) come after them."""
    return [
        (":method", "POST"),
        (":scheme", scheme),
        (":authority", authority),
        (":path", path),
        ("content-type", CONTENT_TYPE),
        ("libchan-session", session_id),
    ]
