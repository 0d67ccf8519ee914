"""h2 and hpack state kept smaller (compat/h2.py, compat/hpack.py): the same behaviour as
their own objects.

:class:`CompactSettings` keeps each settled setting's value as an int and a changing
one's values in a short list where h2 uses a ``deque`` (760 bytes each, about 9 KB per
connection); it must answer every question
h2 asks exactly as h2's ``Settings`` does, through a whole exchange of SETTINGS; hpack's
dynamic tables, kept in a list instead of a ``deque``, must code the same bytes.
"""

from __future__ import annotations

import collections

import h2.connection
import h2.settings
import pytest

from libchan.compat import h2 as compat
from libchan.spdy_like.h2mux import H2Multiplexer

C = h2.settings.SettingCodes


def _view(settings: h2.settings.Settings) -> dict:
    out = {}
    for key in list(settings):
        try:
            out[key] = settings[key]
        except KeyError:
            out[key] = KeyError
    return out


def test_the_probe_accepts_this_h2():
    assert compat.CompactSettings.usable()
    assert type(compat.make_settings(True)) is compat.CompactSettings


@pytest.mark.parametrize("client", [True, False])
def test_compact_settings_answer_as_h2s_do(client):
    initial = {C.INITIAL_WINDOW_SIZE: 1 << 20, C.MAX_CONCURRENT_STREAMS: 100, C.ENABLE_PUSH: 0}
    plain = h2.settings.Settings(client=client, initial_values=initial)
    compact = compat.CompactSettings(client=client, initial_values=initial)
    assert not any(type(v) is collections.deque for v in compact._settings.values())

    def same() -> None:
        assert _view(plain) == _view(compact)
        assert len(plain) == len(compact)
        assert (plain.initial_window_size, plain.max_frame_size, plain.header_table_size) == (
            compact.initial_window_size, compact.max_frame_size, compact.header_table_size)

    same()
    steps = [
        {C.INITIAL_WINDOW_SIZE: 5000, C.MAX_HEADER_LIST_SIZE: 8000},  # a new key: KeyError until acked
        {C.MAX_FRAME_SIZE: 32768},
        {C.INITIAL_WINDOW_SIZE: 7000},
    ]
    for changes in steps:
        plain.update(changes)
        compact.update(changes)
        same()
    for _ in steps:
        a, b = plain.acknowledge(), compact.acknowledge()
        assert {k: (v.original_value, v.new_value) for k, v in a.items()} == {
            k: (v.original_value, v.new_value) for k, v in b.items()}
        same()
    assert compact.acknowledge() == {}
    del plain[C.MAX_HEADER_LIST_SIZE], compact[C.MAX_HEADER_LIST_SIZE]
    same()
    assert not any(type(v) is collections.deque for v in compact._settings.values())


def _pump(a: H2Multiplexer, b: H2Multiplexer) -> None:
    for _ in range(4):
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            return
        if out_a:
            b.receive_data(out_a)
        if out_b:
            a.receive_data(out_b)


def test_a_multiplexer_pair_settles_its_settings_in_compact_objects():
    client = H2Multiplexer(client_side=True, stream_window=300_000, max_concurrent_streams=50)
    server = H2Multiplexer(client_side=False, stream_window=200_000, max_frame_size=65536)
    _pump(client, server)
    for mux in (client, server):
        for settings in (mux._conn.local_settings, mux._conn.remote_settings):
            assert type(settings) is compat.CompactSettings
            assert all(type(v) is int for v in settings._settings.values())  # all acknowledged
    assert client._conn.remote_settings.initial_window_size == 200_000
    assert client._conn.remote_settings.max_frame_size == 65536
    assert server._conn.remote_settings.initial_window_size == 300_000
    assert server._conn.remote_settings.max_concurrent_streams == 50
    assert client._conn.max_outbound_frame_size == 65536


def test_compact_header_tables_code_as_hpacks_own():
    # Many distinct headers (the 4096-byte tables evict), repeats (indexed), a table
    # size change: the same bytes out, the same headers back, the same tables.
    import random

    import hpack

    from libchan.compat.hpack import compact_header_tables

    plain_enc, plain_dec = hpack.Encoder(), hpack.Decoder()
    enc, dec = hpack.Encoder(), hpack.Decoder()
    compact_header_tables(enc, dec)
    assert type(enc.header_table.dynamic_entries) is not collections.deque
    rng = random.Random(7)
    for i in range(400):
        headers = [(":path", f"/p/{rng.randrange(50)}"), (f"x-h{rng.randrange(80)}", "v" * rng.randrange(1, 120))]
        if i == 200:
            for e in (plain_enc, enc):
                e.header_table_size = 1024
        block = enc.encode(headers)
        assert block == plain_enc.encode(headers)
        assert dec.decode(block) == plain_dec.decode(block) == [(k, v) for k, v in headers]
        assert list(enc.header_table.dynamic_entries) == list(plain_enc.header_table.dynamic_entries)
        assert list(dec.header_table.dynamic_entries) == list(plain_dec.header_table.dynamic_entries)


