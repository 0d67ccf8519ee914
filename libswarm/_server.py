"""The object's side: :class:`Server` dispatches requests to handlers per verb."""

from __future__ import annotations

import contextvars
import functools
import json
from contextlib import AbstractAsyncContextManager
from typing import Any, Awaitable, Callable, Iterable, Union

import trio

import libchan
from libchan.closing import aclose_quietly

from ._errors import MessageError, RemoteError
from ._identity import Identity
from ._message import Arg, Message, reply_sender_of
from ._verbs import Verb

__all__ = ["Server", "Request", "Handler", "Tree", "DEFAULT_MAX_CONCURRENCY", "current_identity"]

_CALLER: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("libswarm_caller", default=None)
_UNBOUND: object = object()


def current_identity() -> Identity | None:
    """The identity of the request this task is handling (a :class:`Server` handler, and the
    tasks it starts), or None. A :class:`~libswarm.Client` stamps it on what it sends when
    neither the message nor the client has one: the requests a stage makes on behalf of a
    request carry its caller (spec/LIBSWARM.md 9.6)."""
    return _CALLER.get()

DEFAULT_MAX_CONCURRENCY = 256
"""Requests one :class:`Server` handles at once (streaming Attach/Watch included)."""

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

Handler = Callable[["Request"], Awaitable[object]]
"""``async def handler(req: Request)``: answers ``req`` (what it returns is ignored)."""

ObjectHandle = Union["Server", trio.abc.SendChannel[Any]]
"""An object to hand out in an ``Ack``: a :class:`Server` (each Ack gets a fresh handle) or a Sender."""

ByteStream = Union[trio.abc.ReceiveStream, trio.abc.SendStream]
"""A byte stream to attach to a message (``Att``): duplex, or one-way (``libchan.ReadOnly``/``WriteOnly``)."""

GetValue = Union[Arg, dict[str, Any], list[Any], tuple[Any, ...], int, float]
"""What a ``Get`` handler returns: text or bytes as is, anything else JSON-encoded."""


class Request:
    """One received message being handled, with helpers to answer it.

    ``message``, ``verb``, ``args``, ``ret``, ``att`` describe the request; ``name``
    is ``args[0]`` as text ("" if absent). The answer helpers send on ``ret`` and
    do nothing for a one-way request (``ret`` None). Once the handler returns, the
    server closes ``ret`` (the caller's end of replies), unless :meth:`forward`
    handed it on.
    """

    def __init__(self, message: Message, server: "Server | None" = None) -> None:
        self.message = message
        self.server = server
        self.answered = False
        self.handed_over = False

    verb = property(lambda self: self.message.verb)
    args = property(lambda self: self.message.args)
    ret = property(lambda self: self.message.ret)
    att = property(lambda self: self.message.att)
    identity = property(lambda self: self.message.identity)
    """Who is asking (:class:`~libswarm.Identity`), or None when the request carries none."""

    @property
    def name(self) -> str:
        return self.message.text

    def __repr__(self) -> str:
        return f"<Request {self.message!r}>"

    async def send(self, verb: Verb | Message, *args: Arg, ret: ObjectHandle | None = None,
                   att: ByteStream | None = None) -> None:
        """Send one reply (a :class:`Message`, or a verb and its args) on ``ret``.

        A ``ret`` value that is a :class:`Server` is replaced by a fresh handle
        (:meth:`Server.sender`) bound to this request's identity: every request on it is
        handled as that identity, whatever its message states. Raises trio's Broken/ClosedResourceError if the
        caller went away (let it propagate: the server handles it).
        """
        if self.ret is None:
            await trio.lowlevel.checkpoint()
            return
        msg = verb if isinstance(verb, Message) else Message(verb, args, _handle(ret, self.identity), att)
        self.answered = True
        await self.ret.send(msg.to_wire())

    async def ack(self, handle: ObjectHandle | None = None) -> None:
        """Answer ``Ack``, carrying ``handle`` (a Sender or a Server) if given."""
        await self.send(Verb.Ack, ret=handle)

    async def set(self, *values: Arg) -> None:
        """Answer ``Set(values)`` (the answer to Ls and Get)."""
        await self.send(Verb.Set, *values)

    async def log(self, *args: Arg) -> None:
        """Send ``Log(args)`` on the reply stream (attach output)."""
        await self.send(Verb.Log, *args)

    async def error(self, text: str) -> None:
        """Answer ``Error(text)``."""
        await self.send(Verb.Error, text)

    async def forward(self, target: trio.abc.SendChannel[Any], message: Message | None = None) -> None:
        """Hand this request (or a rewritten ``message`` keeping its ``ret``) to ``target``.

        The reply channel goes with it: the target answers the caller directly
        (errors and close propagate untouched), and this server will not close it.
        Raises :class:`UnreachableError` if ``target`` is gone (the request stays ours).
        """
        from ._errors import UnreachableError

        msg = message if message is not None else self.message
        if msg.ret is not self.ret:
            msg = msg.replace(ret=self.ret)
        try:
            await target.send(msg.to_wire())
        except _GONE as exc:
            raise UnreachableError(f"{msg.verb.name}: object unreachable: {exc or type(exc).__name__}") from exc
        self.handed_over = True


