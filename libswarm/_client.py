"""The caller's side: :class:`Client` wraps any Sender of libswarm messages."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import trio

import libchan
from libchan.closing import close_at_once

from ._errors import NoReplyError, RemoteError, ReplyTimeoutError, UnexpectedReplyError, UnreachableError
from ._identity import Identity
from ._message import Arg, Message
from ._server import current_identity
from ._verbs import Verb

__all__ = ["Client", "Output", "Attached"]

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class Output(trio.abc.ReceiveChannel[Message]):
    """A stream of :class:`Message` s: the rest of a reply channel.

    Returned by :meth:`Client.attach` (the object's output), :meth:`Client.watch`
    (its changes) and :meth:`Client.call`. ``async for msg in output`` ends when
    the object closes the stream; ``aclose()`` tells the object to stop sending.
    A received ``Error`` is delivered as a message like any other (use
    :meth:`raise_errors` to turn it into :class:`RemoteError`). A stream that
    *breaks* (a hop died) ends iteration with :class:`NoReplyError`.
    """

    def __init__(self, receiver: trio.abc.ReceiveChannel[Any], *, raise_errors: bool = False) -> None:
        self._receiver = receiver
        self._raise = raise_errors

    def raise_errors(self) -> "Output":
        """Make ``receive`` raise :class:`RemoteError` for an ``Error`` message."""
        self._raise = True
        return self

    async def receive(self) -> Message:
        try:
            raw = await self._receiver.receive()
        except trio.BrokenResourceError as exc:
            raise NoReplyError(f"stream broke: {exc}") from exc
        msg = Message.from_wire(raw)
        if self._raise and msg.verb == Verb.Error:
            raise RemoteError(msg.text)
        return msg

    async def aclose(self) -> None:
        if not close_at_once(self._receiver):  # (a pipe end: no checkpoint, one scheduler pass less)
            await self._receiver.aclose()

    async def collect(self) -> list[Message]:
        """Read every remaining message until the end of the stream."""
        return [m async for m in self]


class Attached(NamedTuple):
    """What :meth:`Client.attach` returns.

    ``handle``: a Client for the object the Ack named (its input, or the named
    child), or None when the Ack carried no handle. ``output``: the rest of the
    reply channel, i.e. the object's output stream (often empty for a child).
    """

    handle: "Client | None"
    output: Output


class Client:
    """Call libswarm verbs on an object (any libchan Sender of libswarm messages).

    Every request carries a fresh reply pipe. The outcome of a call is always one of:
    the answer; :class:`RemoteError` (the object answered ``Error``, with its text);
    :class:`NoReplyError` (the reply channel ended or broke unanswered -- a dead
    hop, a stopped server); :class:`ReplyTimeoutError` (no answer within
    ``timeout`` seconds, if set); :class:`UnreachableError` (the object's channel
    is closed, nothing was sent); :class:`UnexpectedReplyError`. A call never
    hangs on a closed or broken channel.

    ``timeout`` bounds the wait for the *first* answer of each call (None: no bound).
    ``identity``: stamped on every message sent that carries none (an entry point such as
    ``dockerserver`` calls the chain on behalf of its client); handles from ``spawn`` and
    ``attach`` inherit it. Without one, a message that carries none gets the identity of the
    request the calling task is handling (:func:`libswarm.current_identity`), if any.
    ``aclose()`` closes the wrapped sender (a handle from an Ack is owned by its Client).
    """

    def __init__(self, sender: "trio.abc.SendChannel[Any] | Client", *, timeout: float | None = None,
                 identity: Identity | None = None) -> None:
        self.sender: trio.abc.SendChannel[Any] = sender.sender if isinstance(sender, Client) else sender
        self.timeout = timeout
        self.identity = identity

    def __repr__(self) -> str:
        return f"<libswarm.Client {self.sender!r}>"

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the wrapped sender."""
        if close_at_once(self.sender):  # (a pipe end: no checkpoint, one scheduler pass less)
            return
        try:
            await self.sender.aclose()
        except _GONE:
            pass

    # -- low level ----------------------------------------------------------

    async def send(self, msg: Message) -> None:
        """Send one message as is (one-way unless it carries a ``ret``)."""
        if msg.identity is None:
            identity = self.identity if self.identity is not None else current_identity()
            if identity is not None:
                msg = msg.replace(identity=identity)
        try:
            await self.sender.send(msg.to_wire())
        except _GONE as exc:
            raise UnreachableError(f"{msg.verb.name}: object unreachable: {exc or type(exc).__name__}") from exc

    async def call(self, verb: Verb | str | int, *args: Arg, att: Any = None) -> tuple[Message, Output]:
        """Send ``verb(args)`` with a reply pipe; return ``(first answer, rest of the replies)``.

        An ``Error`` answer raises :class:`RemoteError` (and closes the replies).
        The caller owns the returned :class:`Output` and should close it.
        """
        verb = Verb.parse(verb)
        ret, replies = libchan.pipe()
        identity = self.identity if self.identity is not None else current_identity()
        try:
            await self.send(Message(verb, args, ret, att, identity))  # (stamped here: made once)
        except BaseException:
            replies.close()
            raise
        try:
            first = await self._first(verb, replies)
        except BaseException:
            replies.close()
            raise
        if first.verb == Verb.Error:
            replies.close()
            raise RemoteError(first.text, verb)
        return first, Output(replies)

    async def _first(self, verb: Verb, replies: libchan.PipeReceiver) -> Message:
        timeout = math.inf if self.timeout is None else self.timeout
        with trio.move_on_after(timeout) as scope:
            try:
                raw = await replies.receive()
            except trio.EndOfChannel:
                raise NoReplyError("reply channel closed without an answer", verb) from None
            except trio.BrokenResourceError as exc:
                raise NoReplyError(f"reply channel broke: {exc}", verb) from exc
            return Message.from_wire(raw)
        assert scope.cancelled_caught
        raise ReplyTimeoutError(f"no answer within {self.timeout} s", verb)

    async def _expect(self, verb: Verb, answer: Verb, *args: Arg, att: Any = None) -> Message:
        first, rest = await self.call(verb, *args, att=att)
        await rest.aclose()
        if first.verb != answer:
            raise UnexpectedReplyError(f"{verb.name}: unexpected answer {first.verb.name}{list(first.args)!r}")
        return first

    # -- the verbs ----------------------------------------------------------

    async def ls(self, *args: Arg) -> list[Arg]:
        """``Ls`` -> the names of the object's children (answered by ``Set``)."""
        return list((await self._expect(Verb.Ls, Verb.Set, *args)).args)

    async def spawn(self, *args: Arg) -> "Client":
        """``Spawn(args)`` -> a Client for the new object (the handle in the ``Ack``)."""
        ack = await self._expect(Verb.Spawn, Verb.Ack, *args)
        if ack.ret is None:
            raise UnexpectedReplyError("Spawn: the Ack carries no object")
        return Client(ack.ret, timeout=self.timeout, identity=self.identity)

    async def attach(self, name: str = "", *args: Arg) -> Attached:
        """``Attach(name, args)`` -> :class:`Attached` ``(handle, output)``.

        ``name=""`` attaches to the object itself: ``handle`` is its input and
        ``output`` carries what it emits (e.g. ``Log("stdout", chunk)``) until it
        ends. A name navigates to a child: ``handle`` is the child.
        """
        first, rest = await self.call(Verb.Attach, name, *args)
        if first.verb != Verb.Ack:
            await rest.aclose()
            raise UnexpectedReplyError(f"Attach: unexpected answer {first.verb.name}")
        handle = Client(first.ret, timeout=self.timeout, identity=self.identity) if first.ret is not None else None
        return Attached(handle, rest)

    async def child(self, name: str) -> "Client":
        """``Attach(name)`` for navigation: return the child's Client, drop the output."""
        return (await self.lookup(name))[0]

    async def lookup(self, name: str) -> tuple["Client", tuple[Arg, ...]]:
        """``Attach(name)`` for navigation: the child's Client and the args of the ``Ack``
        (an engine may give the child's state there, its ``Get()`` answer as of the lookup:
        spec/LIBSWARM.md 3); the output is dropped."""
        first, rest = await self.call(Verb.Attach, name)
        await rest.aclose()
        if first.verb != Verb.Ack:
            raise UnexpectedReplyError(f"Attach: unexpected answer {first.verb.name}")
        if first.ret is None:
            raise UnexpectedReplyError(f"Attach({name!r}): the Ack carries no object")
        return Client(first.ret, timeout=self.timeout, identity=self.identity), first.args

    async def start(self, *args: Arg) -> None:
        """``Start`` -> ``Ack``."""
        await self._expect(Verb.Start, Verb.Ack, *args)

    async def stop(self, *args: Arg) -> None:
        """``Stop`` -> ``Ack``."""
        await self._expect(Verb.Stop, Verb.Ack, *args)

    async def get(self, *args: Arg) -> Arg:
        """``Get(args)`` -> the single value of the ``Set`` answer (str or bytes)."""
        answer = await self._expect(Verb.Get, Verb.Set, *args)
        if len(answer.args) != 1:
            raise UnexpectedReplyError(f"Get: expected 1 value, got {len(answer.args)}")
        return answer.args[0]

    async def set(self, *values: Arg) -> None:
        """One-way ``Set(values)``."""
        await self.send(Message(Verb.Set, values))

    async def watch(self, *args: Arg) -> Output:
        """``Watch`` -> after the ``Ack``, an :class:`Output` of change messages."""
        first, rest = await self.call(Verb.Watch, *args)
        if first.verb != Verb.Ack:
            await rest.aclose()
            raise UnexpectedReplyError(f"Watch: unexpected answer {first.verb.name}")
        return rest

    async def log(self, *args: Arg) -> None:
        """One-way ``Log(args)`` (a log line, or ``("stdin", chunk)`` into an input)."""
        await self.send(Message(Verb.Log, args))

    async def error(self, text: str) -> None:
        """One-way ``Error(text)``."""
        await self.send(Message(Verb.Error, (text,)))

    async def connect(self, *args: Arg) -> Any:
        """``Connect(args)`` -> the byte stream attached to the ``Connect`` answer."""
        answer = await self._expect(Verb.Connect, Verb.Connect, *args)
        if answer.att is None:
            raise UnexpectedReplyError("Connect: missing attachment")
        return answer.att
