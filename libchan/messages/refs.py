"""Sans-IO reference bookkeeping of a libchan session.

A message that carries a channel or byte stream names it by a *reference
number*; the stream itself arrives separately (its headers carry the same
number). The two may arrive in either order -- through a proxy, streams are
not ordered with respect to each other -- so this table pairs them:

* ``claim(ref, kind, now)``: a message referenced ``ref``. Returns the stream
  handle if the stream already arrived, else records the reference as
  *pending* (the caller holds a placeholder object) and returns ``None``.
* ``arrived(ref, kind, handle, now)``: a stream with ``ref`` arrived. Returns
  the placeholder token of a pending reference, else keeps the stream as
  *unclaimed* and returns ``None``.
* ``expire(now)``: everything that waited longer than the timeout.

Reference numbers are allocated by each side from its own parity (the HTTP/2
client odd, the server even), so the numbers of both sides never collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import RemoteProtocolError

__all__ = ["RefTable", "Expired"]

H = TypeVar("H")


@dataclass
class _Entry(Generic[H]):
    #: None for a stream whose headers do not say its kind (Go profile)
    kind: str | None
    item: H
    deadline: float


@dataclass(frozen=True)
class Expired(Generic[H]):
    ref: int
    kind: str | None
    item: H
    #: "reference": a message named a stream that never came;
    #: "stream": a stream came that no message named.
    what: str


class RefTable(Generic[H]):
    def __init__(self, *, local_parity: int | None, timeout: float, max_pending: int) -> None:
        """``local_parity`` 0 or 1 splits numbers by side (HTTP/2 profile); None numbers
        each side independently from 2 (Go profile: a message only ever names streams
        its sender created, so the peer's numbers are a space of their own)."""
        if local_parity not in (0, 1, None):
            raise ValueError("local_parity must be 0, 1 or None")
        self._parity = local_parity
        self._step = 1 if local_parity is None else 2
        self._next = 2 if local_parity in (0, None) else 1
        self.timeout = timeout
        self.max_pending = max_pending
        self.pending: dict[int, _Entry[H]] = {}  # ref -> placeholder token
        self.unclaimed: dict[int, _Entry[H]] = {}  # ref -> stream handle

    def allocate(self) -> int:
        """A fresh local reference number."""
        ref = self._next
        self._next += self._step
        return ref

    def is_local(self, ref: int) -> bool:
        return self._parity is not None and ref % 2 == self._next % 2

    def _check_room(self) -> None:
        if len(self.pending) + len(self.unclaimed) >= self.max_pending:
            raise RemoteProtocolError(
                f"more than {self.max_pending} references are waiting for their streams"
            )

    def claim(self, ref: int, kind: str, token: H, now: float) -> H | None:
        """A message referenced ``ref``: return the arrived stream or register ``token``."""
        if self.is_local(ref):
            raise RemoteProtocolError(f"peer referenced {ref}, which is in our own reference space")
        entry = self.unclaimed.get(ref)
        if entry is not None:
            if entry.kind is not None and entry.kind != kind:
                raise RemoteProtocolError(
                    f"reference {ref} is a {kind} in the message but its stream is a {entry.kind}"
                )
            del self.unclaimed[ref]
            return entry.item
        if ref in self.pending:
            raise RemoteProtocolError(f"reference {ref} appears twice")
        self._check_room()
        self.pending[ref] = _Entry(kind, token, now + self.timeout)
        return None

    def arrived(self, ref: int, kind: str | None, handle: H, now: float) -> H | None:
        """A stream for ``ref`` arrived: return the waiting token or keep the stream.

        ``kind`` is None when the stream's headers do not say it (Go profile)."""
        if self.is_local(ref):
            raise RemoteProtocolError(f"peer opened a stream with our own reference number {ref}")
        entry = self.pending.get(ref)
        if entry is not None:
            if kind is not None and entry.kind != kind:
                raise RemoteProtocolError(
                    f"reference {ref} is a {entry.kind} in the message but its stream is a {kind}"
                )
            del self.pending[ref]
            return entry.item
        if ref in self.unclaimed:
            raise RemoteProtocolError(f"two streams carry reference {ref}")
        self._check_room()
        self.unclaimed[ref] = _Entry(kind, handle, now + self.timeout)
        return None

    def next_deadline(self) -> float | None:
        deadlines = [e.deadline for e in self.pending.values()]
        deadlines += [e.deadline for e in self.unclaimed.values()]
        return min(deadlines) if deadlines else None

    def expire(self, now: float) -> list[Expired[H]]:
        out: list[Expired[H]] = []
        for table, what in ((self.pending, "reference"), (self.unclaimed, "stream")):
            for ref in [r for r, e in table.items() if e.deadline <= now]:
                e = table.pop(ref)
                out.append(Expired(ref, e.kind, e.item, what))
        return out
