"""Errors and failures across several hops (the original hung here: issue #143)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
import trio

import libswarm
from libswarm import RemoteError, Verb
from helpers import session_pair

TEXT = "boom: disk 100% full (%s %d)"


def failing() -> libswarm.Server:
    async def fail(*args):
        raise RemoteError(TEXT)

    async def hang(req):
        await trio.sleep_forever()

    return libswarm.Server("C").on_get(fail).on(Verb.Start, hang)


def raw_proxy(target) -> libswarm.Server:
    """Forward every request as is (its reply channel goes along)."""
    async def fwd(req):
        await req.forward(target)
    return libswarm.Server("raw proxy").catchall(fwd)


def calling_proxy(target: libswarm.Client) -> libswarm.Server:
    """Re-issue each request with its own Client call (a new reply channel per hop)."""
    async def get(*args):
        return await target.get(*args)

    async def start(*args):
        await target.start(*args)

    return libswarm.Server("calling proxy").on_get(get).on_start(start)


@asynccontextmanager
async def over_session(server: libswarm.Server, transport: str, profile: str, tmp_path):
    async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(libswarm.serve_session, srv, server)
            yield libswarm.Client(await cli.open_sender()), (cli, srv)
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_error_crosses_three_hops(profile, tmp_path):
    """caller -> A (raw proxy) -tcp session-> B (calling proxy) -memory session-> C (fails)."""
    with trio.fail_after(15):
        async with failing() as c:
            async with over_session(c, "memory", profile, tmp_path) as (to_c, _):
                async with calling_proxy(to_c) as b:
                    async with over_session(b, "tcp", "h2", tmp_path) as (to_b, _):
                        async with raw_proxy(to_b.sender) as a:
                            caller = libswarm.Client(a.sender())
                            for _ in range(3):
                                with pytest.raises(RemoteError) as info:
                                    await caller.get()
                                assert info.value.text == TEXT


async def test_error_crosses_debug_stages():
    """Three debug stages in a chain in front of a failing engine."""
    lines = []

    class Sink:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    from libswarm.backends.debug import Debug

    class Failing(libswarm.Service):
        async def run(self, input, output):
            async with failing() as srv:
                await srv.serve(input)

    stages = [Debug("d1", file=Sink()), Debug("d2", file=Sink()), Debug("d3", file=Sink()), Failing()]
    in_s, in_r = libswarm_pipe()
    out_s, out_r = libswarm_pipe()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(libswarm.chain, stages, in_r, out_s)
            with pytest.raises(RemoteError) as info:
                await libswarm.Client(in_s).get()
            assert info.value.text == TEXT
            await in_s.aclose()
    assert any("---> Outbound Message ---> { Verb: Get, Args: [] }" in l for l in lines)
    assert any("<--- Inbound Message <--- { Verb: Error" in l for l in lines)


def libswarm_pipe():
    import libchan
    return libchan.pipe()


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_a_dying_hop_fails_pending_requests(profile, tmp_path):
    """A request parked on C through a session: killing the session fails it at the caller."""
    with trio.fail_after(15):
        async with failing() as c:
            async with session_pair("memory", tmp_path, profile=profile) as (cli, srv):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(libswarm.serve_session, srv, c)
                    to_c = libswarm.Client(await cli.open_sender())
                    async with calling_proxy(to_c) as b, raw_proxy(b.sender()) as a:
                        caller = libswarm.Client(a.sender())
                        result = {}

                        async def call():
                            try:
                                await caller.start()
                            except libswarm.LibswarmError as exc:
                                result["exc"] = exc

                        async with trio.open_nursery() as calls:
                            calls.start_soon(call)
                            calls.start_soon(call)
                            await trio.sleep(0.2)
                            await cli.aclose()  # the hop between B and C dies
                        nursery.cancel_scope.cancel()
    exc = result["exc"]
    # B saw NoReplyError (or lost the object) and answered Error; the caller gets it
    assert isinstance(exc, RemoteError), exc


async def test_a_stopped_hop_fails_pending_requests():
    with trio.fail_after(10):
        async with failing() as c:
            async with trio.open_nursery() as nursery:
                b = calling_proxy(libswarm.Client(c.sender()))
                scope = trio.CancelScope()

                async def run_b(task_status=trio.TASK_STATUS_IGNORED):
                    with scope:
                        await b.run(task_status=task_status)

                await nursery.start(run_b)
                caller = libswarm.Client(b.sender())
                nursery.start_soon(_later, scope.cancel)
                with pytest.raises(RemoteError) as info:
                    await caller.start()
                assert info.value.text == "Start: interrupted: server stopped"


async def _later(fn):
    await trio.sleep(0.1)
    fn()


async def test_not_implemented_crosses_hops():
    async with libswarm.Server() as c, raw_proxy(c.sender()) as b, raw_proxy(b.sender()) as a:
        with pytest.raises(RemoteError) as info:
            await libswarm.Client(a.sender()).watch()
        assert info.value.text == "not implemented: Watch"
