"""``debug``: print every message passing through, and forward it to the output.

Args: an optional label (default ``debug``) used as the line prefix.

Every message arriving on the input is printed as
``[debug] ---> Outbound Message ---> { Verb: Ls, Args: [a b] }`` and sent on the output.
A request's replies are relayed back to its sender, each printed as
``[debug] <--- Inbound Message <--- { Verb: Set, Args: [...] }``; the original reply
channel is closed when the downstream one ends (or aborted when it breaks), so
errors and dead hops propagate through a debug stage. Handles in replies (``Ret``) are
passed on intact. State is per instance (``count``, ``lines``); lines go to ``file``
(default ``sys.stderr``).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import trio

import libchan

from .._message import Message, reply_sender_of
from .._service import Service
from .._verbs import Verb

__all__ = ["Debug", "format_message"]


def format_message(msg: Message) -> str:
    """``{ Verb: Ls, Args: [a b] }``, as the original printed it (bytes shown with repr)."""
    args = " ".join(a if isinstance(a, str) else repr(a) for a in msg.args)
    return f"{{ Verb: {msg.verb.name}, Args: [{args}] }}"


class Debug(Service):
    """A message tap (see the module docstring)."""

    def __init__(self, *args: str, file: TextIO | None = None) -> None:
        self.label = args[0] if args else "debug"
        self.file = file
        self.count = 0
        self.lines: list[str] = []

    def _print(self, line: str) -> None:
        line = f"[{self.label}] {line}"
        self.lines.append(line)
        print(line, file=self.file if self.file is not None else sys.stderr, flush=True)

    async def run(self, input: Any, output: Any) -> None:
        async with trio.open_nursery() as nursery:
            async for raw in input:
                try:
                    msg = Message.from_wire(raw)
                except ValueError as exc:
                    self._print(f"dropped a bad message: {exc}")
                    ret = reply_sender_of(raw)
                    if ret is not None:
                        nursery.start_soon(self._fail, ret, f"bad message: {exc}")
                    continue
                self.count += 1
                self._print(f"---> Outbound Message ---> {format_message(msg)}")
                fwd = msg
                if msg.ret is not None:
                    r_s, r_r = libchan.pipe()
                    fwd = msg.replace(ret=r_s)
                    nursery.start_soon(self._relay, r_r, msg.ret)
                try:
                    await output.send(fwd.to_wire())
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self._print(f"Failed to forward msg. Reason: {exc or type(exc).__name__}")
                    if msg.ret is not None:
                        await fwd.ret.aclose()

    async def _fail(self, ret: Any, text: str) -> None:
        try:
            await ret.send(Message(Verb.Error, (text,)).to_wire())
        except Exception:
            pass
        finally:
            await ret.aclose()

    async def _relay(self, replies: Any, ret: Any) -> None:
        try:
            while True:
                try:
                    raw = await replies.receive()
                except (trio.EndOfChannel, trio.BrokenResourceError):
                    break
                try:
                    self._print(f"<--- Inbound Message <--- {format_message(Message.from_wire(raw))}")
                except ValueError:
                    self._print("<--- Inbound Message <--- (not a libswarm message)")
                try:
                    await ret.send(raw)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
        finally:
            with trio.CancelScope(shield=True):
                await replies.aclose()
                try:
                    await ret.aclose()
                except Exception:
                    pass
