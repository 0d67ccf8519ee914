"""The blocking one-request client (libchan/oneshot.py) ticks as the engine does (spec 13):
every third of the shorter of keepalive_interval and peer_timeout, so that a server whose
peer_timeout is shorter than keepalive_interval hears its PINGs in time."""

from __future__ import annotations

import time

import h2.config
import h2.connection
import h2.events
import pytest
import trio

import libchan
from libchan import oneshot


def test_the_tick_is_a_third_of_the_shorter_timer():
    assert libchan.Config().tick_interval == 5.0
    assert libchan.Config(keepalive_interval=30, peer_timeout=0.9).tick_interval == pytest.approx(0.3)
    assert libchan.Config(keepalive_interval=0.6, peer_timeout=45).tick_interval == pytest.approx(0.2)


async def test_a_oneshot_client_pings_every_tick():
    """A raw HTTP/2 server that answers the client's PINGs and says nothing else: with
    keepalive_interval 30 s and peer_timeout 0.9 s, the client PINGs every 0.3 s (at a
    third of keepalive_interval it would say nothing for 10 s)."""
    config = libchan.Config(keepalive_interval=30, peer_timeout=0.9)
    pings = []

    async def serve_one(stream: trio.SocketStream) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        await stream.send_all(conn.data_to_send())
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.PingReceived):
                    pings.append(trio.current_time())
            await stream.send_all(conn.data_to_send())  # (h2 answers PINGs itself)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, serve_one, 0)
        port = listeners[0].socket.getsockname()[1]

        def client() -> str | None:
            c = oneshot.connect(f"tcp://127.0.0.1:{port}", config=config)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and c.closed_reason is None:
                c.poll(0.05)
            reason = c.closed_reason
            c.close()
            return reason

        with trio.fail_after(20):
            reason = await trio.to_thread.run_sync(client)
        nursery.cancel_scope.cancel()
    assert reason is None, reason  # (the server's PING answers kept it alive)
    assert len(pings) >= 4, pings  # about six in 2 s
