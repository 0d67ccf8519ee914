"""The test vectors of spec/vectors/*.json, checked both ways against libchan's sans-IO code.

* messages.json: CborCodec.decode(hex) gives the value (references recorded by
  the on_reference callback), CborCodec.encode(value) gives exactly the hex
  (references built from real pipe ends, whose kind kind_of() must agree with
  the vector), invalid payloads raise exactly the expected class;
* framing.json: frame_header / encode_frame give the hex, FrameDecoder gives
  the payloads and keepalive counts however the bytes are split, invalid
  bodies raise exactly the expected class;
* headers.json: the request header lists the session builds, the parsing of
  libchan-* stream headers, and the first bytes of an HTTP/2 connection.
"""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import ipaddress
import json
import math
import random
import re
import uuid
from pathlib import Path

import cbor2
import pytest

import libchan
from libchan import errors
from libchan.config import Config
from libchan.engine.kinds import kind_of
from libchan.messages.cbor_codec import TAGS, CborCodec
from libchan.messages.framing import KEEPALIVE, FrameDecoder, encode_frame, frame_header
from libchan.spdy_like.h2mux import H2Multiplexer
from libchan.engine.core import PATH_PARK, PATH_SESSION, PATH_STREAM, SessionCore, _stream_headers

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"


def _load(name: str) -> dict:
    with open(VECTORS / name, encoding="utf-8") as f:
        return json.load(f)


MESSAGES = _load("messages.json")
FRAMING = _load("framing.json")
HEADERS = _load("headers.json")

ERRORS = {
    "RemoteProtocolError": errors.RemoteProtocolError,
    "LocalProtocolError": errors.LocalProtocolError,
    "MessageTooLargeError": errors.MessageTooLargeError,
}


# -- JSON notation <-> Python ------------------------------------------------------------


class Recorded:
    """What the decode callback returns for a reference: the kind and number it saw."""

    def __init__(self, kind: str, ref: int) -> None:
        self.kind, self.ref = kind, ref

    def __hash__(self) -> int:
        return hash((Recorded, self.kind, self.ref))


def to_json(v):
    """Decoded Python value -> the JSON notation of spec/vectors/messages.json."""
    if isinstance(v, Recorded):
        return {"$ref": {"kind": v.kind, "ref": v.ref}}
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v if -(2**53) < v < 2**53 else {"$int": str(v)}
    if isinstance(v, float):
        return {"$float": repr(v)}
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, dt.datetime):
        return {"$datetime": v.isoformat()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in v):
            return {k: to_json(x) for k, x in v.items()}
        return {"$map": [[to_json(k), to_json(x)] for k, x in v.items()]}
    if v is cbor2.undefined:
        return {"$undefined": True}
    if isinstance(v, cbor2.CBORSimpleValue):
        return {"$simple": v.value}
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return {"$ipaddress": str(v)}
    raise AssertionError(f"decoded a value outside the notation: {v!r}")


class ObjectFactory:
    """Builds the local objects a vector's references stand for, and answers on_object."""

    def __init__(self) -> None:
        self.refs: dict[int, tuple[str, int]] = {}
        self.keep: list[object] = []  # keep the other ends alive

    def make(self, kind: str, ref: int):
        if kind in ("sender", "receiver"):
            sender, receiver = libchan.pipe()
            obj = sender if kind == "sender" else receiver
            self.keep += [sender, receiver]
        else:
            end, other = libchan.stream_pipe()
            self.keep += [end, other]
            obj = {"stream": end, "read-stream": libchan.ReadOnly(end), "write-stream": libchan.WriteOnly(end)}[kind]
        assert kind_of(obj) == kind
        self.refs[id(obj)] = (kind, ref)
        self.keep.append(obj)
        return obj

    def on_object(self, kind: str, obj) -> int:
        want_kind, ref = self.refs[id(obj)]
        assert kind == want_kind, f"codec saw a {kind}, the vector says {want_kind}"
        return ref


