"""``fakeclient``: emits a heartbeat on its output.

Args: an optional interval in seconds (default 1). On start it sends
``Log("fake client starting")``, then ``Log("fake client heartbeat!")`` every interval.
Unlike the original it reads its input: every request is answered
``Error("not implemented: <Verb>")``. It stops when its input ends.
"""

from __future__ import annotations

from typing import Any

import trio

from .._errors import UsageError
from .._message import Message
from .._server import Server
from .._service import Service
from .._verbs import Verb

__all__ = ["FakeClient"]


class FakeClient(Service):
    def __init__(self, *args: str) -> None:
        try:
            self.interval = float(args[0]) if args else 1.0
        except ValueError:
            raise UsageError("fakeclient: usage: fakeclient [INTERVAL_SECONDS]") from None
        if self.interval <= 0 or len(args) > 1:
            raise UsageError("fakeclient: usage: fakeclient [INTERVAL_SECONDS]")
        self.beats = 0

    async def run(self, input: Any, output: Any) -> None:
        async def beat() -> None:
            try:
                await output.send(Message(Verb.Log, ("fake client starting",)).to_wire())
                while True:
                    await trio.sleep(self.interval)
                    self.beats += 1
                    await output.send(Message(Verb.Log, ("fake client heartbeat!",)).to_wire())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(beat)
            await Server("fakeclient").serve(input)
            nursery.cancel_scope.cancel()
