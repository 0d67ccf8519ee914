"""hpack's internals: header tables kept in a list instead of a ``deque``.

An HPACK encoder and decoder each keep a dynamic table (RFC 7541 section 2.3.2), which
hpack 4 holds as ``HeaderTable.dynamic_entries``, a ``deque``: 760 bytes even with a
handful of entries, and an HTTP/2 connection has two. With the default table size (4096
bytes, 32 bytes or more per entry) it never holds more than 128 entries, so a list whose
``appendleft`` inserts at the front costs nothing measurable and about 100 bytes.
:func:`compact_header_tables` swaps it in on a connection's encoder and decoder when the
probe finds the deque where it expects it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["compact_header_tables"]


class _Entries(list):  # type: ignore[type-arg]
    """The part of ``deque`` hpack's ``HeaderTable`` uses: ``appendleft``, ``pop``,
    ``clear``, indexing, ``len`` and iteration."""

    __slots__ = ()

    def appendleft(self, entry: object) -> None:
        self.insert(0, entry)


def compact_header_tables(*coders: Any) -> None:
    """Keep the dynamic table of each hpack ``Encoder``/``Decoder`` in a list (if its
    ``header_table.dynamic_entries`` is the deque hpack 4 makes; else nothing)."""
    for coder in coders:
        table = getattr(coder, "header_table", None)
        entries = getattr(table, "dynamic_entries", None)
        if type(entries) is deque:
            table.dynamic_entries = _Entries(entries)  # type: ignore[union-attr]
