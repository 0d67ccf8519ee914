"""Services (backend instances), the Task object model, chaining and sessions."""

from __future__ import annotations

import abc
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

import trio

import libchan

from ._client import Client, Output
from ._errors import RemoteError
from libchan.closing import aclose_quietly

from ._server import Request, Server

__all__ = ["Service", "run_service", "Task", "open_service", "chain", "serve_session"]


class Service(abc.ABC):
    """A backend instance: something that consumes an input and produces an output.

    ``await service.run(input, output)``: ``input`` is a Receiver of libswarm
    messages (requests and logs arriving from upstream), ``output`` a Sender of
    libswarm messages (what the service emits downstream: its logs and stdio, or
    requests -- a front end sends ``Ls``/``Spawn``... on its output). A service
    that is an engine serves the requests of its input with a :class:`Server`.

    Contract: ``run`` returns once it is done (typically after ``input`` ended and
    the requests in progress were answered); :func:`run_service` then closes both
    ends. A service is instantiated with string arguments by its factory
    (``libswarm.backends.get(name)(*args)``, :class:`UsageError` on bad args), and
    run once.
    """

    @abc.abstractmethod
    async def run(self, input: trio.abc.ReceiveChannel[Any], output: trio.abc.SendChannel[Any]) -> None:
        """Serve ``input`` and emit on ``output`` until done."""


async def run_service(service: Service, input: trio.abc.ReceiveChannel[Any], output: trio.abc.SendChannel[Any]) -> None:
    """Run ``service`` and close ``input`` and ``output`` whatever happens."""
    try:
        await service.run(input, output)
    finally:
        await aclose_quietly(output)
        await aclose_quietly(input)


@asynccontextmanager
async def open_service(service: Service) -> AsyncIterator[tuple[Client, Output]]:
    """Run ``service`` in the background; yield ``(Client(input), Output(output))``.

    Leaving the block closes the input and cancels the service. Read the output
    (or don't: a service may block writing to an unread output).
    """
    in_s, in_r = libchan.pipe()
    out_s, out_r = libchan.pipe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_service, service, in_r, out_s)
        client, output = Client(in_s), Output(out_r)
        try:
            yield client, output
        finally:
            await aclose_quietly(in_s)
            nursery.cancel_scope.cancel()


async def chain(
    services: Sequence[Service],
    input: trio.abc.ReceiveChannel[Any] | None,
    output: trio.abc.SendChannel[Any],
) -> None:
    """Run ``services`` as a pipeline, like swarmd: each one's output feeds the next one's input.

    ``input`` feeds the first service (None: its input is closed at once); the last
    service's output is copied into ``output``. Returns when every stage ended.
    """
    async with trio.open_nursery() as nursery:
        prev = input
        for i, svc in enumerate(services):
            out_s, out_r = libchan.pipe()
            if i and prev is not None:
                # the previous stage's output pipe is this one's input as it is: a copy
                # between two pipes would add a task hop to every message, and closing
                # either end tells the other side just as the copy did
                in_r = prev
            else:
                in_s, in_r = libchan.pipe()
                if prev is None:
                    await in_s.aclose()
                else:
                    nursery.start_soon(libchan.copy_channel, prev, in_s)
            nursery.start_soon(run_service, svc, in_r, out_s)
            prev = out_r
        if prev is None:
            await aclose_quietly(output)
        else:
            nursery.start_soon(libchan.copy_channel, prev, output)


class Task(Server):
    """The original ``utils.Task``: a running function presented as an object.

    ``Task(fn)`` where ``await fn(input, output)`` (or ``Task(service)``, using
    ``service.run``). Verbs:

    * ``Attach`` (any name): ``Ack(ret=input)`` -- the caller owns the task's input
      (closing it ends the task's input) -- then the reply carries the task's
      output until ``fn`` returns, when it closes. Attach **before** Start: output
      is not lost (``fn`` blocks on its output until the attacher reads). A task
      has one attacher; a second Attach gets ``Error("already attached")``.
    * ``Start``: run ``fn`` (``Ack``); ``Error("already running")`` the second time.

    Other verbs: ``not implemented``. The task runs in this server's nursery.
    """

    def __init__(self, fn: Service | Callable[[Any, Any], Awaitable[object]], name: str = "") -> None:
        super().__init__(name or getattr(fn, "name", "") or type(fn).__name__)
        self._fn = fn.run if isinstance(fn, Service) else fn
        self._in_s, self._in_r = libchan.pipe()
        self._out_s, self._out_r = libchan.pipe()
        self._attached = False
        self._started = False
        self.done = trio.Event()
        self.on_attach(self._attach)
        self.on_start(self._start)

    async def _attach(self, name: str, req: Request) -> None:
        if self._attached:
            raise RemoteError("already attached")
        self._attached = True
        await req.ack(self._in_s)
        if req.ret is not None:
            await libchan.copy_channel(self._out_r, req.ret)

    async def _start(self, *args: Any) -> None:
        if self._started:
            raise RemoteError("already running")
        self._started = True

        async def body() -> None:
            try:
                await self._fn(self._in_r, self._out_s)
            finally:
                await aclose_quietly(self._out_s)
                await aclose_quietly(self._in_r)
                self.done.set()

        self.nursery.start_soon(body)


async def serve_session(session: libchan.Session, server: Server) -> None:
    """Serve every top-level channel the peer opens on ``session`` with ``server``.

    Use as (part of) a ``libchan.serve`` handler; a peer then calls
    ``libswarm.Client(await session.open_sender())``.
    """
    async with trio.open_nursery() as nursery:
        try:
            async for receiver in session:
                nursery.start_soon(server.serve, receiver)
        except trio.BrokenResourceError:
            pass