def from_json(v, factory: ObjectFactory, *, key: bool = False):
    """JSON notation -> a Python value to encode (references become real pipe ends)."""
    if isinstance(v, list):
        items = [from_json(x, factory, key=key) for x in v]
        return tuple(items) if key else items
    if not isinstance(v, dict):
        return v
    if len(v) == 1:
        (tag, inner), = v.items()
        if tag == "$ref":
            return factory.make(inner["kind"], inner["ref"])
        if tag == "$int":
            return int(inner)
        if tag == "$float":
            return float(inner)
        if tag == "$bytes":
            return bytes.fromhex(inner)
        if tag == "$datetime":
            return dt.datetime.fromisoformat(inner)
        if tag == "$map":
            return {from_json(k, factory, key=True): from_json(x, factory) for k, x in inner}
        if tag == "$undefined":
            return cbor2.undefined
        if tag == "$simple":
            return cbor2.CBORSimpleValue(inner)
        if tag == "$ipaddress":
            return ipaddress.ip_address(inner)
        assert not tag.startswith("$"), f"unknown notation {tag}"
    return {k: from_json(x, factory) for k, x in v.items()}


def codec_for(limits: dict | None = None) -> CborCodec:
    limits = limits or {}
    return CborCodec(
        max_message_size=limits.get("max_message_size", MESSAGES["limits"]["max_message_size"]),
        max_depth=limits.get("max_nesting_depth", MESSAGES["limits"]["max_nesting_depth"]),
        kind_of=kind_of,
    )


def decode_recording(codec: CborCodec, data: bytes):
    seen: list[tuple[str, int]] = []

    def on_reference(kind: str, ref: int) -> Recorded:
        seen.append((kind, ref))
        return Recorded(kind, ref)

    return codec.decode(data, on_reference), seen


def refs_in(v) -> list[tuple[str, int]]:
    """The references of a JSON value, in wire order (map keys before their values)."""
    if isinstance(v, list):
        return [r for x in v for r in refs_in(x)]
    if isinstance(v, dict):
        if set(v) == {"$ref"}:
            return [(v["$ref"]["kind"], v["$ref"]["ref"])]
        if set(v) == {"$map"}:
            return [r for k, x in v["$map"] for r in refs_in(k) + refs_in(x)]
        return [r for x in v.values() for r in refs_in(x)]
    return []


# -- sanity of the files themselves -------------------------------------------------------


def test_defaults_match_config():
    c = Config()
    assert MESSAGES["limits"] == {"max_message_size": c.max_message_size, "max_nesting_depth": c.max_nesting_depth}
    assert FRAMING["max_message_size"] == c.max_message_size
    assert MESSAGES["reference_tags"] == TAGS == {
        "sender": 41400,
        "receiver": 41401,
        "stream": 41402,
        "read-stream": 41403,
        "write-stream": 41404,
    }
    assert FRAMING["keepalive"] == KEEPALIVE.hex() == "f7"


def test_every_tag_and_direction_is_covered():
    kinds = {r[0] for v in MESSAGES["vectors"] for r in refs_in(v["value"])}
    assert kinds == set(TAGS)
    assert {v["direction"] for v in MESSAGES["vectors"]} == {"both", "decode", "encode"}


# -- messages -------------------------------------------------------------------------------

DECODABLE = [v for v in MESSAGES["vectors"] if v["direction"] in ("both", "decode")]
ENCODABLE = [v for v in MESSAGES["vectors"] if v["direction"] in ("both", "encode")]


@pytest.mark.parametrize("vec", DECODABLE, ids=[v["name"] for v in DECODABLE])
def test_message_decode(vec):
    value, seen = decode_recording(codec_for(vec.get("limits")), bytes.fromhex(vec["hex"]))
    assert to_json(value) == vec["value"]
    assert seen == refs_in(vec["value"])


@pytest.mark.parametrize("vec", ENCODABLE, ids=[v["name"] for v in ENCODABLE])
def test_message_encode(vec):
    factory = ObjectFactory()
    value = from_json(vec["value"], factory)
    if vec.get("python") == "tuple":
        value = tuple(value)
    data = codec_for(vec.get("limits")).encode(value, factory.on_object)
    assert data.hex() == vec["hex"]
    assert len(factory.refs) == len(refs_in(vec["value"]))


