"""The one switch that turns every fast path off (``Config.fast_paths``, ``LIBCHAN_FAST_PATHS``).

CI runs the libchan tests a second time with ``LIBCHAN_FAST_PATHS=0`` (those marked
``fast_paths`` assert a fast path is taken and are left out); these tests check that
the switch reaches every fast path and that the long way still carries everything.
"""

from __future__ import annotations

import pytest
import trio

import libchan
from helpers import session_pair


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("false", False), ("1", True), ("", True)])
def test_the_environment_variable_sets_the_default(monkeypatch, value, expected):
    monkeypatch.setenv("LIBCHAN_FAST_PATHS", value)
    assert libchan.Config().fast_paths is expected
    assert libchan.Config(fast_paths=True).fast_paths is True  # an explicit value wins


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_fast_paths_off_reach_every_shortcut_and_the_long_way_works(transport, profile, tmp_path):
    config = libchan.Config(fast_paths=False)
    with trio.fail_after(30):
        async with session_pair(transport, tmp_path, config=config, server_config=config, profile=profile) as (cli, srv):
            for session in (cli, srv):
                core = session._core
                links = [core._own_link] if core._own_link is not None else list(core._links)
                assert links
                for link in links:
                    assert link.io is not None and not link.io.direct and not link.io.tls
                    assert link.mux.lane is None
                    assert getattr(link.mux, "_fast", None) is None
                assert core.short_bytes_below == 0
            sender = await cli.open_sender()
            receiver = await srv.accept_receiver()
            reply, replies = libchan.pipe()
            mine, theirs = libchan.stream_pipe()
            await sender.send({"reply": reply, "stream": theirs, "blob": b"x" * 300_000})
            msg = await receiver.receive()
            assert msg["blob"] == b"x" * 300_000
            for i in range(200):
                await msg["reply"].send(b"%d" % i)
            assert [await replies.receive() for _ in range(200)] == [b"%d" % i for i in range(200)]
            await mine.send_all(b"hello")
            await mine.send_eof()
            assert await msg["stream"].receive_some(100) == b"hello"
            await sender.aclose()


async def test_fast_paths_on_take_the_shortcuts(tmp_path, profile):
    """The same check the other way round, so the test above cannot pass by accident."""
    config = libchan.Config(fast_paths=True)
    async with session_pair("tcp", tmp_path, config=config, server_config=config, profile=profile) as (cli, _srv):
        link = cli._core._own_link
        assert link.io.direct
        assert link.mux.lane is not None
        assert cli._core.short_bytes_below > 0
