"""hpack's internals: header tables kept in a list instead of a ``deque``.

An HPACK encoder and decoder each keep a dynamic table (RFC 7541 section 2.3.2), which
hpack 4 holds as ``HeaderTable.dynamic_entries``, a ``deque``: 760 bytes even with a
handful of entries, and an HTTP/2 connection has two. With the default table size (4096
bytes, 32 bytes or more per entry) it never holds more than 128 entries, so a list whose
``appendleft`` inserts at the front costs nothing measurable and about 100 bytes.
:func:`compact_header_tables` swaps it in on a connection's encoder and decoder when the
probe finds the deque where it expects it.

The entries themselves are mostly the same on every connection of a server (its clients
index the same paths, content type and authority): an entry met a second time, on any
connection, is kept once for all of them (:func:`_shared`, about 0.6 KB less per idle
connection on each side). Entries met once (a session's id) pass through a bounded set
of candidates, the oldest forgotten first; a peer sending ever new headers only churns
the candidates, and at most ``_SHARED_MAX`` entries are ever shared (entries up to
``_ENTRY_MAX`` bytes: all of it stays under a megabyte per process).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import hpack

__all__ = ["compact_header_tables"]


_SHARED_MAX = 512
_CANDIDATES_MAX = 1024
#: Larger entries are not shared (nor remembered as candidates).
_ENTRY_MAX = 512


class _Pool:
    """The entries of one kind of table (encoders' or decoders': a client and a server
    in one process must not take one's session id, met by both, for a common entry)."""

    __slots__ = ("shared", "candidates")

    def __init__(self) -> None:
        #: Entries met on two connections (or twice on one): one object for every table.
        self.shared: dict[object, object] = {}
        #: Entries met once, oldest first (what a second meeting promotes to shared).
        self.candidates: dict[object, object] = {}

    def get(self, entry: Any) -> Any:
        """The one object kept for an entry equal to ``entry`` (a ``(name, value)``
        tuple of bytes), or ``entry`` itself while it has been met once only."""
        found = self.shared.get(entry)
        if found is not None:
            return found
        if type(entry) is not tuple or len(entry) != 2 or len(entry[0]) + len(entry[1]) > _ENTRY_MAX:
            return entry
        candidates = self.candidates
        first = candidates.pop(entry, None)
        if first is not None:
            if len(self.shared) < _SHARED_MAX:
                self.shared[first] = first
            return first
        if len(candidates) >= _CANDIDATES_MAX:
            candidates.pop(next(iter(candidates)), None)  # (the oldest)
        candidates[entry] = entry
        return entry


class _Entries(list):  # type: ignore[type-arg]
    """The part of ``deque`` hpack's ``HeaderTable`` uses: ``appendleft``, ``pop``,
    ``clear``, indexing, ``len`` and iteration; an entry that another table of the
    same kind holds too is kept as one object (:class:`_Pool`)."""

    __slots__ = ()
    pool: _Pool

    def appendleft(self, entry: object) -> None:
        self.insert(0, self.pool.get(entry))


class _EncoderEntries(_Entries):
    __slots__ = ()
    pool = _Pool()


class _DecoderEntries(_Entries):
    __slots__ = ()
    pool = _Pool()


def compact_header_tables(*coders: Any) -> None:
    """Keep the dynamic table of each hpack ``Encoder``/``Decoder`` in a list (if its
    ``header_table.dynamic_entries`` is the deque hpack 4 makes; else nothing)."""
    for coder in coders:
        table = getattr(coder, "header_table", None)
        entries = getattr(table, "dynamic_entries", None)
        if type(entries) is deque:
            kind = _DecoderEntries if isinstance(coder, hpack.Decoder) else _EncoderEntries
            table.dynamic_entries = kind(entries)  # type: ignore[union-attr]
