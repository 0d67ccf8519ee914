"""hyperframe's internals: a cheaper ``repr`` of frame payloads.

h2 builds ``repr(frame)`` for a trace log on every frame it receives, even with
logging off; hyperframe 6's version hex-encodes the whole payload and keeps 20
characters, which costs more than parsing a large DATA frame.
:func:`install_cheap_repr` replaces it, process-wide, with one that returns the
identical string from the first 11 bytes only. It is installed by the first HTTP/2
multiplexer made with fast paths on, never at import time.
"""

from __future__ import annotations

import binascii

import hyperframe.frame

__all__ = ["install_cheap_repr", "cheap_raw_data_repr"]


def cheap_raw_data_repr(data: bytes | None) -> str:
    """What ``hyperframe.frame._raw_data_repr`` returns, from 11 bytes of ``data``."""
    if not data:
        return "None"
    r = binascii.hexlify(data[:11]).decode("ascii")
    if len(r) > 20:
        r = r[:20] + "..."
    return "<hex:" + r + ">"


_installed = False


def install_cheap_repr() -> bool:
    """Install :func:`cheap_raw_data_repr` (once); False if hyperframe has no such hook."""
    global _installed
    if _installed:
        return True
    if not callable(getattr(hyperframe.frame, "_raw_data_repr", None)):
        return False
    hyperframe.frame._raw_data_repr = cheap_raw_data_repr
    _installed = True
    return True
