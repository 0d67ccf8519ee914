"""Names of a package imported when first used (PEP 562), for libchan and libswarm.

A program that only needs ``--help`` (or one name) does not pay for importing trio, h2
and the rest at start-up. :func:`lazy_exports` gives a package's ``__getattr__`` and
``__dir__``: a name of ``exports`` is imported from its module on first use and kept in
the package; any other name is looked up as a submodule (as an eager ``__init__`` made
every submodule an attribute).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(
    namespace: dict[str, Any], exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose globals are ``namespace``;
    ``exports`` maps each exported name to the submodule defining it."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace["__all__"]))

    return __getattr__, __dir__
