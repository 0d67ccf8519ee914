"""engine/hosted.py: the tasks of a server's session run in the server's nursery (the
session has no nursery of its own) and keep a nursery's structure: the session's end
cancels them and waits for them, a task that raises is logged and ends its session but
no other, and nothing starts once they are closed."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

import libchan
from libchan.engine.hosted import HostedTasks
from helpers import served


async def test_aclose_cancels_what_runs_and_waits_until_it_ended():
    ended: list[str] = []

    async def worker(name: str) -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.05)  # (a cleanup that takes a while)
            ended.append(name)

    async with trio.open_nursery() as host:
        tasks = HostedTasks(host, lambda exc: None)
        tasks.start_soon(worker, "a")
        tasks.start_soon(worker, "b")
        await trio.testing.wait_all_tasks_blocked()
        assert tasks.running == 2 and len(host.child_tasks) == 2
        await tasks.aclose()
        assert sorted(ended) == ["a", "b"] and tasks.running == 0  # waited for both
        assert not host.child_tasks
        with pytest.raises(RuntimeError):
            tasks.start_soon(worker, "c")


async def test_a_task_started_just_before_aclose_does_not_run():
    ran = []

    async def worker() -> None:
        ran.append(1)

    async with trio.open_nursery() as host:
        tasks = HostedTasks(host, lambda exc: None)
        tasks.start_soon(worker)
        await tasks.aclose()  # (no checkpoint in between: it had not run yet)
        assert ran == [] and tasks.running == 0


async def test_aclose_waits_even_when_the_caller_is_cancelled():
    ended = []

    async def worker() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.05)
            ended.append(1)

    async with trio.open_nursery() as host:
        tasks = HostedTasks(host, lambda exc: None)
        tasks.start_soon(worker)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            await tasks.aclose()
        assert ended == [1]


async def test_a_task_that_raises_goes_to_on_error_and_spares_the_hosts_other_tasks():
    errors: list[BaseException] = []
    sibling_done = trio.Event()

    async def bad() -> None:
        await trio.sleep(0)
        raise ValueError("boom")

    async def sibling() -> None:
        await trio.sleep(0.1)
        sibling_done.set()

    async with trio.open_nursery() as host:
        host.start_soon(sibling)
        tasks = HostedTasks(host, errors.append)
        tasks.start_soon(bad)
        with trio.fail_after(5):
            await sibling_done.wait()
        assert [str(e) for e in errors] == ["boom"] and tasks.running == 0
        await tasks.aclose()


async def test_a_server_sessions_forwarder_runs_in_the_servers_nursery_and_ends_with_it(tmp_path):
    """A server's handler sends a local channel to its client: the session's forwarder
    for it is a task of the server's nursery, not of a nursery of the session; when the
    client closes the session, the forwarder ends before the handler's ``async with``
    does, and the server goes on serving."""
    seen: dict = {}
    finished = trio.Event()

    async def handler(session: libchan.Session) -> None:
        try:
            async for receiver in session:
                request = await receiver.receive()
                mine, theirs = libchan.pipe()
                await request["reply"].send({"items": theirs})
                await mine.send("first")
                core = session._core
                seen["tasks"] = core._nursery
                seen["running"] = core._nursery.running
        finally:
            seen["after"] = seen["tasks"].running if "tasks" in seen else None
            finished.set()

    with trio.fail_after(20):
        async with served("tcp", handler, tmp_path) as (url, _):
            for round_ in range(2):
                async with libchan.connect(url) as client:
                    sender = await client.open_sender()
                    reply, reply_end = libchan.pipe()
                    await sender.send({"reply": reply})
                    got = await reply_end.receive()
                    assert await got["items"].receive() == "first"
                    while "running" not in seen:
                        await trio.sleep(0.01)
                    assert isinstance(seen["tasks"], HostedTasks) and seen["running"] >= 1
                await finished.wait()
                assert seen["tasks"].running == 0  # the forwarder ended with the session
                seen.clear()
                finished = trio.Event()


async def test_a_session_task_that_raises_is_logged_and_ends_that_session_only(tmp_path, caplog, monkeypatch):
    """(A bug's path: the session's tasks do not raise.) With a nursery of its own, such
    an exception ended the session; in the server's nursery it must not end the server:
    it is logged, its session ends, other sessions go on."""
    from libchan.engine import core as core_module

    sessions: list[libchan.Session] = []

    async def handler(session: libchan.Session) -> None:
        sessions.append(session)
        async for receiver in session:
            async for msg in receiver:
                pass

    async def exploding_expiry(self) -> None:
        raise ValueError("a bug in a session task")

    with trio.fail_after(20):
        async with served("tcp", handler, tmp_path) as (url, _):
            async with libchan.connect(url) as other, libchan.connect(url) as victim:
                s = await other.open_sender()
                await s.send("hello")
                while len(sessions) < 2:
                    await trio.sleep(0.01)
                target = next(x for x in sessions if x._core.session_id == victim._core.session_id)
                monkeypatch.setattr(core_module.SessionCore, "_expiry_task", exploding_expiry)
                with caplog.at_level(logging.ERROR, logger="libchan"):
                    target._core._nursery.start_soon(target._core._expiry_task)
                    while not target._core.closed:
                        await trio.sleep(0.01)
                assert "libchan session task failed" in caplog.text and "a bug in a session task" in caplog.text
                assert "internal error" in target._core.closed_reason
                monkeypatch.undo()
                # the other session, and the server, go on
                await s.send("still here")
                async with libchan.connect(url) as third:
                    t = await third.open_sender()
                    await t.send("new")
