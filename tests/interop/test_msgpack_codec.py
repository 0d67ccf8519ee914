"""The Go profile's msgpack codec, proven against recordings of the real Go libchan.

Every expectation about Go comes from the recordings' files (frames.jsonl,
transcript.jsonl, *-events.jsonl): the tests are generic over every scenario
found (tests/interop/recordings.py: env LIBCHAN_GO_RECORDINGS, default
``<repo>/../shared/interop/go-libchan``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import struct
from functools import lru_cache
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libchan.channel import Receiver, Sender
from libchan.errors import LocalProtocolError, MessageTooLargeError, RemoteProtocolError
from libchan.engine.kinds import kind_of
from libchan.messages.msgpack_codec import EXT_CODES, EXT_KINDS, MsgpackCodec, MsgpackStreamDecoder
from libchan.stream import ByteStream, ReadOnly, WriteOnly, stream_pipe

from . import recordings as rec

# -- recordings loader (tests/interop/recordings.py) ----------------------------------

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
BIG = 64 * 1024 * 1024

SCENARIOS = rec.scenario_params()


@pytest.fixture
def _recordings() -> None:
    rec.recordings_dir()  # a skip, or a failure under CI, when there are none


needs_recordings = pytest.mark.usefixtures("_recordings")


@lru_cache(maxsize=None)
def frames(scenario: str) -> list[dict]:
    return rec.frames(scenario)


@lru_cache(maxsize=None)
def events(scenario: str, role: str) -> list[dict]:
    return rec.events(scenario, role)


@lru_cache(maxsize=None)
def transcript_data_frames(scenario: str) -> dict[tuple[str, int], list[bytes]]:
    """DATA payloads per (direction, stream id), parsed from the raw transcript."""
    c2s, s2c, _ = rec.transcript(scenario)
    out: dict[tuple[str, int], list[bytes]] = {}
    for direction, wire in (("c2s", c2s), ("s2c", s2c)):
        pos = 0
        while pos + 8 <= len(wire):
            length = int.from_bytes(wire[pos + 5 : pos + 8], "big")
            if pos + 8 + length > len(wire):
                break
            if not wire[pos] & 0x80:  # DATA frame: 31-bit stream id, flags, 24-bit length
                sid = int.from_bytes(wire[pos : pos + 4], "big") & 0x7FFFFFFF
                out.setdefault((direction, sid), []).append(wire[pos + 8 : pos + 8 + length])
            pos += 8 + length
    return out


class Stream:
    """One direction of one channel stream: its DATA frames and recorded messages."""

    def __init__(self, scenario: str, direction: str, sid: int) -> None:
        self.scenario, self.direction, self.sid = scenario, direction, sid
        self.frames: list[dict] = []
        self.payloads: list[bytes] = []
        self.messages: list[dict] = []  # each with "wire": the message's bytes
        self.fatal: list[dict] = []  # msgpack_errors other than a truncated tail
        self.incomplete_at_fin = False

    @property
    def data(self) -> bytes:
        return b"".join(self.payloads)

    def __repr__(self) -> str:
        return f"{self.scenario}:{self.direction}:{self.sid}"


@lru_cache(maxsize=None)
def channel_streams(scenario: str) -> list[Stream]:
    streams: dict[tuple[str, int], Stream] = {}
    for f in frames(scenario):
        if f.get("type") != "DATA" or f.get("stream_kind") != "channel":
            continue
        key = (f["dir"], f["stream_id"])
        s = streams.setdefault(key, Stream(scenario, *key))
        s.frames.append(f)
        for m in f.get("messages") or []:
            m["where"] = getattr(f, "where", "frames.jsonl")  # file:line, for recording problems
            s.messages.append(m)
        for err in f.get("msgpack_errors") or []:
            if err["error"] == "incomplete at FIN":
                s.incomplete_at_fin = True
            else:
                s.fatal.append(err)
    recorded = transcript_data_frames(scenario)
    for key, s in streams.items():
        s.payloads = [p for p in recorded.get(key, [])]
        assert len(s.payloads) == len(s.frames), f"{s}: transcript and frames.jsonl disagree"
        for f, p in zip(s.frames, s.payloads):
            assert len(p) == f["length"]
            if f.get("data_hex") is not None:
                assert p.hex() == f["data_hex"], s
            else:
                assert hashlib.sha256(p).hexdigest() == f["data_sha256"], s
        data, pos = s.data, 0
        for m in s.messages:
            m["wire"] = data[pos : pos + m["len"]]
            pos += m["len"]
            assert hashlib.sha256(m["wire"]).hexdigest() == m["sha256"], s
            if m.get("hex") is not None:
                assert m["wire"].hex() == m["hex"], s
    return list(streams.values())


def all_messages(scenario: str) -> list[tuple[Stream, dict]]:
    return [(s, m) for s in channel_streams(scenario) for m in s.messages]


# -- objects our on_reference callback returns -------------------------------------


class FakeSender(Sender):
    async def send(self, value: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    async def aclose(self) -> None:  # pragma: no cover
        pass


class FakeReceiver(Receiver):
    async def receive(self) -> Any:  # pragma: no cover
        raise NotImplementedError

    async def aclose(self) -> None:  # pragma: no cover
        pass


class FakeStream(ByteStream):
    def __init__(self, direction: str) -> None:
        self.direction = direction  # type: ignore[misc]

    async def send_all(self, data: Any) -> None:  # pragma: no cover
        pass

    async def wait_send_all_might_not_block(self) -> None:  # pragma: no cover
        pass

    async def send_eof(self) -> None:  # pragma: no cover
        pass

    async def receive_some(self, max_bytes: int | None = None) -> bytes:  # pragma: no cover
        return b""

    async def aclose(self) -> None:  # pragma: no cover
        pass


_DIRECTIONS = {"stream": "duplex", "read-stream": "read", "write-stream": "write"}


def make_ref(kind: str, ref: int) -> Any:
    obj: Any
    if kind == "sender":
        obj = FakeSender()
    elif kind == "receiver":
        obj = FakeReceiver()
    else:
        obj = FakeStream(_DIRECTIONS[kind])
    obj.kind, obj.ref = kind, ref
    assert kind_of(obj) == kind
    return obj


class Refs:
    """on_reference / on_object callbacks that record their calls."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def on_reference(self, kind: str, ref: int) -> Any:
        self.seen.append((kind, ref))
        return make_ref(kind, ref)

    @staticmethod
    def on_object(kind: str, obj: Any) -> int:
        assert kind == obj.kind
        return obj.ref


