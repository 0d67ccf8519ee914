"""A stream pipe spliced into a session's byte stream (``PipeStream._splice_to``, used by
``forward.copy_stream``) must keep the writer's bytes in order and never call the
destination's ``send_all`` from two tasks at once.

Both fail at 76b77cc. The writer had filled the pipe's buffer and waits for room when the
reading end is forwarded: the splice takes the buffer, wakes the writer, sends, finds the
buffer empty and sets ``sink`` (the writer's next ``send_all`` goes to the destination
itself). But the writer is still inside its *buffered* ``send_all`` loop, which never looks
at ``sink`` again: it appends the rest of its data to the buffer and returns. Its next
``send_all`` sees ``sink`` and writes to the destination at once -- before the splice has
sent the rest of the previous call (bytes reordered, silently), or while the splice is
still sending it (``BusyResourceError`` from the session's byte stream: seen through
nghttpx and haproxy as tests/api/test_proxies.py::test_byte_stream_server_half_closes_first
failing about one run in two). Each test repeats the race enough times (trio shuffles
its run queue) to fail every run while the bug is there.
"""

from __future__ import annotations

import trio
import trio.testing

import libchan


class Destination(trio.abc.SendStream):
    """Records what it is sent; the first ``sync_calls`` sends complete without a
    checkpoint (a session byte stream with room in its queue), later ones wait once."""

    def __init__(self, sync_calls: int) -> None:
        self.got = bytearray()
        self.calls = 0
        self.sync_calls = sync_calls
        self.busy = False
        self.concurrent = 0

    async def send_all(self, data) -> None:
        if self.busy:
            self.concurrent += 1
            raise trio.BusyResourceError("another task is sending on this byte stream")
        self.calls += 1
        if self.calls <= self.sync_calls:
            self.got += bytes(data)
            return
        self.busy = True
        try:
            await trio.lowlevel.checkpoint()
            self.got += bytes(data)
        finally:
            self.busy = False

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def _splice_once(sync_calls: int) -> tuple[Destination, bytes, object]:
    local, remote = libchan.stream_pipe(max_buffer=4)
    dst = Destination(sync_calls)
    written = bytearray()
    outcome: list[object] = []

    async def writer() -> None:
        try:
            for i in range(12):
                chunk = bytes([65 + i]) * (1 + i % 7)
                await local.send_all(chunk)
                written.extend(chunk)
            await local.send_eof()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            outcome.append(exc)
            await local.aclose()  # (the splice ends)

    async def splicer() -> None:
        try:
            outcome.append(await remote._splice_to(dst))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            outcome.append(exc)
            await remote.aclose()  # (a writer waiting for room fails)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.testing.wait_all_tasks_blocked()  # the buffer is full, the writer waits
            nursery.start_soon(splicer)  # now the reading end is forwarded
    return dst, bytes(written), outcome


async def test_spliced_pipe_keeps_the_writers_order():
    for _ in range(40):
        dst, written, outcome = await _splice_once(sync_calls=1_000_000)
        assert outcome == ["eof"]
        assert bytes(dst.got) == written


async def test_spliced_pipe_never_sends_from_two_tasks_at_once():
    for _ in range(40):
        dst, written, outcome = await _splice_once(sync_calls=1)
        assert dst.concurrent == 0, outcome
        assert outcome == ["eof"] and bytes(dst.got) == written
