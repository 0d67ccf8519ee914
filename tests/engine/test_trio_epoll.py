"""compat/trio_epoll.py: a socket's read wait without trio's per-wait objects, behaving as
``trio.lowlevel.wait_readable`` does (woken by data, cancellable, ``notify_closing``,
one reader at a time), and used by the links of this trio."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from libchan.compat.trio_epoll import ReadableWait, readable_wait
from helpers import session_pair

pytestmark = pytest.mark.fast_paths  # (off with LIBCHAN_FAST_PATHS=0, like every compat shortcut)


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def test_the_probe_accepts_this_trio_and_a_wait_yields_the_same_object_each_time():
    a, b = _pair()
    with a, b:
        wait = readable_wait(a.fileno())
        assert isinstance(wait, ReadableWait)
        trap = wait._trap
        for _ in range(3):
            b.send(b"x")
            with trio.fail_after(5):
                await wait.wait()
            assert a.recv(10) == b"x"
        assert wait._trap is trap


async def test_a_wait_ends_when_data_comes_and_not_before():
    a, b = _pair()
    with a, b:
        wait = readable_wait(a.fileno())
        assert wait is not None
        done = []

        async def waiter() -> None:
            await wait.wait()
            done.append(True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0.05)
            assert done == []
            b.send(b"data")
        assert done == [True]


async def test_a_cancelled_wait_gives_the_socket_back():
    a, b = _pair()
    with a, b:
        wait = readable_wait(a.fileno())
        assert wait is not None
        with trio.move_on_after(0.05) as scope:
            await wait.wait()
        assert scope.cancelled_caught
        b.send(b"x")
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(a)  # (no BusyResourceError: the reader left)
            await wait.wait()  # and waits again


async def test_one_reader_at_a_time_and_notify_closing_wakes_it():
    a, b = _pair()
    with a, b:
        wait = readable_wait(a.fileno())
        assert wait is not None
        outcome = []

        async def waiter() -> None:
            try:
                await wait.wait()
            except trio.ClosedResourceError:
                outcome.append("closing")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await trio.lowlevel.wait_readable(a)
            with pytest.raises(trio.BusyResourceError):
                await wait.wait()
            trio.lowlevel.notify_closing(a)
        assert outcome == ["closing"]


async def test_a_links_reads_wait_this_way(tmp_path):
    async with session_pair("tcp", tmp_path) as (cli, srv):
        sender = await cli.open_sender()
        await sender.send(b"x")
        assert await (await srv.accept_receiver()).receive() == b"x"
        for link in (cli._core._own_link, *srv._core._links):
            assert isinstance(link.io._readable, ReadableWait)