def codec(max_message_size: int = BIG, max_depth: int = 256) -> MsgpackCodec:
    return MsgpackCodec(max_message_size=max_message_size, max_depth=max_depth, kind_of=kind_of)


def decoder(c: MsgpackCodec | None = None, refs: Refs | None = None) -> MsgpackStreamDecoder:
    return MsgpackStreamDecoder(c or codec(), (refs or Refs()).on_reference)


def decode_all(data: bytes, **kw: Any) -> list[tuple[Any, int]]:
    d = decoder(codec(**kw))
    items = d.feed(data)
    assert d.error is None and d.at_boundary()
    return items


# -- expectations from the JSON conventions ---------------------------------------


class ExpectError(Exception):
    """The recorded message cannot be decoded (Go: a per-message Receive error)."""


class BinDigest:
    def __init__(self, v: dict) -> None:
        self.len, self.sha, self.head = v["$bin_len"], v["$bin_sha256"], v.get("$bin_head", "")


class ExpRef:
    def __init__(self, kinds: tuple[str, ...], ref: int | None) -> None:
        self.kinds, self.ref = kinds, ref


class ExpTime:
    def __init__(self, unix: int, nsec: int) -> None:
        self.unix, self.nsec = unix, nsec

    @property
    def instant(self) -> dt.datetime:
        # Python keeps microseconds: the decoder rounds nanoseconds down.
        return EPOCH + dt.timedelta(seconds=self.unix, microseconds=self.nsec // 1000)


_GO_REF_KINDS = {
    "libchan.Sender": ("sender",),
    "libchan.Receiver": ("receiver",),
    "bytestream(rw)": ("stream", "read-stream", "write-stream"),  # Go decodes 1/2/3 alike
    "bytestream(r)": ("stream", "read-stream", "write-stream"),
    "bytestream(w)": ("stream", "read-stream", "write-stream"),
}


def expect(v: Any) -> Any:
    """Turn a recorded JSON value into an expectation (raises ExpectError for bad messages).

    Every documented value form is understood (recordings.value_form); any other
    raises recordings.RecordingError."""
    if isinstance(v, list):
        return [expect(x) for x in v]
    if not isinstance(v, dict):
        return v
    form = rec.value_form(v)
    if form in ("bin", "bin-nil"):
        return rec.bin_value(v)  # a nil []byte is msgpack nil (c0): None
    if form == "bin-large":
        return BinDigest(v)
    if form == "ext":  # frames.jsonl convention
        code = v["$ext"]
        if code in EXT_KINDS:
            if v.get("ref") is None:
                raise ExpectError(f"ext {code} with payload {v['data']}")
            return ExpRef((EXT_KINDS[code],), v["ref"])
        if code == 6 and len(v["data"]) == 24:
            return ExpTime(v["unix"], v["nsec"])
        raise ExpectError(f"ext {code}")
    if form == "time":  # events convention
        return ExpTime(v["unix"], v["nsec"])
    if form == "ref":  # events convention
        return ExpRef(_GO_REF_KINDS[v["$ref"]], None)
    return {k: expect(x) for k, x in v.items()}


def same(exp: Any, act: Any) -> bool:
    """Strict comparison of an expectation (or a Python value) with a decoded value."""
    if isinstance(exp, BinDigest):
        return (
            type(act) is bytes
            and len(act) == exp.len
            and hashlib.sha256(act).hexdigest() == exp.sha
            and act[: len(exp.head) // 2].hex() == exp.head
        )
    if isinstance(exp, ExpRef):
        return getattr(act, "kind", None) in exp.kinds and (exp.ref is None or act.ref == exp.ref)
    if isinstance(exp, ExpTime):
        return isinstance(act, dt.datetime) and act.tzinfo is not None and act == exp.instant
    if isinstance(exp, (FakeSender, FakeReceiver, FakeStream)):
        return getattr(act, "kind", None) == exp.kind and act.ref == exp.ref
    if isinstance(exp, dt.datetime):
        return isinstance(act, dt.datetime) and act.tzinfo is not None and act == exp
    if isinstance(exp, float):
        return type(act) is float and (act == exp or (math.isnan(act) and math.isnan(exp)))
    if isinstance(exp, (list, tuple)):
        return type(act) is type(exp) and len(act) == len(exp) and all(map(same, exp, act))
    if isinstance(exp, dict):
        if type(act) is not dict or len(act) != len(exp):
            return False
        for k, v in exp.items():
            if k not in act or type(next(a for a in act if a == k)) is not type(k):
                return False
            if not same(v, act[k]):
                return False
        return True
    return type(act) is type(exp) and act == exp


def expected_refs(m: dict) -> list[tuple[str, int]]:
    return [(EXT_KINDS[r["code"]], r["ref"]) for r in m["refs"] if r.get("ref") is not None]


# -- (a) every recorded message decodes to its recorded value ----------------------


@needs_recordings
def test_recordings_have_messages() -> None:
    """The whole shared set: more than 100 messages, some with references."""
    if not rec.has(*rec.SHARED_SET):
        pytest.skip("about the whole shared recording set, which is not all present here")
    counts = {s: len(all_messages(s)) for s in rec.SHARED_SET}
    assert sum(counts.values()) > 100, counts
    assert any(m["refs"] for s in rec.SHARED_SET for _, m in all_messages(s))


@needs_recordings
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_decode_recorded_messages(scenario: str) -> None:
    for stream, m in all_messages(scenario):
        where = f"{stream} msg #{m['n']} {m['annotated'][:120]}"
        refs = Refs()
        d = decoder(refs=refs)
        items = d.feed(m["wire"])
        assert d.error is None and d.at_boundary(), where
        assert len(items) == 1 and items[0][1] == m["len"], where
        value = items[0][0]
        try:
            with rec.locating(m["where"]):
                exp = expect(m["value"])
        except ExpectError:
            assert isinstance(value, RemoteProtocolError), where
            assert refs.seen == [], where  # nothing is paired for a message that fails
            continue
        assert same(exp, value), f"{where}: got {value!r}"
        assert refs.seen == expected_refs(m), where


# -- (b) any chunking of a stream gives the same message sequence ------------------


def chunkings(stream: Stream) -> dict[str, list[bytes]]:
    data = stream.data
    out = {"whole": [data], "frames": list(stream.payloads)}
    if len(data) <= 65536:
        out["bytes"] = [data[i : i + 1] for i in range(len(data))]
    for seed in range(3):
        rng = random.Random(f"{stream}/{seed}")
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 40)))) if len(data) > 1 else []
        out[f"random{seed}"] = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    return out


