"""Under CI or not: the one rule every test follows when something it needs is missing.

Locally a missing tool, privilege or data set skips the test (with the reason). Under CI
it fails instead, so that CI cannot silently stop testing something. "Under CI" means the
environment variable ``CI`` is set to anything but an empty string, ``0``, ``false``, ``no``
or ``off`` (any case): ``.ci/run`` sets ``CI=1``, and ``CI=0`` runs as a developer would.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "skip_or_fail", "require"]

_OFF = ("", "0", "false", "no", "off")


def in_ci() -> bool:
    """True when the environment variable ``CI`` says this run is under CI."""
    return os.environ.get("CI", "").strip().lower() not in _OFF


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test because of ``reason`` -- or, under CI, fail it."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a missing requirement is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """:func:`skip_or_fail` with ``reason`` unless ``condition``."""
    if not condition:
        skip_or_fail(reason)
