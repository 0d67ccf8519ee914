"""Backends: named factories of :class:`libswarm.Service` instances.

``get(name)`` returns the factory for a backend (call it with string args, e.g.
``get("simulator")("web", "db")``; bad args raise :class:`libswarm.UsageError`),
``available()`` lists the names, ``from_spec("exec /bin/echo hi")`` splits a
service spec (go-shlex rules, as swarmd) and instantiates it, ``register()`` adds one.
Each backend lives in its own module here. See spec/LIBSWARM.md section 6.
"""

from __future__ import annotations

import importlib
from typing import Callable

from .._errors import UsageError
from .._service import Service

__all__ = ["get", "available", "register", "from_spec", "help_text", "Factory", "UnknownBackendError"]

Factory = Callable[..., Service]


class UnknownBackendError(UsageError, KeyError):
    """No backend has that name."""

    def __str__(self) -> str:
        return str(self.args[0])


_BUILTIN = {
    "aggregate": ("aggregate", "Aggregate"),
    "connect": ("connect", "Connect"),
    "debug": ("debug", "Debug"),
    "dockerclient": ("dockerclient", "DockerClient"),
    "dockerserver": ("dockerserver", "DockerServer"),
    "exec": ("exec", "Exec"),
    "fakeclient": ("fakeclient", "FakeClient"),
    "listen": ("listen", "Listen"),
    "policy": ("policy", "Policy"),
    "simulator": ("simulator", "Simulator"),
    "swarmmode": ("swarmmode", "SwarmMode"),
}
_EXTRA: dict[str, Factory] = {}


def available() -> list[str]:
    """The sorted names of every backend."""
    return sorted(set(_BUILTIN) | set(_EXTRA))


def get(name: str) -> Factory:
    """The factory of backend ``name`` (raises :class:`UnknownBackendError`)."""
    if name in _EXTRA:
        return _EXTRA[name]
    try:
        module, attr = _BUILTIN[name]
    except KeyError:
        raise UnknownBackendError(f"{name}: not found") from None
    factory: Factory = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    return factory


def help_text(name: str) -> str:
    """The help of backend ``name``: its module's docstring (or its factory's), as plain
    text (raises :class:`UnknownBackendError`)."""
    factory = get(name)
    module = importlib.import_module(factory.__module__)
    doc = (module.__doc__ or factory.__doc__ or "").strip()
    if not doc:
        return f"{name}: no description"
    text = doc.replace("``", "")
    return text + "\n"


def register(name: str, factory: Factory) -> None:
    """Add (or override) a backend: ``factory(*args: str) -> Service``."""
    _EXTRA[name] = factory


def from_spec(spec: str) -> Service:
    """Instantiate ``"NAME ARG..."``, split with swarmd's go-shlex rules (:mod:`libswarm.goshlex`)."""
    from ..goshlex import split

    try:
        words = split(spec)
    except ValueError as exc:
        raise UsageError(f"parse error: {exc}") from None
    if not words:
        raise UsageError("parse error: empty command")
    return get(words[0])(*words[1:])
