"""Docker daemon addresses and the docker CLI's TLS options (dockerserver and dockerclient)."""

from __future__ import annotations

import dataclasses

from ..._errors import UsageError

__all__ = ["parse_url", "parse_tls_options", "TLSOptions"]


def parse_url(url: str) -> tuple[str, str, int]:
    """``unix:///p`` -> ``("unix", "/p", 0)``; ``tcp://h:p``/``tls://h:p`` -> ``(scheme, h, p)``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UsageError(f"invalid URL {url!r}: expected unix:///PATH, tcp://HOST:PORT or tls://HOST:PORT")
    if scheme == "unix":
        path = "/" + rest.lstrip("/") if rest.startswith("/") else rest
        if not path:
            raise UsageError(f"invalid URL {url!r}: no socket path")
        return "unix", path, 0
    if scheme in ("tcp", "tls", "http", "https"):
        host, _, port = rest.rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"invalid URL {url!r}: expected {scheme}://HOST:PORT")
        return ("tls" if scheme in ("tls", "https") else "tcp"), host.strip("[]"), int(port)
    raise UsageError(f"invalid URL {url!r}: unsupported scheme {scheme!r}")


@dataclasses.dataclass(frozen=True)
class TLSOptions:
    """What :func:`parse_tls_options` found: the flags, the file names, and the other words."""

    args: list[str]
    """The words that are not options (the URL, if given), in order."""
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None


def parse_tls_options(words: list[str], who: str) -> TLSOptions:
    """``--tlsverify --tlscacert=F --tlscert=F --tlskey=F`` (also ``--opt F``) -> :class:`TLSOptions`.

    ``who`` names the backend in errors (an unknown option, a missing value).
    """
    flags = {"tls": False, "tlsverify": False}
    files: dict[str, str | None] = {"tlscacert": None, "tlscert": None, "tlskey": None}
    rest: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        name, eq, value = w.partition("=")
        key = name.lstrip("-")
        if name.startswith("--") and key in flags:
            flags[key] = True
        elif name.startswith("--") and key in files:
            if not eq:
                i += 1
                if i >= len(words):
                    raise UsageError(f"{who}: {name} needs a value")
                value = words[i]
            files[key] = value
        elif w.startswith("--"):
            raise UsageError(f"{who}: unknown option {w}")
        else:
            rest.append(w)
        i += 1
    return TLSOptions(args=rest, tls=flags["tls"], tlsverify=flags["tlsverify"], tlscacert=files["tlscacert"],
                      tlscert=files["tlscert"], tlskey=files["tlskey"])