def test_both_way_vectors_round_trip():
    for vec in MESSAGES["vectors"]:
        if vec["direction"] != "both":
            continue
        value, _ = decode_recording(codec_for(), bytes.fromhex(vec["hex"]))
        factory = ObjectFactory()
        again = codec_for().encode(from_json(to_json(value), factory), factory.on_object)
        assert again.hex() == vec["hex"], vec["name"]


@pytest.mark.parametrize("vec", MESSAGES["invalid"], ids=[v["name"] for v in MESSAGES["invalid"]])
def test_message_invalid(vec):
    codec = codec_for(vec.get("limits"))
    with pytest.raises(Exception) as info:
        decode_recording(codec, bytes.fromhex(vec["hex"]))
    assert type(info.value) is ERRORS[vec["error"]], repr(info.value)
    if vec["error"] == "MessageTooLargeError":
        assert info.value.local is False


UNSUPPORTED = {
    "set": lambda: {1},
    "frozenset": lambda: frozenset({1}),
    "date": lambda: dt.date(2024, 1, 2),
    "time": lambda: dt.time(3, 4, 5),
    "Decimal": lambda: decimal.Decimal("1.5"),
    "Fraction": lambda: fractions.Fraction(1, 3),
    "UUID": lambda: uuid.UUID(int=0),
    "Pattern": lambda: re.compile("x"),
    "IPv4Address": lambda: ipaddress.IPv4Address("192.0.2.1"),
    "IPv6Address": lambda: ipaddress.IPv6Address("::1"),
    "IPv4Network": lambda: ipaddress.IPv4Network("192.0.2.0/24"),
    "IPv6Network": lambda: ipaddress.IPv6Network("fe80::/64"),
    "complex": lambda: 1 + 2j,
    "object": lambda: object(),
}


@pytest.mark.parametrize("vec", MESSAGES["encode_invalid"], ids=[v["python_type"] for v in MESSAGES["encode_invalid"]])
def test_message_encode_invalid(vec):
    factory = ObjectFactory()
    for value in (UNSUPPORTED[vec["python_type"]](), {"nested": [UNSUPPORTED[vec["python_type"]]()]}):
        with pytest.raises(Exception) as info:
            codec_for().encode(value, factory.on_object)
        assert type(info.value) is ERRORS[vec["error"]], repr(info.value)


def test_message_encode_too_large_is_local():
    codec = codec_for({"max_message_size": 4})
    assert codec.encode(b"\x01\x02\x03", None).hex() == "43010203"
    with pytest.raises(errors.MessageTooLargeError) as info:
        codec.encode(b"\x01\x02\x03\x04", None)
    assert info.value.local is True and info.value.size == 5 and info.value.limit == 4


# -- framing --------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", FRAMING["headers"], ids=[str(v["length"]) for v in FRAMING["headers"]])
def test_frame_header(vec):
    n, header = vec["length"], bytes.fromhex(vec["hex"])
    assert frame_header(n) == header
    if n == 0:
        assert FrameDecoder(16).feed(header) == ([(b"", 1)], 0)
        return
    # The decoder reads the length from the header alone, for every length class.
    d = FrameDecoder(n)
    assert d.feed(header) == ([], 0)
    assert d.buffered == len(header) and not d.at_boundary()
    with pytest.raises(errors.MessageTooLargeError):
        FrameDecoder(n - 1).feed(header)


@pytest.mark.parametrize("vec", FRAMING["frames"], ids=[v["name"] for v in FRAMING["frames"]])
def test_frame_encode_decode(vec):
    payload, data = bytes.fromhex(vec["payload"]), bytes.fromhex(vec["hex"])
    assert encode_frame(payload) == data
    d = FrameDecoder(FRAMING["max_message_size"])
    assert d.feed(data) == ([(payload, len(data))], 0)
    assert d.at_boundary()


