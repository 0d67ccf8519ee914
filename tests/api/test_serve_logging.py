"""libchan.serve() logs a handler that ended because its client left as one line
(peer address and reason), and a real bug in a handler with its traceback."""

from __future__ import annotations

import logging

import pytest
import trio

import libchan


async def _serve_one_client(handler, profile: str, client) -> None:
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(libchan.serve, "tcp://127.0.0.1:0", handler)
        async with libchan.connect(urls[0], profile=profile) as session:
            await client(session)
        await trio.sleep(0.2)  # let the server notice and log
        nursery.cancel_scope.cancel()


def _libchan_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "libchan"]


async def test_a_client_that_leaves_is_one_line(profile, caplog):
    caplog.set_level(logging.INFO, logger="libchan")
    handler_ended = trio.Event()
    raised: list[BaseException] = []

    async def handler(session: libchan.Session) -> None:
        try:
            receiver = await session.accept_receiver()
            await receiver.receive()  # the first message
            await receiver.receive()  # never comes: the client leaves
        except BaseException as exc:
            raised.append(exc)
            raise
        finally:
            handler_ended.set()

    async def client(session: libchan.Session) -> None:
        sender = await session.open_sender()
        await sender.send("hello")
        await trio.sleep(0.1)  # the handler waits for the second message

    with trio.fail_after(10):
        await _serve_one_client(handler, profile, client)
        await handler_ended.wait()
    assert raised and isinstance(raised[0], libchan.SessionClosedError), raised
    records = [r for r in _libchan_records(caplog) if "handler" in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    message = record.getMessage()
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert "\n" not in message
    assert "127.0.0.1:" in message  # the peer address
    assert raised[0].reason in message  # the reason
    assert record.levelno < logging.WARNING


async def test_a_bug_in_a_handler_still_logs_its_traceback(profile, caplog):
    caplog.set_level(logging.INFO, logger="libchan")

    async def handler(session: libchan.Session) -> None:
        receiver = await session.accept_receiver()
        await receiver.receive()
        raise RuntimeError("a real bug in the handler")

    async def client(session: libchan.Session) -> None:
        sender = await session.open_sender()
        await sender.send("hello")
        await trio.sleep(0.2)

    with trio.fail_after(10):
        await _serve_one_client(handler, profile, client)
    records = [r for r in _libchan_records(caplog) if r.exc_info is not None]
    assert len(records) == 1, [r.getMessage() for r in _libchan_records(caplog)]
    assert records[0].levelno == logging.ERROR
    assert isinstance(records[0].exc_info[1], RuntimeError)
    assert "Traceback" in caplog.text and "a real bug in the handler" in caplog.text
    assert "127.0.0.1:" in records[0].getMessage()


@pytest.mark.parametrize("nested", [False, True])
async def test_session_closed_errors_in_a_group_count_as_the_client_leaving(nested):
    from libchan.transport import _client_left

    class FakeSession:
        closed_reason = "connection lost (test)"

    exc: BaseException = libchan.SessionClosedError("connection lost (test)")
    if nested:
        exc = ExceptionGroup("handler nursery", [exc, ExceptionGroup("inner", [libchan.SessionClosedError("connection lost (test)")])])
    assert _client_left(exc, FakeSession()) == "connection lost (test)"  # type: ignore[arg-type]
    assert _client_left(ExceptionGroup("g", [exc, RuntimeError("bug")]), FakeSession()) is None  # type: ignore[arg-type]
    assert _client_left(RuntimeError("bug"), FakeSession()) is None  # type: ignore[arg-type]
