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

from typing import Any

import trio

__all__ = ["copy_channel", "copy_stream", "forward"]

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


async def _close(obj: Any) -> None:
    with trio.CancelScope(shield=True):
        with trio.move_on_after(5):
            try:
                await obj.aclose()
            except Exception:
                pass


def _abort(obj: Any, reason: str | BaseException = "the source broke") -> bool:
    """Abort ``obj`` (its reader sees the failure, not a clean end) if it can be;
    ``reason`` is the source's exception, so a local pipe whose session died
    raises SessionClosedError. False if ``obj`` cannot be aborted."""
    abort = getattr(obj, "_abort", None)
    if abort is None:
        return False
    try:
        done = abort(reason)
    except TypeError:
        done = abort()
    return done is not False


def _gone(src: Any, exc: BaseException) -> None:
    """The destination ``src`` is copied into failed with ``exc``: tell ``src``
    (a local pipe end), whose writer then raises SessionClosedError if the
    session ended. The caller still closes ``src``."""
    gone = getattr(src, "_gone", None)
    if gone is not None:
        gone(exc)


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
    finally:
        if broken is not None:
            if not _abort(dst, broken):
                await _close(dst)
        else:
            await _close(dst)
        await _close(src)


async def copy_stream(src: trio.abc.ReceiveStream, dst: trio.abc.SendStream, *, eof: bool = True) -> None:
    """Copy bytes from ``src`` to ``dst`` until EOF, then ``send_eof`` (or close) ``dst``."""
    try:
        splice = getattr(src, "_splice_to", None)  # a local stream pipe: its writer writes to dst
        spliced = "no"
        if splice is not None:
            try:
                spliced = await splice(dst)
            except _GONE as exc:
                _abort(dst, exc)
                return
            if spliced == "gone":
                await _close(src)
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
                await _close(src)
                return
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


async def forward(obj: Any, facade: Any, kind: str) -> None:
    """Forward between a local object sent in a message and the network ``facade``.

    ``kind`` is what the peer got: for ``receiver``/``read-stream`` data flows
    from ``obj`` to the network, for ``sender``/``write-stream`` the other
    way, and both ways for ``stream``.
    """
    if kind == "receiver":
        await copy_channel(obj, facade)
    elif kind == "sender":
        await copy_channel(facade, obj)
    elif kind == "read-stream":
        try:
            await copy_stream(obj, facade)
        finally:
            await _close(obj)
    elif kind == "write-stream":
        try:
            await copy_stream(facade, obj)
        finally:
            await _close(facade)
            await _close(obj)
    else:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(copy_stream, obj, facade)
                nursery.start_soon(copy_stream, facade, obj)
        finally:
            await _close(facade)
            await _close(obj)
