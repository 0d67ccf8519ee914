"""Copying between channels and between byte streams, with close propagation.

A session uses these to forward between a local object put into a message and
the network stream that carries it; applications use :func:`copy_channel` and
:func:`copy_stream` to splice channels and streams (proxying).

Close propagates both ways: when the source ends, the destination is closed
(its reader sees the end); when the destination's reader goes away, the
source is closed (its writer's next send fails); when the source breaks, the
destination is aborted rather than ended cleanly where it can tell the
difference.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol, runtime_checkable

import trio

from .closing import aclose_quietly

__all__ = ["copy_channel", "copy_stream", "forward", "Abortable", "Forwarded", "Spliceable"]


@runtime_checkable
class Abortable(Protocol):
    """A destination that can be ended as *broken* (its reader sees an error, not
    a clean end): the pipes and the network channels and streams. ``reason`` is the
    source's exception (or a text); ``False`` returned means it could not be
    aborted after all (a wrapper around something that cannot), and the caller
    closes it instead."""

    def _abort(self, reason: str | BaseException) -> bool | None: ...


@runtime_checkable
class Forwarded(Protocol):
    """A local source told that what it is copied into failed with ``exc`` (so its
    writer raises SessionClosedError when that was a session ending)."""

    def _gone(self, exc: BaseException) -> None: ...


@runtime_checkable
class Spliceable(Protocol):
    """A local stream pipe's reading end, whose writer can write into ``dst`` itself
    (no copy through the pipe, no task hop per chunk).

    ``_splice_to(dst)`` returns ``"done"`` once the writer finished (EOF reached
    ``dst``'s side), ``"gone"`` when the pipe's reader went away, or ``"no"`` when
    it cannot splice (copy as usual); it raises what the source raises.
    """

    async def _splice_to(self, dst: trio.abc.SendStream) -> str: ...

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


def _abort(obj: object, reason: str | BaseException = "the source broke") -> bool:
    """Abort ``obj`` (its reader sees the failure, not a clean end) if it can be;
    ``reason`` is the source's exception, so a local pipe whose session died
    raises SessionClosedError. False if ``obj`` cannot be aborted."""
    if not isinstance(obj, Abortable):
        return False
    return obj._abort(reason) is not False


def _gone(src: object, exc: BaseException) -> None:
    """The destination ``src`` is copied into failed with ``exc``: tell ``src``
    (a local pipe end), whose writer then raises SessionClosedError if the
    session ended. The caller still closes ``src``."""
    if isinstance(src, Forwarded):
        src._gone(exc)


async def copy_channel(src: trio.abc.ReceiveChannel[Any], dst: trio.abc.SendChannel[Any]) -> None:
    """Send every message of ``src`` into ``dst`` until either side ends; then close both."""
    broken: BaseException | None = None
    try:
        while True:
            try:
                msg = await src.receive()
            except trio.EndOfChannel:
                break
            except _GONE as exc:
                broken = exc if str(exc) else trio.BrokenResourceError("the channel being forwarded broke")
                break
            try:
                await dst.send(msg)
            except _GONE as exc:
                _gone(src, exc)
                break
            msg = None  # (not kept while the next one is awaited: it may be large)
    finally:
        if broken is not None:
            if not _abort(dst, broken):
                await aclose_quietly(dst)
        else:
            await aclose_quietly(dst)
        await aclose_quietly(src)


async def copy_stream(src: trio.abc.ReceiveStream, dst: trio.abc.SendStream, *, eof: bool = True) -> None:
    """Copy bytes from ``src`` to ``dst`` until EOF, then ``send_eof`` (or close) ``dst``."""
    await _copy_stream(src, dst, eof=eof, splice=True)


async def _copy_stream(src: trio.abc.ReceiveStream, dst: trio.abc.SendStream, *, eof: bool, splice: bool) -> None:
    try:
        spliced = "no"
        if splice and isinstance(src, Spliceable):  # a local stream pipe: its writer writes to dst
            try:
                spliced = await src._splice_to(dst)
            except _GONE as exc:
                _abort(dst, exc)
                return
            if spliced == "gone":
                await aclose_quietly(src)
                return
        while spliced == "no":
            try:
                data = await src.receive_some(256 * 1024)
            except _GONE as exc:
                _abort(dst, exc)
                return
            if not data:
                break
            try:
                await dst.send_all(data)
            except _GONE as exc:
                _gone(src, exc)
                await aclose_quietly(src)
                return
            data = b""  # (not kept while the next chunk is awaited)
        if eof:
            send_eof = getattr(dst, "send_eof", None)
            try:
                if send_eof is not None:
                    await send_eof()
                else:
                    await dst.aclose()
            except _GONE:
                pass
    except trio.Cancelled:
        raise


async def forward(obj: Any, facade: Any, kind: str, splice: bool = True) -> None:
    """Forward between a local object sent in a message and the network ``facade``.

    ``kind`` is what the peer got: for ``receiver``/``read-stream`` data flows
    from ``obj`` to the network, for ``sender``/``write-stream`` the other
    way, and both ways for ``stream``. ``splice``: a local stream pipe may be
    spliced (see :class:`Spliceable`; off with ``Config.fast_paths``).
    """
    if kind == "receiver":
        await copy_channel(obj, facade)
    elif kind == "sender":
        await copy_channel(facade, obj)
    elif kind == "read-stream":
        try:
            await _copy_stream(obj, facade, eof=True, splice=splice)
        finally:
            await aclose_quietly(obj)
    elif kind == "write-stream":
        try:
            await _copy_stream(facade, obj, eof=True, splice=splice)
        finally:
            await aclose_quietly(facade)
            await aclose_quietly(obj)
    else:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(_copy_stream, obj, facade, eof=True, splice=splice))
                nursery.start_soon(partial(_copy_stream, facade, obj, eof=True, splice=splice))
        finally:
            await aclose_quietly(facade)
            await aclose_quietly(obj)