@needs_recordings
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_stream_chunkings(scenario: str) -> None:
    for stream in channel_streams(scenario):
        expected = []
        for m in stream.messages:
            try:
                with rec.locating(m["where"]):
                    expected.append((expect(m["value"]), m["len"]))
            except ExpectError:
                expected.append((ExpectError, m["len"]))
        tail = len(stream.data) - sum(m["len"] for m in stream.messages)
        for name, pieces in chunkings(stream).items():
            where = f"{stream} chunking={name}"
            d = decoder()
            got: list[tuple[Any, int]] = []
            for piece in pieces:
                if d.error is not None:
                    with pytest.raises(type(d.error)):
                        d.feed(piece)
                    break
                got.extend(d.feed(piece))
            assert len(got) == len(expected), where
            for (exp, size), (value, wire) in zip(expected, got):
                assert wire == size, where
                if exp is ExpectError:
                    assert isinstance(value, RemoteProtocolError), where
                else:
                    assert same(exp, value), f"{where}: {value!r}"
            if stream.fatal:
                assert isinstance(d.error, RemoteProtocolError), where
                with pytest.raises(RemoteProtocolError):
                    d.feed(b"\x01")
            else:
                assert d.error is None, where
                assert d.buffered == tail, where
                assert d.at_boundary() == (tail == 0), where
                if stream.incomplete_at_fin:
                    assert not d.at_boundary(), where


