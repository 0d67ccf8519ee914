"""The server's accept loop: it outlives running out of descriptors or memory.

Like ``trio.serve_listeners``, but when ``accept()`` fails because the process or the
system is out of descriptors or buffers (EMFILE, ENFILE, ENOBUFS, ENOMEM) it says so in
one rate-limited line (:mod:`libchan.peerlog`), not a traceback every 100 ms, waits a
little and accepts again: connections waiting in the listen backlog are served as soon
as descriptors are free again, and the connections already open go on meanwhile.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any, Awaitable, Callable, Sequence

import trio

from .peerlog import peer_log

__all__ = ["serve_listeners", "RETRY_AFTER"]

log = logging.getLogger("libchan")

#: errno values that mean "no resources now" rather than "this listener is broken".
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Seconds to wait before accepting again after such an error.
RETRY_AFTER = 0.1


async def serve_listeners(
    handler: Callable[[Any], Awaitable[Any]],
    listeners: Sequence[trio.abc.Listener[Any]],
    *,
    handler_nursery: trio.Nursery,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on every listener until cancelled; each connection runs ``handler(stream)``
    in ``handler_nursery``. Closes the listeners when it returns."""
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, handler, listener, handler_nursery)
        task_status.started()


async def _accept_loop(
    handler: Callable[[Any], Awaitable[Any]], listener: trio.abc.Listener[Any], handler_nursery: trio.Nursery
) -> None:
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in CAPACITY_ERRNOS:
                    raise
                peer_log(
                    log,
                    logging.ERROR,
                    "cannot accept connections: %s (%s); existing connections go on, accepting again every %g s",
                    os.strerror(exc.errno),
                    errno.errorcode.get(exc.errno, "?"),
                    RETRY_AFTER,
                )
                await trio.sleep(RETRY_AFTER)
                continue
            handler_nursery.start_soon(handler, stream)
