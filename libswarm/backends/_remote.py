"""Shared by ``listen``, ``connect`` and ``swarmctl``: URL + TLS option parsing.

Options: ``--cert FILE``, ``--key FILE``, ``--ca FILE`` (also ``--cert=FILE``...), only
for ``tls://`` URLs. Certificate verification is always on: a ``listen`` on tls://
requires all three and demands a client certificate signed by the CA (mutual TLS); a
client (``connect``, ``swarmctl``) verifies the server against ``--ca`` (or the system
store without it) including its host name or IP address, and presents ``--cert``/``--key``
when given.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import libchan

from .._errors import UsageError

__all__ = ["RemoteOptions", "parse_remote_args", "server_context", "client_context", "describe"]


def describe(exc: BaseException) -> str:
    """A one-line text for ``exc``; an empty one (trio's BrokenResourceError) says its cause."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e)
        if text:
            return " ".join(text.split())
        e = e.__cause__ or e.__context__
    return type(exc).__name__

_OPTIONS = ("--cert", "--key", "--ca")


@dataclass
class RemoteOptions:
    url: str
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    scheme: str = ""


def parse_options(args: list[str] | tuple[str, ...], usage: str) -> tuple[dict[str, str], list[str]]:
    """Pull ``--cert/--key/--ca`` (``--x F`` or ``--x=F``) out of ``args``; return (options, the rest)."""
    opts: dict[str, str] = {}
    rest: list[str] = []
    it = iter(args)
    for a in it:
        name, eq, value = a.partition("=")
        if name in _OPTIONS:
            if not eq:
                try:
                    value = next(it)
                except StopIteration:
                    raise UsageError(f"{name} needs a value; {usage}") from None
            if name in opts:
                raise UsageError(f"{name} given twice; {usage}")
            opts[name] = value
        elif a.startswith("--") and a != "--":
            raise UsageError(f"unknown option {name}; {usage}")
        else:
            rest.append(a)
    return opts, rest


def parse_remote_args(backend: str, args: tuple[str, ...]) -> RemoteOptions:
    usage = f"usage: {backend} [--cert FILE --key FILE --ca FILE] tcp://HOST:PORT|tls://HOST:PORT|unix:///PATH"
    opts, rest = parse_options(args, usage)
    if len(rest) != 1:
        raise UsageError(f"{backend}: {usage}")
    url = rest[0]
    try:
        address = libchan.parse_url(url)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{backend}: {exc}") from None
    o = RemoteOptions(url, opts.get("--cert"), opts.get("--key"), opts.get("--ca"), address.scheme)
    if address.scheme != "tls" and opts:
        raise UsageError(f"{backend}: --cert/--key/--ca are only for tls:// URLs")
    if (o.cert is None) != (o.key is None):
        raise UsageError(f"{backend}: --cert and --key go together")
    return o


def server_context(o: RemoteOptions, backend: str = "listen") -> ssl.SSLContext:
    """A server context demanding a client certificate signed by ``--ca`` (mutual TLS)."""
    if not (o.cert and o.key and o.ca):
        raise UsageError(f"{backend}: a tls:// listener needs --cert, --key and --ca (client certificates are always verified)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(o.cert, o.key)
        ctx.load_verify_locations(o.ca)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"{backend}: cannot load TLS material: {exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(o: RemoteOptions, backend: str = "connect") -> ssl.SSLContext:
    """A client context verifying the server (``--ca`` or the system store), with a client certificate if given."""
    try:
        ctx = ssl.create_default_context(cafile=o.ca)
        if o.cert:
            ctx.load_cert_chain(o.cert, o.key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"{backend}: cannot load TLS material: {exc}") from None
    return ctx
