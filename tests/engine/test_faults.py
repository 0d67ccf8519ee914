"""Faults: dead, silent and vanishing peers fail pending operations within a bounded time."""

from __future__ import annotations

import pytest
import trio

import libchan
from helpers import served


async def _blackhole_proxy(target_port: int, task_status=trio.TASK_STATUS_IGNORED):
    """A TCP proxy that forwards until told to go silent, then keeps both sockets open."""
    state = {"silent": trio.Event()}

    async def pump(src, dst):
        try:
            while True:
                data = await src.receive_some(65536)
                if not data:
                    return
                if state["silent"].is_set():
                    await trio.sleep_forever()
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def handle(client):
        upstream = await trio.open_tcp_stream("127.0.0.1", target_port)
        async with trio.open_nursery() as n:
            n.start_soon(pump, client, upstream)
            n.start_soon(pump, upstream, client)

    async with trio.open_nursery() as n:
        listeners = await n.start(trio.serve_tcp, handle, 0)
        task_status.started((listeners[0].socket.getsockname()[1], state["silent"]))


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_fault_half_open_connection_detected_by_keepalive(tmp_path, profile):
    config = libchan.Config(keepalive_interval=0.3, peer_timeout=1.0)
    entered = trio.Event()

    async def handler(session):
        entered.set()
        await trio.sleep_forever()

    with trio.fail_after(15):
        async with served("tcp", handler, tmp_path, config) as (url, _):
            port = int(url.rsplit(":", 1)[1])
            async with trio.open_nursery() as nursery:
                proxy_port, silent = await nursery.start(_blackhole_proxy, port)
                async with libchan.connect(f"tcp://127.0.0.1:{proxy_port}", config=config, profile=profile) as s:
                    sender = await s.open_sender()
                    await sender.send("hello")
                    await entered.wait()
                    silent.set()  # from now on the peer is silent, sockets stay open
                    start = trio.current_time()
                    with pytest.raises(libchan.SessionClosedError, match="sent nothing"):
                        await s.accept_receiver()
                    assert trio.current_time() - start < 3
                nursery.cancel_scope.cancel()
