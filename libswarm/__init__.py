"""libswarm for trio: composable services speaking 13 verbs over libchan.

An *object* is any libchan Sender that accepts libswarm messages
``{verb, args, ret, att}``; it answers requests on the message's ``ret`` Sender.
The whole surface:

* :class:`Verb` (the 13 verbs, numbered 0-12), :class:`Message` (``to_wire``/``from_wire``),
  :class:`Identity` (who is asking, set where a request enters a chain);
* :class:`Client` -- call verbs on an object: ``ls``, ``spawn``, ``attach``, ``child``,
  ``start``, ``stop``, ``get``, ``set``, ``watch``, ``log``, ``error``, ``connect``, ``call``;
  :class:`Output` (a stream of reply messages), :class:`Attached`;
* :class:`Server` -- answer verbs with handlers (:class:`Request`); :class:`Tree` (named
  children); :class:`Task` (a function as an object: attach, then start);
* :class:`Service` -- a backend instance, ``run(input, output)``; :func:`run_service`,
  :func:`open_service`, :func:`chain` (swarmd-style pipelines), :func:`serve_session`;
* errors: :class:`LibswarmError` > :class:`RemoteError`, :class:`NoReplyError` >
  :class:`ReplyTimeoutError`, :class:`UnreachableError`, :class:`UnexpectedReplyError`,
  :class:`MessageError`, :class:`UsageError`;
* :mod:`libswarm.backends` -- ``get(name)``, ``available()``, ``from_spec(spec)``.

::

    import libswarm, trio
    from libswarm import backends

    async def main():
        async with libswarm.open_service(backends.get("simulator")()) as (engine, _):
            web = await engine.spawn('{"name": "web", "Cmd": ["echo", "hi"]}')
            handle, output = await web.attach("")
            await web.start()
            print([m.args async for m in output])   # [('stdout', b'hi\\n')]

    trio.run(main)

The wire encoding and every convention are in spec/LIBSWARM.md.
"""

from typing import TYPE_CHECKING

# The names are imported when first used (PEP 562): swarmd --help, swarmctl --help and
# --version do not import trio and libchan's engine. Type checkers see the imports below.
if TYPE_CHECKING:
    from ._client import Attached, Client, Output
    from ._errors import (
        LibswarmError,
        MessageError,
        NoReplyError,
        RemoteError,
        ReplyTimeoutError,
        UnexpectedReplyError,
        UnreachableError,
        UsageError,
    )
    from ._identity import ANONYMOUS, Identity
    from ._message import Arg, Message
    from ._server import DEFAULT_MAX_CONCURRENCY, Handler, Request, Server, Tree, current_identity, not_implemented
    from ._service import Service, Task, chain, open_service, run_service, serve_session
    from ._verbs import Verb

__all__ = [
    "Verb",
    "Message",
    "Arg",
    "Identity",
    "ANONYMOUS",
    "Client",
    "Output",
    "Attached",
    "Server",
    "current_identity",
    "Request",
    "Handler",
    "Tree",
    "Task",
    "not_implemented",
    "DEFAULT_MAX_CONCURRENCY",
    "Service",
    "run_service",
    "open_service",
    "chain",
    "serve_session",
    "LibswarmError",
    "RemoteError",
    "NoReplyError",
    "ReplyTimeoutError",
    "UnreachableError",
    "UnexpectedReplyError",
    "MessageError",
    "UsageError",
]

#: exported name -> the module that defines it
_EXPORTS = {
    "Attached": "_client",
    "Client": "_client",
    "Output": "_client",
    "LibswarmError": "_errors",
    "MessageError": "_errors",
    "NoReplyError": "_errors",
    "RemoteError": "_errors",
    "ReplyTimeoutError": "_errors",
    "UnexpectedReplyError": "_errors",
    "UnreachableError": "_errors",
    "UsageError": "_errors",
    "ANONYMOUS": "_identity",
    "Identity": "_identity",
    "Arg": "_message",
    "Message": "_message",
    "DEFAULT_MAX_CONCURRENCY": "_server",
    "Handler": "_server",
    "Request": "_server",
    "Server": "_server",
    "current_identity": "_server",
    "Tree": "_server",
    "not_implemented": "_server",
    "Service": "_service",
    "Task": "_service",
    "chain": "_service",
    "open_service": "_service",
    "run_service": "_service",
    "serve_session": "_service",
    "Verb": "_verbs",
}


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name stays an error

    from libchan._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
    del lazy_exports
