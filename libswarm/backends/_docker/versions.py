"""What this server says it is: its engine version and the Engine API versions it speaks."""

from __future__ import annotations

__all__ = ["VERSION", "API_VERSION", "MIN_API_VERSION", "version_tuple"]

VERSION = "20.10.0-libswarm"
"""The engine version in ``docker version`` and the ``Server`` header."""
API_VERSION = "1.41"
"""The newest Engine API version served (and the one ``/_ping`` announces)."""
MIN_API_VERSION = "1.24"
"""The oldest Engine API version served."""


def version_tuple(v: str) -> tuple[int, ...]:
    """``"1.41"`` -> ``(1, 41)``, for comparisons (``(0,)`` if it is not a version)."""
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)