# -- (c) round trip, (d) byte-identical to Go where our mapping is Go's ------------


def _has_fine_time(v: Any) -> bool:
    if isinstance(v, dict):
        if v.get("$ext") == 6:
            return v.get("nsec", 0) % 1000 != 0
        return any(_has_fine_time(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_fine_time(x) for x in v)
    return False


def go_identical_expected(m: dict) -> bool:
    """Go's bytes use only codes our encoder also picks for the decoded value."""
    ann = m["annotated"]
    return "uint" not in ann and "float32" not in ann and not _has_fine_time(m["value"])


@needs_recordings
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_round_trip_and_go_bytes(scenario: str) -> None:
    c = codec()
    for stream, m in all_messages(scenario):
        where = f"{stream} msg #{m['n']} {m['annotated'][:120]}"
        [(value, _)] = decode_all(m["wire"])
        if isinstance(value, RemoteProtocolError):
            continue
        encoded = c.encode(value, Refs.on_object)
        [(again, size)] = decode_all(encoded)
        assert size == len(encoded)
        assert same(value, again), where
        if go_identical_expected(m):
            assert encoded == m["wire"], f"{where}: ours {encoded.hex()[:200]}"


@needs_recordings
def test_most_go_messages_are_reproduced_byte_for_byte() -> None:
    """The whole shared set (each message's own check is test_round_trip_and_go_bytes)."""
    if not rec.has(*rec.SHARED_SET):
        pytest.skip("about the whole shared recording set, which is not all present here")
    msgs = [m for s in rec.SHARED_SET for _, m in all_messages(s)]
    identical = [m for m in msgs if go_identical_expected(m) and not isinstance(decode_all(m["wire"])[0][0], Exception)]
    # uint codes, float32 and sub-microsecond times are the only exceptions
    assert len(identical) >= 0.8 * len(msgs), (len(identical), len(msgs))
    assert any(m["refs"] for m in identical)
    assert any(len(m["value"]) > 1 for m in identical if isinstance(m["value"], dict))


# -- (e) Go's own Receive outcomes for bad input ------------------------------------


def _go_channels_with_decode_errors(scenario: str) -> list[tuple[str, list[dict], Stream]]:
    """Go channels whose interface{} Receive failed, each with the stream that fed it."""
    out = []
    for role, incoming in (("server", "c2s"), ("client", "s2c")):
        evs = [e for e in events(scenario, role) if e["event"] in ("recv", "recv_error", "recv_eof")]
        by_chan: dict[str, list[dict]] = {}
        for e in evs:
            by_chan.setdefault(e["chan"], []).append(e)
        for chan, seq in by_chan.items():
            if any("into" in e for e in seq):  # typed decodes: not our business
                continue
            if not any(e["event"] == "recv_error" for e in seq):
                continue
            t0 = next(e["t"] for e in seq if e["event"] != "recv_eof")
            # the stream that fed that first outcome: the last non-empty DATA before it
            best = None
            for s in channel_streams(scenario):
                if s.direction != incoming:
                    continue
                for f in s.frames:
                    if f["length"] and f["t"] <= t0 and (best is None or f["t"] > best[0]):
                        best = (f["t"], s)
            assert best is not None, (scenario, chan)
            out.append((chan, seq, best[1]))
    return out


@needs_recordings
def test_go_decode_failures_found() -> None:
    if not rec.has("08a-malformed-messages"):
        pytest.skip("about scenario 08a-malformed-messages, which is not present here")
    found = [x for s in rec.scenarios() for x in _go_channels_with_decode_errors(s)]
    assert len(found) >= 3, found  # 08a: invalid code c1, unknown ext, bad reference id


@needs_recordings
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_go_decode_failures(scenario: str) -> None:
    for chan, seq, stream in _go_channels_with_decode_errors(scenario):
        where = f"{scenario} Go chan {chan} <- {stream}"
        d = decoder()
        items = d.feed(stream.data)
        go = list(seq)
        for value, _ in items:
            assert go, where
            e = go.pop(0)
            if isinstance(value, RemoteProtocolError):
                # Go: an error for this Receive, and the stream goes on
                assert e["event"] == "recv_error", where
            else:
                assert e["event"] == "recv", where
                with rec.locating(e):
                    exp = expect(e["value"])
                assert same(exp, value), where
        if d.error is not None:
            # Go: the bad bytes are not consumed; every later Receive fails the same way
            assert isinstance(d.error, RemoteProtocolError), where
            assert go and all(e["event"] == "recv_error" for e in go), where
            assert len({e["err"] for e in go}) == 1, where
        else:
            assert [e["event"] for e in go] in ([], ["recv_eof"]), where


# -- unit tests ---------------------------------------------------------------------


def test_ext_codes() -> None:
    assert EXT_CODES == {"stream": 1, "write-stream": 2, "read-stream": 3, "sender": 4, "receiver": 5}
    assert EXT_KINDS == {v: k for k, v in EXT_CODES.items()}


@pytest.mark.parametrize(
    "obj, code",
    [
        (FakeSender(), 4),
        (FakeReceiver(), 5),
        (FakeStream("duplex"), 1),
        (FakeStream("read"), 3),
        (FakeStream("write"), 2),
    ],
)
def test_ref_encoding(obj: Any, code: int) -> None:
    c = codec()
    assert c.encode(obj, lambda kind, o: 7) == bytes([0xD6, code]) + struct.pack(">I", 7)
    assert c.encode(obj, lambda kind, o: 0xFFFFFFFF) == bytes([0xD6, code]) + b"\xff" * 4
    assert c.encode(obj, lambda kind, o: 2**32) == bytes([0xD7, code]) + struct.pack(">Q", 2**32)
    for bad in (-1, 2**64):
        with pytest.raises(LocalProtocolError):
            c.encode(obj, lambda kind, o: bad)
    refs = Refs()
    for ref in (7, 2**32, 2**64 - 1):
        wire = codec().encode(obj, lambda kind, o: ref)
        [(value, _)] = MsgpackStreamDecoder(c, refs.on_reference).feed(wire)
        assert (value.kind, value.ref) == (EXT_KINDS[code], ref)


async def test_kinds_of_real_objects() -> None:
    a, b = stream_pipe()
    send, recv = trio.open_memory_channel(1)
    c = codec()
    seen: list[str] = []

    def on_object(kind: str, obj: Any) -> int:
        seen.append(kind)
        return len(seen)

    wire = c.encode([send, recv, a, ReadOnly(b), WriteOnly(a)], on_object)
    assert seen == ["sender", "receiver", "stream", "read-stream", "write-stream"]
    assert wire == bytes.fromhex("95" "d60400000001" "d60500000002" "d60100000003" "d60300000004" "d60200000005")


def test_bad_reference_payloads() -> None:
    for h in ("d40101", "d5010007", "c7030100000a", "d8010000000000000000000000000000000a"):
        [(value, size)] = decode_all(bytes.fromhex(h))
        assert isinstance(value, RemoteProtocolError) and "bad reference id" in str(value)
        assert size == len(h) // 2


TIME_VECTORS = [
    ("c70c06ffffffffff2795e400000000", dt.datetime(1969, 7, 20, 20, 17, 40, tzinfo=dt.timezone.utc)),
    ("c70c06fffffff1886e090000000000", dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)),  # Go's time.Time{}
    ("c70c060000000053971e65075bca00", dt.datetime(2014, 6, 10, 15, 4, 5, 123456, tzinfo=dt.timezone.utc)),
    ("c70c06000000005734cb8d00000000", dt.datetime(2016, 5, 12, 18, 29, 33, tzinfo=dt.timezone.utc)),
]


