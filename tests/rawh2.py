"""A tiny raw HTTP/2 client (h2 over a trio TCP stream) for feeding servers crafted requests."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio


class RawH2Client:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.events: list[h2.events.Event] = []

    @classmethod
    async def open(cls, host: str, port: int) -> "RawH2Client":
        client = cls(await trio.open_tcp_stream(host, port))
        await client.flush()
        return client

    def ignore_peer_stream_limit(self) -> None:
        """Behave like a hostile peer: open streams beyond the server's advertised
        MAX_CONCURRENT_STREAMS (h2 would refuse to)."""
        settings = self.conn.remote_settings
        settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 2**31 - 1
        settings.acknowledge()

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def request(self, path: str, body: bytes, headers: list[tuple[str, str]] = (), end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [(":method", "POST"), (":scheme", "http"), (":authority", "test"), (":path", path), *headers],
        )
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        elif end:
            self.conn.end_stream(sid)
        await self.flush()
        return sid

    async def pump(self) -> bool:
        data = await self.stream.receive_some(65536)
        if not data:
            return False
        for ev in self.conn.receive_data(data):
            self.events.append(ev)
            if isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        await self.flush()
        return True

    async def wait_for(self, predicate) -> h2.events.Event:
        while True:
            for ev in self.events:
                if predicate(ev):
                    return ev
            if not await self.pump():
                raise EOFError("connection closed")

    async def aclose(self) -> None:
        await self.stream.aclose()