def _feed_split(data: bytes, cuts: list[int], max_size: int):
    d = FrameDecoder(max_size)
    payloads, free, last = [], 0, 0
    for cut in cuts + [len(data)]:
        got, f = d.feed(data[last:cut])
        payloads += got
        free += f
        last = cut
    return payloads, free, d


@pytest.mark.parametrize("vec", FRAMING["streams"], ids=[v["name"] for v in FRAMING["streams"]])
def test_frame_streams(vec):
    data = bytes.fromhex(vec["hex"])
    rng = random.Random(vec["name"])
    splits = [[], list(range(1, len(data)))]  # whole, byte by byte
    for _ in range(20):
        splits.append(sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 4)))) if len(data) > 1 else [])
    for cuts in splits:
        payloads, free, d = _feed_split(data, cuts, FRAMING["max_message_size"])
        assert [p.hex() for p, _ in payloads] == vec["payloads"]
        assert free == vec["keepalives"]
        assert d.at_boundary() is vec["complete"]
        # wire sizes + keepalives + what is buffered account for every byte
        assert sum(w for _, w in payloads) + free + d.buffered == len(data)


@pytest.mark.parametrize("vec", FRAMING["channel_bodies"], ids=[v["name"] for v in FRAMING["channel_bodies"]])
def test_channel_bodies(vec):
    data = bytes.fromhex(vec["hex"])
    payloads, free = FrameDecoder(FRAMING["max_message_size"]).feed(data)
    assert free == vec["keepalives"]
    decoded = [to_json(decode_recording(codec_for(), p)[0]) for p, _ in payloads]
    assert decoded == vec["messages"]
    # and the other way: each message encodes to exactly its frame's payload
    for (payload, _), msg in zip(payloads, vec["messages"]):
        factory = ObjectFactory()
        assert codec_for().encode(from_json(msg, factory), factory.on_object) == payload


@pytest.mark.parametrize("vec", FRAMING["invalid"], ids=[v["name"] for v in FRAMING["invalid"]])
def test_frame_invalid(vec):
    data = bytes.fromhex(vec["hex"])
    cls = ERRORS[vec["error"]]
    max_size = vec.get("max_message_size", FRAMING["max_message_size"])
    for cuts in ([], list(range(1, len(data)))):
        d = FrameDecoder(max_size)
        got: list[str] = []
        error = None
        last = 0
        for cut in cuts + [len(data)]:
            try:
                payloads, _ = d.feed(data[last:cut])
            except Exception as exc:  # noqa: BLE001
                error = exc
                break
            got += [p.hex() for p, _ in payloads]
            last = cut
            if d.error is not None:
                error = d.error
                break
        assert type(error) is cls, repr(error)
        assert got == vec["payloads_before_error"]
        # the error is sticky
        with pytest.raises(cls):
            d.feed(b"\xf7")


# -- headers and connection start ------------------------------------------------------------


def test_request_headers():
    sid = HEADERS["session_id_example"]
    session = SessionCore(None, session_id=sid, authority="127.0.0.1:9323", scheme="http")
    by_path = {PATH_SESSION: [], PATH_PARK: [], PATH_STREAM: []}
    for req in HEADERS["requests"]:
        headers = [tuple(h) for h in req["headers"]]
        path = dict(headers)[":path"]
        if path not in by_path:  # anonymous request: no libchan-session
            assert "libchan-session" not in dict(headers)
            continue
        built = session._request_headers(path)
        assert headers[: len(built)] == built
        extra = dict(headers[len(built) :])
        if path == PATH_STREAM:
            kind, ref, parent = _stream_headers(extra)
            assert (kind, str(ref)) == (extra["libchan-type"], extra["libchan-ref"])
            assert parent == (int(extra["libchan-parent-ref"]) if "libchan-parent-ref" in extra else None)
        else:
            assert extra == {}