@pytest.mark.parametrize("wire, when", TIME_VECTORS)
def test_time_vectors(wire: str, when: dt.datetime) -> None:
    assert codec().encode(when, Refs.on_object).hex() == wire
    [(value, _)] = decode_all(bytes.fromhex(wire))
    assert value == when and value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)


def test_time_details() -> None:
    c = codec()
    # naive is UTC; other zones are converted (Go sends no zone)
    assert c.encode(dt.datetime(1969, 7, 20, 20, 17, 40), None).hex() == TIME_VECTORS[0][0]
    zone = dt.timezone(dt.timedelta(hours=2))
    assert c.encode(dt.datetime(1969, 7, 20, 22, 17, 40, tzinfo=zone), None).hex() == TIME_VECTORS[0][0]
    # nanoseconds below a microsecond are rounded down, also before 1970
    [(v, _)] = decode_all(bytes.fromhex("c70c06ffffffffff2795e4000001f4"))
    assert v == dt.datetime(1969, 7, 20, 20, 17, 40, tzinfo=dt.timezone.utc)
    [(v, _)] = decode_all(bytes.fromhex("c70c06ffffffffffffffff3b9ac9ff"))  # -1 s + 999999999 ns
    assert v == dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    # bad payload length, and out of Python's range: per-message errors
    for h in ("d60600000000", "c70c067fffffffffffffff00000000", "c70c06fffffff1886e08ff00000000"):
        [(v, _)] = decode_all(bytes.fromhex(h))
        assert isinstance(v, RemoteProtocolError), h