def _handle(obj: ObjectHandle | None, identity: Identity | None) -> trio.abc.SendChannel[Any] | None:
    """What goes in an answer's ``Ret``: a Server's fresh handle is bound to ``identity``."""
    return obj._bound_sender(identity) if isinstance(obj, Server) else obj


def _text(exc: BaseException) -> str:
    if isinstance(exc, RemoteError):
        return exc.text
    return str(exc) or type(exc).__name__


async def _answer_fresh(state: Arg, req: Request) -> None:
    """The first ``Get()`` on a :meth:`Server.fresh_handle`: the state the lookup read."""
    await req.set(state)


async def not_implemented(req: Request) -> None:
    """The default handler: ``Error("not implemented: <Verb>")``."""
    await req.error(f"not implemented: {req.verb.name}")


class Server:
    """Dispatch libswarm requests to a handler per verb.

    Register handlers with :meth:`on` (raw: ``async def h(req: Request)``) or the
    typed helpers (:meth:`on_ls`, :meth:`on_get`, ...). A verb with no handler and
    no :meth:`catchall` is answered ``Error("not implemented: <Verb>")``.

    Guarantees, for every request with a ``ret``:

    * it gets an answer or its reply channel is closed when the handler returns;
    * an exception in the handler becomes ``Error(<text>)`` (a :class:`RemoteError`
      keeps its text verbatim, so errors cross hops unchanged);
    * if the server stops (its nursery is cancelled) while handling it, the caller
      gets ``Error("<Verb>: interrupted: server stopped")`` or, if that cannot be
      delivered, the reply channel closes: no request is left waiting.

    Requests are handled concurrently, at most ``max_concurrency`` at once per
    server (long Attach/Watch streams count); further senders wait (backpressure).

    Two ways to feed it: ``await server.serve(receiver)`` handles every message of
    a Receiver; ``server.sender()`` (while the server runs, see :meth:`run` or
    ``async with server``) returns a fresh handle, a Sender whose messages are
    handled here -- give one out in an ``Ack``. Closing a handle does not stop the
    server.
    """

    def __init__(self, name: str = "", *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        self.name = name
        self._handlers: dict[Verb, Handler] = {}
        self._catchall: Handler | None = None
        self._limiter = trio.CapacityLimiter(max_concurrency)
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: AbstractAsyncContextManager[trio.Nursery] | None = None
        #: Handles given out and receivers being served, not yet ended (see :attr:`in_use`).
        self._serving = 0

    def __repr__(self) -> str:
        return f"<libswarm.Server {self.name or hex(id(self))}>"

    # -- registration -------------------------------------------------------

    def on(self, verb: Verb | str | int, handler: Handler) -> "Server":
        """Handle ``verb`` (a :class:`Verb`, its name or number) with ``async def handler(req: Request)``; returns self."""
        self._handlers[Verb.parse(verb)] = handler
        return self

    def catchall(self, handler: Handler) -> "Server":
        """Handle every verb that has no specific handler."""
        self._catchall = handler
        return self

    def on_ls(self, fn: Callable[..., Awaitable[Iterable[Arg]]]) -> "Server":
        """``Ls(args)``: ``await fn(*args)`` returns names, answered ``Set(names)``."""
        async def h(req: Request) -> None:
            await req.set(*(await fn(*req.args)))
        return self.on(Verb.Ls, h)

    def on_get(self, fn: Callable[..., Awaitable[GetValue]]) -> "Server":
        """``Get(args)``: ``fn(*args)`` returns one value (str or bytes as is; a dict, list or number
        JSON-encoded), answered ``Set(value)``."""
        async def h(req: Request) -> None:
            value = await fn(*req.args)
            await req.set(value if isinstance(value, (str, bytes)) else json.dumps(value))
        return self.on(Verb.Get, h)

    def on_spawn(self, fn: Callable[..., Awaitable[ObjectHandle]]) -> "Server":
        """``Spawn(args)``: ``fn(*args)`` returns the new object (Sender or Server), answered ``Ack(ret=obj)``."""
        async def h(req: Request) -> None:
            await req.ack(await fn(*req.args))
        return self.on(Verb.Spawn, h)

    def on_start(self, fn: Callable[..., Awaitable[object]]) -> "Server":
        """``Start(args)``: ``fn(*args)``, answered ``Ack``."""
        async def h(req: Request) -> None:
            await fn(*req.args)
            await req.ack()
        return self.on(Verb.Start, h)

    def on_stop(self, fn: Callable[..., Awaitable[object]]) -> "Server":
        """``Stop(args)``: ``fn(*args)``, answered ``Ack``."""
        async def h(req: Request) -> None:
            await fn(*req.args)
            await req.ack()
        return self.on(Verb.Stop, h)

    def on_attach(self, fn: Callable[[str, Request], Awaitable[object]]) -> "Server":
        """``Attach(name, ...)``: ``fn(name, req)`` must ``req.ack(handle)``, then may stream output on ``req``."""
        async def h(req: Request) -> None:
            await fn(req.name, req)
        return self.on(Verb.Attach, h)

    def on_watch(self, fn: Handler) -> "Server":
        """``Watch``: ``fn(req)`` must ``req.ack()``, then send changes until done."""
        return self.on(Verb.Watch, fn)

    def on_connect(self, fn: Callable[..., Awaitable[ByteStream]]) -> "Server":
        """``Connect(args)``: ``fn(*args)`` returns a byte stream, answered ``Connect(att=stream)``."""
        async def h(req: Request) -> None:
            stream = await fn(*req.args)
            await req.send(Verb.Connect, att=stream)
        return self.on(Verb.Connect, h)

    def _one_way(self, verb: Verb, fn: Callable[..., Awaitable[object]]) -> "Server":
        async def h(req: Request) -> None:
            await fn(*req.args)
        return self.on(verb, h)

    def on_log(self, fn: Callable[..., Awaitable[object]]) -> "Server":
        """One-way ``Log(args)``: ``fn(*args)``; no answer (a raised error is answered if there is a ret)."""
        return self._one_way(Verb.Log, fn)

    def on_error(self, fn: Callable[..., Awaitable[object]]) -> "Server":
        """One-way ``Error(args)``: ``fn(*args)``."""
        return self._one_way(Verb.Error, fn)

    def on_set(self, fn: Callable[..., Awaitable[object]]) -> "Server":
        """One-way ``Set(values)``: ``fn(*values)``."""
        return self._one_way(Verb.Set, fn)

    # -- running ------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between start and stop."""
        return self._nursery is not None

    @property
    def in_use(self) -> bool:
        """True while a handle of this server (from :meth:`sender` or an answer) is open,
        a receiver is being served, or a request on one is being handled: a server that
        is not in use can be stopped without anyone noticing but a later lookup."""
        return self._serving > 0

    @property
    def nursery(self) -> trio.Nursery:
        """The nursery of the running server (for tasks tied to its life)."""
        if self._nursery is None:
            raise RuntimeError(f"{self!r} is not running (use 'async with server' or nursery.start(server.run))")
        return self._nursery

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled: ``server = await nursery.start(srv.run)``."""
        async with self:
            task_status.started(self)
            await trio.sleep_forever()

    async def __aenter__(self) -> "Server":
        if self._nursery is not None:
            raise RuntimeError(f"{self!r} is already running")
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._nursery is not None and self._nursery_cm is not None
        self._nursery.cancel_scope.cancel()
        try:
            return await self._nursery_cm.__aexit__(*exc)
        finally:
            self._nursery = None

    def sender(self) -> libchan.PipeSender:
        """A fresh handle: a Sender whose messages this server handles (server must be running)."""
        s, r = libchan.pipe()
        self.nursery.start_soon(self._serve, r, _UNBOUND)
        self._serving += 1  # (from now: the handle exists before its task starts)
        return s

    def _bound_sender(self, identity: Identity | None) -> libchan.PipeSender:
        """A fresh handle given out in an answer to a request of ``identity``: every request
        on it is that identity's, whatever its message states (a handle is a capability of
        whoever obtained it, spec/LIBSWARM.md 9.6)."""
        s, r = libchan.pipe()
        self.nursery.start_soon(self._serve, r, identity)
        self._serving += 1
        return s

    def fresh_handle(self, identity: Identity | None, state: Arg) -> libchan.PipeSender:
        """A handle as an answer gives out (bound to ``identity``) whose first request, when
        it is a plain ``Get()``, is answered ``Set(state)`` without calling the handler.

        For a lookup that has just read the object's state (``Attach(name)`` after asking
        its engine): the usual next question is answered without asking again, with a
        value no older than the lookup. Any other first request drops ``state``; later
        requests are handled as on any handle (server must be running).
        """
        s, r = libchan.pipe()
        self.nursery.start_soon(self._serve, r, identity, state)
        self._serving += 1
        return s

    async def serve(self, receiver: trio.abc.ReceiveChannel[Any]) -> None:
        """Handle every message of ``receiver`` until it ends or breaks, then wait for the
        requests still in progress. Closes ``receiver`` when done."""
        self._serving += 1
        await self._serve(receiver, _UNBOUND)

    async def _serve(self, receiver: trio.abc.ReceiveChannel[Any], bound: object, fresh: Any = _UNBOUND) -> None:
        """(Its caller counted it in ``_serving``; it is uncounted when it ends.)"""
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    try:
                        raw = await receiver.receive()
                    except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
                        break
                    except libchan.ProtocolError:
                        # one bad message on a network channel: the channel is reset
                        break
                    token = object()
                    try:  # (the receive above was the loop's checkpoint: no second one when free)
                        self._limiter.acquire_on_behalf_of_nowait(token)
                    except trio.WouldBlock:
                        await self._limiter.acquire_on_behalf_of(token)
                    nursery.start_soon(self._run_one, raw, token, bound, fresh)
                    fresh = _UNBOUND
        finally:
            self._serving -= 1
            await aclose_quietly(receiver)

    async def _run_one(self, raw: Any, token: object, bound: object, fresh: Any) -> None:
        try:
            await self._dispatch(raw, bound, fresh)
        finally:
            self._limiter.release_on_behalf_of(token)

    async def dispatch(self, raw: Any) -> None:
        """Handle one message (a wire map or a :class:`Message`) in the calling task."""
        await self._dispatch(raw, _UNBOUND)

    async def _dispatch(self, raw: Any, bound: object, fresh: Any = _UNBOUND) -> None:
        try:
            msg = Message.from_wire(raw)
        except MessageError as exc:
            ret = reply_sender_of(raw)
            if ret is not None:
                with trio.move_on_after(5):
                    try:
                        await ret.send(Message(Verb.Error, (f"bad message: {exc}",)).to_wire())
                    except Exception:
                        pass
                await aclose_quietly(ret)
            return
        if bound is not _UNBOUND and msg.identity != bound:
            assert bound is None or isinstance(bound, Identity)
            msg = msg.replace(identity=bound)
        req = Request(msg, self)
        handler = self._handlers.get(msg.verb) or self._catchall or not_implemented
        if fresh is not _UNBOUND and msg.verb == Verb.Get and not msg.args:
            handler = functools.partial(_answer_fresh, fresh)
        caller = _CALLER.set(msg.identity)
        try:
            await handler(req)
        except trio.Cancelled:
            if msg.ret is not None and not req.handed_over:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    try:
                        await msg.ret.send(Message(Verb.Error, (f"{msg.verb.name}: interrupted: server stopped",)).to_wire())
                    except Exception:
                        pass
            raise
        except Exception as exc:
            if msg.ret is not None and not req.handed_over:
                with trio.move_on_after(5):
                    try:
                        await msg.ret.send(Message(Verb.Error, (_text(exc),)).to_wire())
                    except Exception:
                        pass
        finally:
            _CALLER.reset(caller)
            if msg.ret is not None and not req.handed_over:
                await aclose_quietly(msg.ret)


class Tree(Server):
    """A server with named children (the original ``utils.Tree``).

    ``Attach("")`` answers ``Ack`` with a handle to the tree itself, ``Attach(name)``
    with a handle to the child (``Error("not found: <name>")`` otherwise), ``Ls``
    with the sorted child names. A child is a :class:`Server` (each Attach gets a
    fresh handle; the tree runs it in its own nursery if it is not running) or a Sender (each Attach gets a handle relaying into it; closing
    that handle does not close the child). The tree must be running to attach.
    """

    def __init__(self, name: str = "", **kw: Any) -> None:
        super().__init__(name, **kw)
        self.children: dict[str, ObjectHandle] = {}
        self.on_attach(self._attach)
        self.on_ls(self._ls)

    def bind(self, name: str, child: ObjectHandle) -> "Tree":
        """Add (or replace) the child ``name``; returns self."""
        self.children[name] = child
        return self

    async def _ls(self, *args: Arg) -> list[Arg]:
        return sorted(self.children)

    async def _attach(self, name: str, req: Request) -> None:
        if not name:
            await req.ack(self)
            return
        child = self.children.get(name)
        if child is None:
            raise RemoteError(f"not found: {name}")
        if isinstance(child, Server) and not child.running:
            await self.nursery.start(child.run)  # a Server child runs as long as the tree
        await req.ack(child if isinstance(child, Server) else self.relay(child))

    def relay(self, target: trio.abc.SendChannel[Any]) -> libchan.PipeSender:
        """A new Sender whose messages are forwarded into ``target`` (which stays open
        when the relay is closed). Runs in this server's nursery."""
        s, r = libchan.pipe()

        async def pump() -> None:
            async with r:
                try:
                    async for m in r:
                        try:
                            await target.send(m)
                        except _GONE:
                            return
                except trio.BrokenResourceError:
                    return  # the handle's holder went away (e.g. its libchan session ended)

        self.nursery.start_soon(pump)
        return s