def test_response_headers_name_streams():
    for resp in HEADERS["responses"]:
        headers = dict(resp["headers"])
        if "libchan-ref" in headers:
            assert headers[":status"] == "200"
            kind, ref, parent = _stream_headers(headers)
            assert kind in TAGS and ref % 2 == 0  # the server allocates even numbers
            assert parent is None or parent % 2 == 0


@pytest.mark.parametrize("vec", HEADERS["stream_headers"]["valid"], ids=lambda v: json.dumps(v["headers"]))
def test_stream_headers_valid(vec):
    assert _stream_headers(vec["headers"]) == (vec["kind"], vec["ref"], vec["parent"])


@pytest.mark.parametrize("vec", HEADERS["stream_headers"]["invalid"], ids=lambda v: json.dumps(v["headers"]))
def test_stream_headers_invalid(vec):
    with pytest.raises(Exception) as info:
        _stream_headers(vec["headers"])
    assert type(info.value) is ERRORS[vec["error"]]


@pytest.mark.parametrize("vec", HEADERS["connection_start"], ids=lambda v: v["side"])
def test_connection_start(vec):
    c = Config()
    mux = H2Multiplexer(
        client_side=vec["side"] == "client",
        stream_window=c.stream_window,
        connection_window=c.connection_window,
        max_frame_size=c.max_frame_size,
        max_concurrent_streams=c.max_streams,
        max_header_list_size=c.max_header_list_size,
    )
    assert mux.data_to_send().hex() == vec["hex"]


def test_nan_is_a_float():
    # the notation compares floats by repr; make sure NaN decodes as a float NaN
    (vec,) = [v for v in MESSAGES["vectors"] if v["name"] == "float nan"]
    value, _ = decode_recording(codec_for(), bytes.fromhex(vec["hex"]))
    assert isinstance(value, float) and math.isnan(value)


# --- Go-compatible profile (spec section 19): vectors from the Go recordings -----------------
import datetime as _dt  # noqa: E402

from libchan.spdy_like import spdy3 as _spdy3  # noqa: E402
from libchan.messages.msgpack_codec import MsgpackCodec as _MsgpackCodec  # noqa: E402
from libchan.messages.msgpack_codec import MsgpackStreamDecoder as _MsgpackStreamDecoder  # noqa: E402

_GO = json.loads((Path(__file__).resolve().parents[2] / "spec" / "vectors" / "go-profile.json").read_text())
_MP = _MsgpackCodec(max_message_size=16 * 1024 * 1024, max_depth=256, kind_of=kind_of)


class _GoRef:
    def __init__(self, kind, ref):
        self.kind, self.ref = kind, ref