INT_TABLE = [
    (0, "00"),
    (127, "7f"),
    (128, "d10080"),
    (255, "d100ff"),
    (256, "d10100"),
    (32767, "d17fff"),
    (32768, "d200008000"),
    (65535, "d20000ffff"),
    (65536, "d200010000"),
    (2**31 - 1, "d27fffffff"),
    (2**31, "d30000000080000000"),
    (2**63 - 1, "d37fffffffffffffff"),
    (2**63, "cf8000000000000000"),
    (2**64 - 1, "cfffffffffffffffff"),
    (-1, "ff"),
    (-32, "e0"),
    (-33, "d0df"),
    (-128, "d080"),
    (-129, "d1ff7f"),
    (-32768, "d18000"),
    (-32769, "d2ffff7fff"),
    (-(2**31), "d280000000"),
    (-(2**31) - 1, "d3ffffffff7fffffff"),
    (-(2**63), "d38000000000000000"),
]


@pytest.mark.parametrize("value, wire", INT_TABLE)
def test_int_widths(value: int, wire: str) -> None:
    assert codec().encode(value, None).hex() == wire
    [(v, _)] = decode_all(bytes.fromhex(wire))
    assert type(v) is int and v == value


def test_unsigned_codes_decode() -> None:
    for h, v in [("cc80", 128), ("cdffff", 65535), ("ce00011170", 70000), ("cfffffffffffffffff", 2**64 - 1)]:
        assert decode_all(bytes.fromhex(h)) == [(v, len(h) // 2)]


def test_encode_types() -> None:
    c = codec()
    enc = lambda v: c.encode(v, Refs.on_object).hex()  # noqa: E731
    assert enc(None) == "c0" and enc(True) == "c3" and enc(False) == "c2"
    assert enc(1.5) == "cb3ff8000000000000"
    assert enc("x" * 31)[:2] == "bf" and enc("x" * 32)[:4] == "d920" and enc("x" * 256)[:6] == "da0100"
    assert enc(b"ab") == enc(bytearray(b"ab")) == enc(memoryview(b"ab")) == "c4026162"
    assert enc((1, [2])) == "92019102"
    assert enc({"a": 1}) == "81a16101"
    assert enc({(1, 2): "x"}) == "81920102a178"
    for bad in ({1}, frozenset(), 1j, __import__("decimal").Decimal(1), object(), dt.date(2000, 1, 1), 2**64, -(2**63) - 1):
        with pytest.raises(LocalProtocolError):
            c.encode(bad, Refs.on_object)
    with pytest.raises(LocalProtocolError):
        c.encode("\ud800", Refs.on_object)
    loop: list = []
    loop.append(loop)
    with pytest.raises(LocalProtocolError):
        c.encode(loop, Refs.on_object)


def test_encode_limits() -> None:
    c = codec(max_message_size=10, max_depth=3)
    assert c.encode(b"x" * 8, None) == b"\xc4\x08" + b"x" * 8
    with pytest.raises(MessageTooLargeError) as info:
        c.encode(b"x" * 9, None)
    assert info.value.local
    assert c.encode([[[1]]], None) == bytes.fromhex("91919101")
    with pytest.raises(LocalProtocolError):
        c.encode([[[[1]]]], None)


def test_decode_values() -> None:
    assert decode_all(bytes.fromhex("ca3fc00000")) == [(1.5, 5)]
    [(v, _)] = decode_all(bytes.fromhex("82a161c4020102" "01c0"))
    assert v == {"a": b"\x01\x02", 1: None}
    [(v, _)] = decode_all(bytes.fromhex("81920191c3a178"))  # array keys become tuples
    assert v == {(1, (True,)): "x"}
    [(v, _)] = decode_all(bytes.fromhex("82920102920304c0c0"))
    assert v == {(1, 2): [3, 4], None: None} and type(v[(1, 2)]) is list


def test_per_message_errors_keep_the_stream_going() -> None:
    wire = bytes.fromhex(
        "d42a00"  # unknown ext 42
        "2a"
        "d5010007"  # bad reference id
        "91d6ff00000001"  # msgpack timestamp (ext -1): Go does not know it
        "a2c328"  # invalid UTF-8
        "81809101"  # a map as a map key
        "920191d42a00"  # nested unknown ext: the whole message is consumed
        "a26f6b"
    )
    refs = Refs()
    items = decoder(refs=refs).feed(wire)
    kinds = [type(v) if isinstance(v, Exception) else v for v, _ in items]
    assert kinds == [RemoteProtocolError, 42, RemoteProtocolError, RemoteProtocolError, RemoteProtocolError,
                     RemoteProtocolError, RemoteProtocolError, "ok"]
    assert refs.seen == []


def test_refs_are_paired_only_for_good_messages() -> None:
    refs = Refs()
    d = decoder(refs=refs)
    items = d.feed(bytes.fromhex("92d60400000002d42a00" "92d60500000003d60100000004"))
    assert isinstance(items[0][0], RemoteProtocolError)
    assert refs.seen == [("receiver", 3), ("stream", 4)]
    assert [v.kind for v in items[1][0]] == ["receiver", "stream"]


def test_fatal_errors() -> None:
    for wire, exc in [
        ("2ac1", RemoteProtocolError),  # invalid code
        ("2a9201c1", RemoteProtocolError),  # invalid code inside a message
        ("2a" + "91" * 5 + "01", RemoteProtocolError),  # too deep
        ("2a" + "91" * 1100 + "01", RemoteProtocolError),  # deeper than msgpack's own limit
        ("2ac60000ffff", MessageTooLargeError),  # announced length
        ("2adc0fff", MessageTooLargeError),
        ("2adf00000fff", MessageTooLargeError),
        ("2a9f" + ("c4ff" + "00" * 255) * 5, MessageTooLargeError),  # nested: caught once held
    ]:
        d = decoder(codec(max_message_size=1000, max_depth=4))
        items = d.feed(bytes.fromhex(wire))
        assert items == [(42, 1)], wire
        assert isinstance(d.error, exc), wire
        if exc is MessageTooLargeError:
            assert not d.error.local
        with pytest.raises(exc):
            d.feed(b"\x2a")
    d = decoder(codec(max_message_size=1000, max_depth=4))
    assert d.feed(bytes.fromhex("91919191c0")) == [([[[[None]]]], 5)] and d.error is None


def test_partial_state() -> None:
    d = decoder()
    assert d.at_boundary() and d.buffered == 0
    assert d.feed(b"\x92\x01") == []
    assert not d.at_boundary() and d.buffered == 2
    assert d.feed(b"\x02\xa3ab") == [([1, 2], 3)]
    assert d.buffered == 3
    assert d.feed(b"c") == [("abc", 4)]
    assert d.at_boundary() and d.feed(b"") == []


# -- fuzz ---------------------------------------------------------------------------


def _check_feed(data: bytes, cuts: list[int], max_size: int, max_depth: int) -> None:
    d = decoder(codec(max_message_size=max_size, max_depth=max_depth))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    total = 0
    for piece in pieces:
        if d.error is not None:
            with pytest.raises((RemoteProtocolError, MessageTooLargeError)):
                d.feed(piece)
            return
        for value, size in d.feed(piece):
            assert size > 0
            total += size
            if isinstance(value, Exception):
                assert isinstance(value, RemoteProtocolError)
        assert d.error is None or isinstance(d.error, (RemoteProtocolError, MessageTooLargeError))
    if d.error is None:
        assert total + d.buffered == len(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8), limit=st.integers(1, 400))
def test_fuzz_random_bytes(data: bytes, cuts: list[int], limit: int) -> None:
    _check_feed(data, sorted({c for c in cuts if 0 < c < len(data)}), limit, 8)


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | st.datetimes(timezones=st.just(dt.timezone.utc)),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=5) | st.integers(-1000, 1000), inner, max_size=5),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(value=json_like)
def test_fuzz_round_trip(value: Any) -> None:
    wire = codec().encode(value, Refs.on_object)
    [(again, size)] = decode_all(wire)
    assert size == len(wire) and same(value, again)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(value=json_like, flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
       cut=st.integers(0, 10**6))
