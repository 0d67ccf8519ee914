"""One line per thing a peer did wrong, rate-limited for the whole process.

A hostile or broken peer can make a server refuse thousands of streams or connections a
second; logging each one would turn the log into the attack's amplifier. :func:`peer_log`
logs a message (one line, never a traceback) at most :data:`BURST` times per
:data:`WINDOW` seconds for each message template, whatever its arguments (so a flood
from many addresses is bounded as well). The first line logged once a new window starts
says how many were left out in the previous one. The state is a small dict keyed by the
templates in the code, so it is bounded too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["peer_log", "BURST", "WINDOW"]

#: Lines of one template logged per window.
BURST = 10
#: Seconds of one window.
WINDOW = 10.0


class _Window:
    __slots__ = ("start", "logged", "left_out")

    def __init__(self, start: float) -> None:
        self.start = start
        self.logged = 0
        self.left_out = 0


_windows: dict[str, _Window] = {}


def peer_log(logger: logging.Logger, level: int, msg: str, *args: Any) -> None:
    """Log ``msg % args`` on ``logger`` unless this template was logged :data:`BURST`
    times in the current window."""
    if not logger.isEnabledFor(level):
        return
    now = time.monotonic()
    window = _windows.get(msg)
    suffix = ""
    if window is None or now - window.start >= WINDOW:
        if window is not None and window.left_out:
            suffix = f" ({window.left_out} more like this were not logged in the {WINDOW:g} s before)"
        window = _windows[msg] = _Window(now)
    if window.logged >= BURST:
        window.left_out += 1
        return
    window.logged += 1
    logger.log(level, msg + suffix, *args)


def reset() -> None:
    """Forget every window (for tests)."""
    _windows.clear()