def test_a_multiplexers_header_tables_are_compact():
    mux = H2Multiplexer(client_side=True)
    for coder in (mux._conn.encoder, mux._conn.decoder):
        assert type(coder.header_table.dynamic_entries) is not collections.deque


def test_connections_share_one_dispatch_table_and_dispatch_as_h2_does():
    """No dict of bound methods per connection; every kind of frame h2 receives is still
    dispatched to h2's own method for it (the pair below exchanges SETTINGS, PING,
    HEADERS, DATA, WINDOW_UPDATE, PRIORITY, RST_STREAM and GOAWAY)."""
    assert compat.SharedDispatchH2Connection.usable()
    client = H2Multiplexer(client_side=True)
    server = H2Multiplexer(client_side=False)
    for mux in (client, server):
        assert type(mux._conn) is compat.SharedDispatchH2Connection
        assert "_frame_dispatch_table" not in mux._conn.__dict__
    plain = h2.connection.H2Connection()
    names = compat.SharedDispatchH2Connection._dispatch_names
    assert {k: v.__name__ for k, v in plain._frame_dispatch_table.items()} == names
    for frame_class, method in plain._frame_dispatch_table.items():
        assert client._conn._frame_dispatch_table[frame_class] == getattr(client._conn, method.__name__)
    _pump(client, server)
    conn = client._conn
    conn.ping(b"12345678")
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", "/")])
    conn.send_data(1, b"hello")
    conn.prioritize(1, weight=32)
    conn.increment_flow_control_window(1000)
    conn.reset_stream(1)
    conn.close_connection()
    events = server._conn.receive_data(conn.data_to_send())
    kinds = {type(e).__name__ for e in events}
    assert {"PingReceived", "RequestReceived", "DataReceived", "PriorityUpdated",
            "WindowUpdated", "StreamReset", "ConnectionTerminated"} <= kinds


def test_header_table_entries_met_again_are_one_object_for_every_connection():
    """What every client of a server indexes (paths, content type, authority) is kept once
    in all the server's decoder tables; what one session alone sends (its id) is kept by
    its own tables only."""
    from libchan.compat import hpack as compat_hpack

    import secrets

    ids_sent = [secrets.token_urlsafe(16) for _ in range(3)]
    servers = []
    for i in range(3):
        client, server = H2Multiplexer(client_side=True), H2Multiplexer(client_side=False)
        _pump(client, server)
        client.open_stream([(":method", "POST"), (":scheme", "http"), (":authority", "svc"),
                            (":path", "/libchan/v1/session"), ("content-type", "application/cbor-seq"),
                            ("libchan-session", ids_sent[i])])
        _pump(client, server)
        servers.append(server)
    tables = [list(s._conn.decoder.header_table.dynamic_entries) for s in servers]
    common = {(b":authority", b"svc"), (b":path", b"/libchan/v1/session"), (b"content-type", b"application/cbor-seq")}
    for entry in common:
        kept = [next(e for e in t if e == entry) for t in tables]
        assert kept[1] is kept[2] and kept[0] is kept[1]  # (the first table's own object, shared)
    ids = [next(e for e in t if e[0] == b"libchan-session") for t in tables]
    assert [e[1] for e in ids] == [i.encode() for i in ids_sent]
    assert not any(e in compat_hpack._DecoderEntries.pool.shared for e in ids)


def test_header_sharing_stays_bounded_whatever_a_peer_sends(monkeypatch):
    from libchan.compat import hpack as compat_hpack

    monkeypatch.setattr(compat_hpack, "_SHARED_MAX", 50)
    monkeypatch.setattr(compat_hpack, "_CANDIDATES_MAX", 100)
    pool = compat_hpack._Pool()
    for i in range(5000):  # ever new entries: candidates churn
        entry = (b"x-junk", b"%d" % i)
        assert pool.get(entry) is entry
    assert len(pool.candidates) == 100 and pool.shared == {}
    for i in range(200):  # each met twice: shared up to the bound
        first = (b"x-twice", b"%d" % i)
        pool.get(first)
        assert pool.get((b"x-twice", b"%d" % i)) is first
    assert len(pool.shared) == 50 and len(pool.candidates) <= 100
    value = b"v" * 600  # over _ENTRY_MAX: neither remembered nor shared
    big = (b"x-big", value)
    pool.get(big)
    again = (b"x-big", bytes(value))
    assert pool.get(again) is again