def test_fuzz_mutated_messages(value: Any, flips: list[tuple[int, int]], cut: int) -> None:
    wire = bytearray(codec().encode(value, Refs.on_object) * 2)
    for pos, byte in flips:
        wire[pos % len(wire)] = byte
    _check_feed(bytes(wire), [cut % len(wire)] if cut % len(wire) else [], 200, 3)


# -- short ``bytes`` messages are taken without the Unpacker: the same results ----------
_UNKNOWN_EXT = b"\xd4\x63\x00"  # fixext 1 of type 99: a message that fails on its own

message_kinds = st.one_of(
    st.binary(max_size=255).map(lambda b: ("bytes", b)),
    st.binary(min_size=256, max_size=300).map(lambda b: ("bytes", b)),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**63 - 1), max_size=3).map(lambda m: ("value", m)),
    st.text(max_size=20).map(lambda t: ("value", t)),
    st.just(("fails", None)),
)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(message_kinds, max_size=12), cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_short_bytes_runs_decode_as_any_message(messages: list[tuple[str, Any]], cuts: list[int]) -> None:
    c = codec()
    wires = [_UNKNOWN_EXT if kind == "fails" else c.encode(value, Refs.on_object) for kind, value in messages]
    data = b"".join(wires)
    cuts = sorted({x for x in cuts if 0 < x < len(data)})
    d = decoder(c)
    got: list[tuple[Any, int]] = []
    for a, b in zip([0, *cuts], [*cuts, len(data)]):
        got.extend(d.feed(data[a:b]))
    assert d.error is None and d.at_boundary() and d.buffered == 0
    assert [size for _, size in got] == [len(w) for w in wires]
    for (kind, value), (item, _) in zip(messages, got):
        if kind == "fails":
            assert isinstance(item, RemoteProtocolError)
        else:
            assert same(value, item), (value, item)
    assert d.failures == sum(kind == "fails" for kind, _ in messages)


def test_a_short_bytes_message_over_the_limit_is_still_too_large() -> None:
    d = decoder(codec(max_message_size=100))
    items = d.feed(codec().encode(b"a", Refs.on_object) + codec().encode(b"x" * 200, Refs.on_object))
    assert [size for _, size in items] == [3]
    assert isinstance(d.error, MessageTooLargeError)
