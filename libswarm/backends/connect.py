"""``connect``: forward this stage's input to a remote ``listen``.

Args: ``[--cert FILE --key FILE --ca FILE] URL`` with URL ``tcp://HOST:PORT``,
``tls://HOST:PORT`` or ``unix:///PATH``. Over TLS the server is always verified
(against ``--ca``, or the system store), host name or IP included; ``--cert``/``--key``
present a client certificate (a ``listen`` on tls:// requires one).

Every message of the input goes, in order, on one channel of a libchan session to the
remote ``listen``, i.e. to the remote chain's next stage. A request's replies are relayed
back to its ``Ret``: when the connection drops (the remote swarmd died, the network
broke) every request still waiting is answered
``Error("connect URL: connection lost: <reason>")`` at once and its reply channel closed;
a request that cannot be delivered is answered ``Error("connect URL: <reason>")``.
Handles received in replies are passed on untouched (they are remote objects: they fail
when the connection does).

The connection is opened when the service starts; if that fails (or the connection drops
later), a ``Log("connect URL: ...")`` line is emitted on the output and the next request
reconnects. Nothing else is emitted on the output; it closes when the service ends,
which is when its input ends (the session is then closed).
"""

from __future__ import annotations

from typing import Any

import trio

import libchan

from .._errors import MessageError
from .._message import Message, reply_sender_of
from libchan.closing import aclose_quietly
from .._service import Service
from .._verbs import Verb
from ._remote import client_context, describe, parse_remote_args

__all__ = ["Connect"]

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
CONNECT_TIMEOUT = 10.0


class _Link:
    """One live session to the remote listen."""

    def __init__(self) -> None:
        self.session: libchan.Session | None = None
        self.sender: Any = None
        self.dead = trio.Event()
        self.reason = "connection closed"
        self.scope = trio.CancelScope()


class Connect(Service):
    """A stage that forwards to a remote chain (see the module docstring)."""

    connect_timeout = CONNECT_TIMEOUT

    def __init__(self, *args: str) -> None:
        self.options = parse_remote_args("connect", args)
        self.url = self.options.url
        self.ssl = client_context(self.options) if self.options.scheme == "tls" else None
        self._link: _Link | None = None
        self._nursery: trio.Nursery | None = None
        self._output: Any = None
        self.connections = 0

    async def run(self, input: Any, output: Any) -> None:
        self._output = output
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._ensure()
                except _ConnectFailed as exc:
                    await self._log(f"{exc}; will retry on the next request")
                while True:
                    try:
                        raw = await input.receive()
                    except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
                        break
                    await self._forward(raw)
                if self._link is not None:
                    await aclose_quietly(self._link.sender)
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None

    async def _log(self, text: str) -> None:
        try:
            with trio.move_on_after(5):
                await self._output.send(Message(Verb.Log, (text,)).to_wire())
        except _GONE:
            pass

    # -- the session ---------------------------------------------------------

    async def _ensure(self) -> _Link:
        link = self._link
        if link is not None and not link.dead.is_set():
            return link
        assert self._nursery is not None
        link = _Link()
        try:
            with trio.fail_after(self.connect_timeout):
                await self._nursery.start(self._hold, link)
        except trio.TooSlowError:
            link.scope.cancel()
            raise _ConnectFailed(f"connect {self.url}: no connection within {self.connect_timeout} s") from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, libchan.LibchanError) as exc:
            raise _ConnectFailed(f"connect {self.url}: {_reason(exc)}") from None
        self._link = link
        self.connections += 1
        return link

    async def _hold(self, link: _Link, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with link.scope:
                async with libchan.connect(self.url, ssl=self.ssl) as session:
                    link.session = session
                    link.sender = await session.open_sender()
                    task_status.started()
                    # a listen never opens channels towards us: this returns when the session ends
                    while True:
                        try:
                            extra = await session.accept_receiver()
                        except trio.EndOfChannel:
                            link.reason = "the remote side closed the session"
                            break
                        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                            link.reason = _reason(exc)
                            break
                        await aclose_quietly(extra)
        finally:
            link.dead.set()
        if self._link is link and self._nursery is not None:
            self._nursery.start_soon(self._log, f"connect {self.url}: connection lost: {link.reason}")

    # -- forwarding ------------------------------------------------------------

    async def _forward(self, raw: Any) -> None:
        ret = reply_sender_of(raw)
        try:
            msg = Message.from_wire(raw)
        except MessageError as exc:
            if ret is not None:
                await _fail(ret, f"bad message: {exc}")
            return
        try:
            link = await self._ensure()
        except _ConnectFailed as exc:
            if msg.ret is not None:
                await _fail(msg.ret, str(exc))
            return
        fwd = msg
        relay_r = None
        if msg.ret is not None:
            relay_s, relay_r = libchan.pipe()
            fwd = msg.replace(ret=relay_s)
        try:
            await link.sender.send(fwd.to_wire())
        except (_GONE + (libchan.LibchanError,)) as exc:
            link.dead.set()
            if relay_r is not None:
                await aclose_quietly(relay_r)
                await _fail(msg.ret, f"connect {self.url}: connection lost: {_reason(exc)}")
            return
        if relay_r is not None:
            assert self._nursery is not None
            self._nursery.start_soon(self._relay, link, relay_r, msg.ret)

    async def _relay(self, link: _Link, replies: Any, ret: Any) -> None:
        """Copy the replies into the caller's ``ret``; a dropped connection becomes an Error."""
        lost: str | None = None
        try:
            async with trio.open_nursery() as nursery:

                async def watch_link() -> None:
                    await link.dead.wait()
                    # the session fails its forwarded channels; give it a moment, then fail ourselves
                    await trio.sleep(0.5)
                    nonlocal lost
                    lost = lost or link.reason
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch_link)
                while True:
                    try:
                        raw = await replies.receive()
                    except trio.EndOfChannel:
                        if link.dead.is_set() or (link.session is not None and link.session.closed):
                            lost = link.reason
                        break
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        lost = _reason(exc)
                        break
                    try:
                        await ret.send(raw)
                    except _GONE:
                        break  # the caller left: closing ``replies`` tells the remote side
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await aclose_quietly(replies)
                if lost is not None:
                    await _fail(ret, f"connect {self.url}: connection lost: {lost}")
                else:
                    await aclose_quietly(ret)


class _ConnectFailed(Exception):
    pass


def _reason(exc: BaseException) -> str:
    return describe(exc)


async def _fail(ret: Any, text: str) -> None:
    with trio.CancelScope(shield=True):
        with trio.move_on_after(5):
            try:
                await ret.send(Message(Verb.Error, (text,)).to_wire())
            except Exception:
                pass
        await aclose_quietly(ret)