def _go_to_json(value):
    if isinstance(value, _GoRef):
        return {"$ref": {"kind": value.kind, "ref": value.ref}}
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, _dt.datetime):
        return {"$time": value.isoformat()}
    if isinstance(value, list):
        return [_go_to_json(v) for v in value]
    if isinstance(value, dict):
        return {"$map": [[_go_to_json(k), _go_to_json(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [_go_to_json(v) for v in value]}
    return value


def _go_from_json(value, refs):
    if isinstance(value, list):
        return [_go_from_json(v, refs) for v in value]
    if isinstance(value, dict):
        if "$bin" in value:
            return bytes.fromhex(value["$bin"])
        if "$time" in value:
            return _dt.datetime.fromisoformat(value["$time"])
        if "$tuple" in value:
            return tuple(_go_from_json(v, refs) for v in value["$tuple"])
        if "$map" in value:
            return {_go_from_json(k, refs): _go_from_json(v, refs) for k, v in value["$map"]}
        if "$ref" in value:
            kind, ref = value["$ref"]["kind"], value["$ref"]["ref"]
            s, r = libchan.pipe()
            a, _ = libchan.stream_pipe()
            obj = {"sender": s, "receiver": r, "stream": a, "read-stream": libchan.ReadOnly(a),
                   "write-stream": libchan.WriteOnly(a)}[kind]
            refs[id(obj)] = ref
            return obj
    return value


def _go_decode(hexstr):
    dec = _MsgpackStreamDecoder(_MP, lambda kind, ref: _GoRef(kind, ref))
    items = dec.feed(bytes.fromhex(hexstr))
    assert dec.error is None and len(items) == 1
    return items[0][0]


@pytest.mark.parametrize("vec", _GO["frames"], ids=lambda v: f"{v['scenario']}-{v['dir']}-{v['frame']['type']}")
def test_go_frame_vectors(vec):
    raw = bytes.fromhex(vec["hex"])
    frames = _spdy3.FrameParser().feed(raw)
    assert len(frames) == 1
    frame = frames[0]
    meaning = vec["frame"]
    assert type(frame).__name__ == meaning["type"]
    for key, expected in meaning.items():
        if key == "type":
            continue
        if key == "headers":
            assert sorted(map(list, frame.headers)) == sorted(expected)
        elif key == "header_block_plain_hex":
            assert frame.header_block.hex() == expected
        elif key == "data_hex":
            assert frame.data.hex() == expected
        elif key == "entries":
            assert [list(e) for e in frame.entries] == expected
        else:
            assert getattr(frame, key) == expected, key
    # and back: our writer produces the same bytes (header blocks: the same decompressed block)
    again = _spdy3.FrameWriter().serialize(frame)
    if "headers" in meaning:
        reparsed = _spdy3.FrameParser().feed(again)[0]
        assert reparsed == frame and reparsed.header_block.hex() == meaning["header_block_plain_hex"]
    else:
        assert again == raw


@pytest.mark.parametrize("vec", _GO["messages"], ids=lambda v: f"{v['scenario']}-{v['hex'][:16]}")
def test_go_message_vectors(vec):
    value = _go_decode(vec["hex"])
    if "error" in vec:
        assert type(value).__name__ == vec["error"]
        return
    assert _go_to_json(value) == vec["value"]
    refs: dict[int, int] = {}
    rebuilt = _go_from_json(vec["value"], refs)
    again = _MP.encode(rebuilt, lambda kind, obj: refs[id(obj)])
    assert _go_to_json(_go_decode(again.hex())) == vec["value"]


@pytest.mark.parametrize("vec", _GO["values"], ids=lambda v: v["name"])
def test_go_value_vectors(vec):
    refs: dict[int, int] = {}
    value = _go_from_json(vec["value"], refs)
    assert _MP.encode(value, lambda kind, obj: refs[id(obj)]).hex() == vec["hex"]
    assert _go_to_json(_go_decode(vec["hex"])) == vec["value"]


@pytest.mark.parametrize("max_message_size", [10, 20, 100, 1000, 1 << 20])
def test_short_bytes_shortcut_gives_the_codecs_bytes(max_message_size):
    """NetSender's shortcut for short ``bytes`` messages (the profile's short_bytes_framing)
    writes exactly what the codec and the framing write, and declines where they would differ."""
    from libchan.messages.cbor_codec import CborCodec
    from libchan.engine.profiles import H2Profile, SpdyProfile

    profile = H2Profile()
    codec = CborCodec(max_message_size=max_message_size, max_depth=64, kind_of=kind_of)
    below, heads = profile.short_bytes_framing(max_message_size)
    taken = 0
    for n in range(300):
        value = bytes((i * 7) % 256 for i in range(n))
        if n < below:
            taken += 1
            assert heads[n] + value == profile.wire_message(codec.encode(value, None)), n
        else:
            assert n >= 250 or n >= max_message_size - 8, n
    assert taken == min(250, max(0, max_message_size - 8))
    # the Go profile: msgpack's bin 8, the message its own payload
    go = SpdyProfile()
    go_codec = _MsgpackCodec(max_message_size=max_message_size, max_depth=64, kind_of=kind_of)
    below, heads = go.short_bytes_framing(max_message_size)
    assert below == min(256, max_message_size - 1)
    for n in range(below):
        value = bytes((i * 7) % 256 for i in range(n))
        wire = heads[n] + value
        assert wire == go.wire_message(go_codec.encode(value, None)) and len(wire) <= max_message_size, n
