"""A byte queue that does not copy large chunks around: a session stream's outgoing
data, and a stream pipe's buffer."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .budget import Account

__all__ = ["Outbox"]

#: take_parts joins what it takes up to this size (small messages) into one buffer.
_JOIN_UP_TO = 64 * 1024



class _NoChunks(deque):  # type: ignore[type-arg]
    """The chunks of every empty outbox: an empty deque is 760 bytes, and most streams
    (an idle channel, a parked request) have nothing queued most of the time. Shared,
    so never appended to: append gives an outbox a deque of its own, and an outbox
    that empties goes back to this one."""

    def append(self, data: object) -> None:
        raise RuntimeError("the shared empty chunks of an Outbox")


_NO_CHUNKS: deque[bytes | memoryview] = _NoChunks()


class Outbox:
    """Bytes queued on one stream, in order. ``take(n)`` removes the first ``n``.

    Small chunks (messages) are joined once when taken; a large chunk is
    handed out as memoryview slices, never re-copied inside the queue.

    A session stream's outbox charges its bytes to its connection's budget
    :class:`~.budget.Account` (``account``, set by :meth:`charge_to`).
    """

    __slots__ = ("_chunks", "_len", "account")

    def __init__(self) -> None:
        self._chunks = _NO_CHUNKS
        self._len = 0
        self.account: Account | None = None

    def charge_to(self, account: Account | None) -> None:
        """Charge the queued bytes, and those queued from now on, to ``account``."""
        if self.account is not None and self._len:
            self.account.charge(-self._len)
        self.account = account
        if account is not None and self._len:
            account.charge(self._len)

    def __del__(self) -> None:
        if self.account is not None and self._len:
            self.account.charge(-self._len)

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def append(self, data: bytes | memoryview) -> None:
        if data:
            chunks = self._chunks
            if chunks is _NO_CHUNKS:
                chunks = self._chunks = deque()
            chunks.append(data)
            self._len += len(data)
            if self.account is not None:
                self.account.charge(len(data))

    def __iadd__(self, data: bytes) -> Outbox:
        self.append(data)
        return self

    def clear(self) -> None:
        if self.account is not None and self._len:
            self.account.charge(-self._len)
        self._chunks = _NO_CHUNKS
        self._len = 0

    def take_parts(self, n: int) -> list[bytes | memoryview]:
        """Remove the first ``n`` bytes as a list of buffers: large chunks as they
        are (for a gathering write, no copy), small ones joined."""
        chunks = self._chunks
        if n <= _JOIN_UP_TO or len(chunks[0]) >= n:
            return [self.take(n)]
        parts: list[bytes | memoryview] = []
        total = 0
        while total < n:
            c = chunks[0]
            need = n - total
            if len(c) <= need:
                parts.append(chunks.popleft())
                total += len(c)
            else:
                view = c if isinstance(c, memoryview) else memoryview(c)
                parts.append(view[:need])
                chunks[0] = view[need:]
                total = n
        self._len -= n
        if not self._len:
            self._chunks = _NO_CHUNKS
        if self.account is not None:
            self.account.charge(-n)
        return parts

    def take(self, n: int) -> bytes | memoryview:
        chunks = self._chunks
        if n == self._len and len(chunks) > 1:  # all of it (a batch of small messages)
            out: bytes | memoryview = b"".join(chunks)
            self._chunks = _NO_CHUNKS
            self._len = 0
            if self.account is not None:
                self.account.charge(-n)
            return out
        first = chunks[0]
        size = len(first)
        if size == n:
            chunks.popleft()
            out = first
        elif size > n:
            view = first if isinstance(first, memoryview) else memoryview(first)
            out = view[:n]
            chunks[0] = view[n:]
        else:
            parts = []
            total = 0
            while total < n:
                c = chunks[0]
                need = n - total
                if len(c) <= need:
                    parts.append(c)
                    total += len(c)
                    chunks.popleft()
                else:
                    view = c if isinstance(c, memoryview) else memoryview(c)
                    parts.append(view[:need])
                    chunks[0] = view[need:]
                    total = n
            out = b"".join(parts)
        self._len -= n
        if not self._len:
            self._chunks = _NO_CHUNKS
        if self.account is not None:
            self.account.charge(-n)
        return out
