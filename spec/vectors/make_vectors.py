#!/usr/bin/env python3
"""Generate the JSON test vectors of spec/PROTOCOL.md with libchan's own sans-IO code.

Run from the repository root:  .venv/bin/python spec/vectors/make_vectors.py

The checked-in JSON files are the reference; this script only documents how
they were produced (so every hex string is exactly what the implementation
emits or accepts). Regenerating must give byte-identical files; a difference
is a change of the wire format and needs a change of the specification.

JSON notation for decoded values (the "value" field):

* null, true, false, text strings and arrays: themselves;
* integers: a JSON number when |n| < 2**53, else {"$int": "<decimal>"};
* floats: {"$float": "<Python repr>"} ("1.5", "-0.0", "inf", "-inf", "nan");
* byte strings: {"$bytes": "<hex>"};
* date/times: {"$datetime": "<ISO 8601>"} (an offset-less string stands for a
  naive datetime, which the encoder sends as UTC);
* maps: a JSON object when every key is a text string not starting with "$",
  else {"$map": [[key, value], ...]} (keys in wire order);
* references: {"$ref": {"kind": "<kind>", "ref": <number>}};
* values outside the data model that the decoder still accepts:
  {"$undefined": true}, {"$simple": n}, {"$ipaddress": "<address>"}.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import cbor2  # noqa: E402

import libchan  # noqa: E402

from libchan.config import Config  # noqa: E402
from libchan.errors import MessageTooLargeError, RemoteProtocolError  # noqa: E402
from libchan.engine.kinds import kind_of
from libchan.messages.cbor_codec import TAGS, CborCodec  # noqa: E402
from libchan.messages.framing import KEEPALIVE, FrameDecoder, encode_frame, frame_header  # noqa: E402
from libchan.spdy_like.h2mux import PREFACE, H2Multiplexer  # noqa: E402

CFG = Config()
CODEC = CborCodec(max_message_size=CFG.max_message_size, max_depth=CFG.max_nesting_depth, kind_of=kind_of)
SAFE = 2**53


class Ref:
    def __init__(self, kind: str, ref: int) -> None:
        self.kind, self.ref = kind, ref

    def __hash__(self) -> int:
        return hash((self.kind, self.ref))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and (self.kind, self.ref) == (other.kind, other.ref)


def to_json(v):
    if isinstance(v, Ref):
        return {"$ref": {"kind": v.kind, "ref": to_json(v.ref)}}
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v if -SAFE < v < SAFE else {"$int": str(v)}
    if isinstance(v, float):
        return {"$float": repr(v)}
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
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
    raise TypeError(f"no JSON notation for {v!r}")


def _objects_for(value, refs: dict):
    """Replace every Ref by a real local object of that kind (what an application would send)."""
    if isinstance(value, Ref):
        if value.kind in ("sender", "receiver"):
            sender, receiver = libchan.pipe()
            obj = sender if value.kind == "sender" else receiver
        else:
            end, _other = libchan.stream_pipe()
            obj = {"stream": end, "read-stream": libchan.ReadOnly(end), "write-stream": libchan.WriteOnly(end)}[value.kind]
        assert kind_of(obj) == value.kind
        refs[id(obj)] = (value.kind, value.ref, obj)
        return obj
    if isinstance(value, list):
        return [_objects_for(x, refs) for x in value]
    if isinstance(value, tuple):
        return tuple(_objects_for(x, refs) for x in value)
    if isinstance(value, dict):
        return {_objects_for(k, refs): _objects_for(x, refs) for k, x in value.items()}
    return value


def encode(value) -> bytes:
    """CborCodec.encode of ``value`` with every Ref replaced by a pipe end of its kind."""
    refs: dict = {}
    obj = _objects_for(value, refs)

    def on_object(kind, o):
        want_kind, ref, _ = refs[id(o)]
        assert kind == want_kind, (kind, want_kind)
        return ref

    return CODEC.encode(obj, on_object)


def on_object(kind, obj):
    raise AssertionError("no references expected here")


def decode(data: bytes, codec: CborCodec = CODEC):
    return codec.decode(data, lambda kind, ref: Ref(kind, ref))


UTC = dt.timezone.utc


def message_vectors() -> dict:
    both: list[tuple[str, object]] = [
        # simple values
        ("null", None),
        ("false", False),
        ("true", True),
        # unsigned integers, one per length class and at each boundary
        ("uint 0", 0),
        ("uint 23 (largest 1-byte)", 23),
        ("uint 24 (smallest 1+1)", 24),
        ("uint 255", 255),
        ("uint 256 (smallest 1+2)", 256),
        ("uint 65535", 65535),
        ("uint 65536 (smallest 1+4)", 65536),
        ("uint 2**32-1", 2**32 - 1),
        ("uint 2**32 (smallest 1+8)", 2**32),
        ("uint 2**53", 2**53),
        ("uint 2**64-1 (largest major type 0)", 2**64 - 1),
        # negative integers
        ("nint -1", -1),
        ("nint -24", -24),
        ("nint -25", -25),
        ("nint -256", -256),
        ("nint -257", -257),
        ("nint -65537", -65537),
        ("nint -2**32-1", -(2**32) - 1),
        ("nint -2**64 (largest major type 1)", -(2**64)),
        # bignums (tags 2 and 3)
        ("positive bignum 2**64", 2**64),
        ("positive bignum 2**100", 2**100),
        ("negative bignum -2**64-1", -(2**64) - 1),
        ("negative bignum -2**100", -(2**100)),
        # floats: the encoder writes every finite float as a double, inf/nan as half
        ("float 0.0", 0.0),
        ("float -0.0", -0.0),
        ("float 1.5", 1.5),
        ("float 0.1", 0.1),
        ("float -4.75e-300", -4.75e-300),
        ("float 1e300", 1e300),
        ("float smallest subnormal", 5e-324),
        ("float inf", float("inf")),
        ("float -inf", float("-inf")),
        ("float nan", float("nan")),
        # text and byte strings
        ("empty text", ""),
        ("text", "hello"),
        ("text utf-8", "h\u00e9llo \u2603 \U0001f600"),
        ("text 24 chars (1+1 header)", "abcdefghijklmnopqrstuvwx"),
        ("empty bytes", b""),
        ("bytes", b"\x00\x01\x02\xff"),
        ("bytes 300 (1+2 header)", bytes(range(256)) + bytes(44)),
        # date/times: tag 0 (RFC 3339 text)
        ("datetime UTC", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("datetime UTC microseconds", dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("datetime +05:30", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))),
        ("datetime -08:00", dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-8)))),
        # containers
        ("empty array", []),
        ("empty map", {}),
        ("array", [1, "two", 3.0, None, True]),
        ("array of 24 (1+1 header)", list(range(24))),
        ("map text keys", {"a": 1, "b": [2, 3]}),
        ("map integer and text keys", {1: "one", "two": 2, -3: None}),
        ("map with a '$' key", {"$ref": 1}),
        (
            "nested maps and lists",
            {"cmd": "run", "args": ["-v", {"env": {"PATH": "/bin", "N": [1, [2, [3, {}]]]}}], "n": -7},
        ),
        ("message mixing every type", [None, False, 2**70, -(2**70), 2.5, "s", b"b", dt.datetime(2000, 1, 1, tzinfo=UTC), [{}], {"k": []}]),
    ]
    refs: list[tuple[str, object]] = [
        ("sender reference (tag 41400)", Ref("sender", 3)),
        ("receiver reference (tag 41401)", Ref("receiver", 5)),
        ("duplex stream reference (tag 41402)", Ref("stream", 7)),
        ("read-only stream reference (tag 41403)", Ref("read-stream", 9)),
        ("write-only stream reference (tag 41404)", Ref("write-stream", 11)),
        ("server-side (even) reference", Ref("sender", 2)),
        ("reference 0", Ref("receiver", 0)),
        ("reference 24 (1+1 header)", Ref("sender", 24)),
        ("reference 2**32+1 (1+8 header)", Ref("stream", 2**32 + 1)),
        ("reference in a map", {"cmd": "attach", "stdout": Ref("read-stream", 13), "stdin": Ref("write-stream", 15), "ret": Ref("sender", 17)}),
        ("references in nested lists", [[Ref("receiver", 19)], [[Ref("stream", 21)]]]),
        ("reference as a map key", {Ref("sender", 23): "key"}),
        (
            "all five kinds in one message",
            {"s": Ref("sender", 1), "r": Ref("receiver", 3), "d": Ref("stream", 5), "ro": Ref("read-stream", 7), "wo": Ref("write-stream", 9)},
        ),
    ]
    out: list[dict] = []
    for name, value in both:
        data = encode(value)
        assert _same(decode(data), value), name
        out.append({"name": name, "direction": "both", "hex": data.hex(), "value": to_json(value)})
    for name, value in refs:
        data = encode(value)
        assert _same(decode(data), value), name
        out.append({"name": name, "direction": "both", "hex": data.hex(), "value": to_json(value)})

    # Encode-only: a naive datetime is sent as UTC.
    naive = dt.datetime(2024, 1, 2, 3, 4, 5)
    out.append(
        {
            "name": "naive datetime is encoded as UTC",
            "direction": "encode",
            "hex": CODEC.encode(naive, on_object).hex(),
            "value": {"$datetime": naive.isoformat()},
        }
    )
    # Encode-only: a tuple is sent as an array.
    out.append({"name": "tuple is encoded as an array", "direction": "encode", "hex": CODEC.encode((1, 2), on_object).hex(), "value": [1, 2], "python": "tuple"})

    # Decode-only: other encodings of the same data model that a decoder accepts.
    decode_only = [
        ("non-minimal uint (1+8 header for 1)", "1b0000000000000001"),
        ("non-minimal nint (1+1 header for -1)", "3800"),
        ("half float 1.5", "f93e00"),
        ("single float 1.5", "fa3fc00000"),
        ("single float -0.0", "fa80000000"),
        ("half float inf", "f97c00"),
        ("datetime tag 1, integer seconds", "c11a65938a25"),
        ("datetime tag 1, negative seconds", "c13a00000001"),
        ("datetime tag 1, float seconds", "c1fb41d9aea02d4ccccd"),
        ("datetime tag 0 with offset", "c07819323032342d30312d30325430333a30343a30352b30353a3330"),
        ("bignum that fits 64 bits", "c24101"),
        ("bignum with no content bytes (0)", "c240"),
        ("negative bignum with no content bytes (-1)", "c340"),
        ("indefinite-length array", "9f0102ff"),
        ("indefinite-length map", "bf616101ff"),
        ("indefinite-length text", "7f626865636c6c6fff"),
        ("indefinite-length bytes", "5f4201024103ff"),
        ("duplicate map key: the last value wins", "a2616101616102"),
        ("array as a map key (decoded as a tuple)", "a1820102f5"),
        ("reference holding a bignum", "d9a1b8c24105"),
        ("reference with non-minimal number", "d9a1b91b0000000000000005"),
        ("simple value undefined (outside the data model, accepted)", "f7"),
        ("unassigned simple value 16 (outside the data model, accepted)", "f0"),
        ("unassigned simple value 255 (outside the data model, accepted)", "f8ff"),
    ]
    for name, h in decode_only:
        value = decode(bytes.fromhex(h))
        out.append({"name": name, "direction": "decode", "hex": h, "value": to_json(value)})

    # Invalid payloads.
    invalid = [
        ("empty payload", "", "RemoteProtocolError", None),
        ("truncated: array of 2 with 1 item", "8201", "RemoteProtocolError", None),
        ("truncated: text header promises 5 bytes", "6568656c", "RemoteProtocolError", None),
        ("truncated: uint 1+4 header cut", "1a0001", "RemoteProtocolError", None),
        ("truncated: tag without content", "d9a1b8", "RemoteProtocolError", None),
        ("trailing bytes after the item", "0102", "RemoteProtocolError", None),
        ("two items (a CBOR sequence is not one message)", "f6f6", "RemoteProtocolError", None),
        ("reserved additional information 28", "1c", "RemoteProtocolError", None),
        ("reserved additional information 30 in major type 2", "5e", "RemoteProtocolError", None),
        ("stray break byte", "ff", "RemoteProtocolError", None),
        ("invalid UTF-8 in a text string", "62c328", "RemoteProtocolError", None),
        ("indefinite text with a byte-string chunk", "7f4161ff", "RemoteProtocolError", None),
        ("unknown tag 6", "d80601", "RemoteProtocolError", None),
        ("unknown tag 24 (embedded CBOR)", "d8184101", "RemoteProtocolError", None),
        ("unknown tag 32 (URI)", "d8206161", "RemoteProtocolError", None),
        ("unknown tag 41399 (just below the reference range)", "d9a1b701", "RemoteProtocolError", None),
        ("unknown tag 41405 (just above the reference range)", "d9a1bd01", "RemoteProtocolError", None),
        ("rejected tag 4 (decimal fraction)", "c482211a00011def", "RemoteProtocolError", None),
        ("rejected tag 5 (bigfloat)", "c582200b", "RemoteProtocolError", None),
        ("rejected tag 25 (string reference)", "d81900", "RemoteProtocolError", None),
        ("rejected tag 28 (shareable)", "d81c01", "RemoteProtocolError", None),
        ("rejected tag 29 (shared reference)", "d81d00", "RemoteProtocolError", None),
        ("rejected tag 30 (rational)", "d81e820102", "RemoteProtocolError", None),
        ("rejected tag 35 (regexp)", "d8236161", "RemoteProtocolError", None),
        ("rejected tag 36 (MIME)", "d8246161", "RemoteProtocolError", None),
        ("rejected tag 37 (UUID)", "d8255000000000000000000000000000000000", "RemoteProtocolError", None),
        ("rejected tag 100 (epoch date)", "d86400", "RemoteProtocolError", None),
        ("rejected tag 256 (string-reference namespace)", "d9010001", "RemoteProtocolError", None),
        ("rejected tag 258 (set)", "d9010280", "RemoteProtocolError", None),
        ("rejected tag 260 (network address)", "d9010444c0000201", "RemoteProtocolError", None),
        ("rejected tag 261 (network prefix)", "d90105a144c000020118", "RemoteProtocolError", None),
        ("rejected tag 1004 (RFC 3339 full-date)", "d903ec6a323032342d30312d3032", "RemoteProtocolError", None),
        ("rejected tag 55799 (self-described CBOR)", "d9d9f701", "RemoteProtocolError", None),
        ("rejected tag 52 (IPv4 address)", "d83444c0000201", "RemoteProtocolError", None),
        ("rejected tag 54 (IPv6 address)", "d83650fe800000000000000000000000000001", "RemoteProtocolError", None),
        ("tag 0 without a UTC offset", "c0733230323" + "42d30312d30325430333a30343a3035", "RemoteProtocolError", None),
        ("tag 0 holding an integer", "c001", "RemoteProtocolError", None),
        ("tag 1 holding NaN", "c1f97e00", "RemoteProtocolError", None),
        ("tag 2 holding text", "c26161", "RemoteProtocolError", None),
        ("reference holding a negative integer", "d9a1b820", "RemoteProtocolError", None),
        ("reference holding text", "d9a1b96133", "RemoteProtocolError", None),
        ("reference holding null", "d9a1baf6", "RemoteProtocolError", None),
        ("reference holding a float", "d9a1bbfb4008000000000000", "RemoteProtocolError", None),
        ("reference holding a reference", "d9a1b8d9a1b905", "RemoteProtocolError", None),
        ("reference holding an array", "d9a1bc8105", "RemoteProtocolError", None),
        ("nesting deeper than max_nesting_depth (3): 5 arrays", "818181818100", "RemoteProtocolError", {"max_nesting_depth": 3}),
        ("nesting deeper than max_nesting_depth (3): tag counts as a level", "818181d9a1b805", "RemoteProtocolError", {"max_nesting_depth": 3}),
        ("message larger than max_message_size (4)", "4401020304", "MessageTooLargeError", {"max_message_size": 4}),
        ("message larger than max_message_size (4), even if malformed", "ffffffffff", "MessageTooLargeError", {"max_message_size": 4}),
    ]
    bad: list[dict] = []
    for name, h, err, limits in invalid:
        codec = CODEC
        if limits:
            codec = CborCodec(
                max_message_size=limits.get("max_message_size", CFG.max_message_size),
                max_depth=limits.get("max_nesting_depth", CFG.max_nesting_depth),
                kind_of=kind_of,
            )
        try:
            decode(bytes.fromhex(h), codec)
        except Exception as exc:  # noqa: BLE001
            got = type(exc).__name__
        else:
            raise AssertionError(f"{name}: decoded")
        assert got == err, (name, got, err)
        entry = {"name": name, "hex": h, "error": err}
        if limits:
            entry["limits"] = limits
        bad.append(entry)

    # Nesting at exactly the limit is fine (for the invalid ones above).
    edge = [
        ("4 nested arrays with max_nesting_depth 3 (depth 0..3)", "81818180", {"max_nesting_depth": 3}),
        ("reference inside 2 arrays with max_nesting_depth 3", "8181d9a1b805", {"max_nesting_depth": 3}),
        ("message of exactly max_message_size (4)", "43010203", {"max_message_size": 4}),
    ]
    at_limit: list[dict] = []
    for name, h, limits in edge:
        codec = CborCodec(
            max_message_size=limits.get("max_message_size", CFG.max_message_size),
            max_depth=limits.get("max_nesting_depth", CFG.max_nesting_depth),
            kind_of=kind_of,
        )
        value = decode(bytes.fromhex(h), codec)
        at_limit.append({"name": name, "direction": "decode", "hex": h, "value": to_json(value), "limits": limits})

    # Values the encoder refuses (LocalProtocolError); named by Python type.
    unsupported = ["set", "frozenset", "date", "time", "Decimal", "Fraction", "UUID", "Pattern", "IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network", "complex", "object"]

    return {
        "description": "libchan HTTP/2 profile: message payloads (the content of one stream frame on a channel). "
        "See spec/PROTOCOL.md section 'Messages'. direction: 'both' = decode(hex) gives value and encode(value) gives hex; "
        "'decode' = decoders accept hex and produce value, encoders emit something else; 'encode' = what the encoder emits for "
        "a value that decodes differently (e.g. naive datetime).",
        "limits": {"max_message_size": CFG.max_message_size, "max_nesting_depth": CFG.max_nesting_depth},
        "notation": [line for line in __doc__.split("JSON notation for decoded values (the \"value\" field):")[1].strip().splitlines()],
        "reference_tags": TAGS,
        "vectors": out + at_limit,
        "invalid": bad,
        "encode_invalid": [{"python_type": t, "error": "LocalProtocolError"} for t in unsupported],
    }


def _same(a, b) -> bool:
    return json.dumps(to_json(a), sort_keys=True) == json.dumps(to_json(b), sort_keys=True)


def framing_vectors() -> dict:
    headers = []
    for n in (0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**40):
        headers.append({"length": n, "hex": frame_header(n).hex()})

    frames = []
    for n in (0, 1, 5, 23, 24, 100, 255, 256, 300):
        payload = bytes((i * 7 + 3) & 0xFF for i in range(n))
        frames.append({"name": f"payload of {n} bytes", "payload": payload.hex(), "hex": encode_frame(payload).hex()})

    def run(data: bytes, max_size: int = CFG.max_message_size):
        d = FrameDecoder(max_size)
        payloads, free = d.feed(data)
        return [p.hex() for p, _ in payloads], free, d.at_boundary()

    streams = []

    def stream(name, parts, note=None):
        data = b"".join(parts)
        payloads, free, boundary = run(data)
        e = {"name": name, "hex": data.hex(), "payloads": payloads, "keepalives": free, "complete": boundary}
        if note:
            e["note"] = note
        streams.append(e)

    stream("keepalives only", [KEEPALIVE, KEEPALIVE, KEEPALIVE])
    stream("a frame, the end marker 0xf6, then keepalives", [encode_frame(b"a"), b"\xf6", KEEPALIVE, KEEPALIVE])
    stream("empty body", [])
    stream("one frame", [encode_frame(b"\xf6")])
    stream(
        "keepalives interleaved with frames of each header class",
        [KEEPALIVE, encode_frame(b"hi"), KEEPALIVE, KEEPALIVE, encode_frame(bytes(30)), KEEPALIVE, encode_frame(bytes(260)), encode_frame(b""), KEEPALIVE],
    )
    stream("empty frame is a payload, not a keepalive", [encode_frame(b""), encode_frame(b"")])
    stream("non-minimal 1+1 header (0x58) for 5 bytes", [b"\x58\x05", b"abcde"], "decoders accept any header length class; encoders use the shortest")
    stream("non-minimal 1+2 header (0x59) for 3 bytes", [b"\x59\x00\x03", b"abc"])
    stream("1+4 header class (0x5a), non-minimal for 4 bytes", [b"\x5a\x00\x00\x00\x04", b"wxyz", KEEPALIVE])
    stream("1+8 header class (0x5b), non-minimal for 2 bytes", [KEEPALIVE, b"\x5b\x00\x00\x00\x00\x00\x00\x00\x02", b"ok"])
    stream("truncated: header without all of its payload", [encode_frame(b"abc"), b"\x45ab"], "body ending here is a RemoteProtocolError")
    stream("truncated: partial length bytes", [KEEPALIVE, b"\x59\x01"], "body ending here is a RemoteProtocolError")

    # Channel bodies: frames that each hold one encoded message.
    bodies = []
    msgs = [{"hello": "world"}, [1, 2, 3], Ref("sender", 5), None]
    parts = [KEEPALIVE]
    for m in msgs:
        parts += [encode_frame(encode(m)), KEEPALIVE]
    data = b"".join(parts)
    bodies.append({"name": "channel body: four messages with keepalives", "hex": data.hex(), "messages": [to_json(m) for m in msgs], "keepalives": 5})

    invalid = []
    for name, h, err, max_size in [
        ("unsigned integer instead of a byte string", "00", "RemoteProtocolError", None),
        ("text string instead of a byte string", "6161", "RemoteProtocolError", None),
        ("array", "80", "RemoteProtocolError", None),
        ("map", "a0", "RemoteProtocolError", None),
        ("tag", "c24101", "RemoteProtocolError", None),
        ("a frame after the end marker 0xf6", "f64161", "RemoteProtocolError", None),
        ("a second end marker", "f6f7f6", "RemoteProtocolError", None),
        ("false (0xf4)", "f4", "RemoteProtocolError", None),
        ("break (0xff)", "ff", "RemoteProtocolError", None),
        ("indefinite-length byte string", "5f4101ff", "RemoteProtocolError", None),
        ("reserved byte-string header 0x5c", "5c", "RemoteProtocolError", None),
        ("reserved byte-string header 0x5d", "5d", "RemoteProtocolError", None),
        ("reserved byte-string header 0x5e", "5e", "RemoteProtocolError", None),
        ("garbage after a good frame and a keepalive", "4161f701", "RemoteProtocolError", None),
        ("raw ASCII text (lowercase letters are text-string headers)", "68656c6c6f", "RemoteProtocolError", None),
        ("frame longer than max_message_size (16): rejected from its header alone", "5811", "MessageTooLargeError", 16),
        ("frame longer than max_message_size (16): 1+8 header", "5b0000000100000000", "MessageTooLargeError", 16),
        ("frame of exactly max_message_size (16) is fine, then one over", "50" + "00" * 16 + "5811", "MessageTooLargeError", 16),
    ]:
        d = FrameDecoder(max_size or CFG.max_message_size)
        before: list[str] = []
        try:
            payloads, _ = d.feed(bytes.fromhex(h))
            before = [p.hex() for p, _ in payloads]
            exc = d.error  # good items came first; the error is kept for the next feed
        except Exception as e:  # noqa: BLE001
            exc = e
        assert exc is not None, name
        got = type(exc).__name__
        assert got == err, (name, got)
        e = {"name": name, "hex": h, "error": err, "payloads_before_error": before}
        if max_size:
            e["max_message_size"] = max_size
        invalid.append(e)

    return {
        "description": "libchan HTTP/2 profile: stream body framing (RFC 8742 CBOR sequence of definite-length byte strings; "
        "0xf7 = keepalive). 'headers': byte-string header for a payload length. 'frames': encode_frame(payload). "
        "'streams': a body (or a prefix of one) and what a decoder extracts; 'complete' false means the body may not end there. "
        "'invalid': bodies that are a protocol error as soon as the bytes arrive.",
        "keepalive": KEEPALIVE.hex(),
        "max_message_size": CFG.max_message_size,
        "headers": headers,
        "frames": frames,
        "streams": streams,
        "channel_bodies": bodies,
        "invalid": invalid,
    }


def header_vectors() -> dict:
    sid = "k3Jd9vXq2LwP0aZt7bYc1g"
    common = [
        [":method", "POST"],
        [":scheme", "http"],
        [":authority", "127.0.0.1:9323"],
    ]

    def req(path, extra=()):
        return common + [[":path", path], ["content-type", "application/cbor-seq"], ["libchan-session", sid]] + [list(x) for x in extra]

    ok = [[":status", "200"], ["content-type", "application/cbor-seq"]]
    requests = [
        {"name": "control stream (session open)", "headers": req("/libchan/v1/session")},
        {"name": "parked request", "headers": req("/libchan/v1/park")},
        {"name": "top-level channel opened by the client (session.open_sender)", "headers": req("/libchan/v1/stream", [("libchan-ref", "1"), ("libchan-type", "receiver")])},
        {
            "name": "stream for a reference the client put in a message on channel 1",
            "headers": req("/libchan/v1/stream", [("libchan-ref", "3"), ("libchan-type", "sender"), ("libchan-parent-ref", "1")]),
        },
        {
            "name": "anonymous request (curl): no libchan-session, any path",
            "headers": [[":method", "POST"], [":scheme", "http"], [":authority", "127.0.0.1:9323"], [":path", "/anything"], ["content-type", "application/cbor-seq"]],
        },
    ]
    responses = [
        {"name": "answer to the control stream", "headers": ok},
        {"name": "answer to a client-opened stream or an anonymous request", "headers": ok},
        {
            "name": "server opens a top-level channel by answering a parked request",
            "headers": ok + [["libchan-ref", "2"], ["libchan-type", "receiver"]],
        },
        {
            "name": "server opens the stream of a reference it put in a message on channel 2",
            "headers": ok + [["libchan-ref", "4"], ["libchan-type", "read-stream"], ["libchan-parent-ref", "2"]],
        },
        {"name": "bad libchan-type / libchan-ref / libchan-parent-ref", "headers": [[":status", "400"]], "end_stream": True},
        {"name": "method other than POST", "headers": [[":status", "405"], ["allow", "POST"]], "end_stream": True},
        {"name": "unknown :path on a request with libchan-session", "headers": [[":status", "404"]], "end_stream": True},
        {"name": "second control stream for the same session", "headers": [[":status", "409"]], "end_stream": True},
        {"name": "request for a session that has closed", "headers": [[":status", "410"]], "end_stream": True},
        {"name": "single-session server: libchan-session names another session", "headers": [[":status", "421"]], "end_stream": True},
    ]
    stream_headers_valid = [
        {"headers": {"libchan-type": t, "libchan-ref": "7"}, "kind": t, "ref": 7, "parent": None} for t in TAGS
    ] + [
        {"headers": {"libchan-type": "sender", "libchan-ref": "8", "libchan-parent-ref": "2"}, "kind": "sender", "ref": 8, "parent": 2},
        {"headers": {"libchan-type": "stream", "libchan-ref": "18446744073709551615"}, "kind": "stream", "ref": 18446744073709551615, "parent": None},
    ]
    stream_headers_invalid = [
        {"headers": {"libchan-ref": "7"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "channel", "libchan-ref": "7"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "Sender", "libchan-ref": "7"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": "x"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": "-1"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": "3", "libchan-parent-ref": "-1"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": "3", "libchan-parent-ref": ""}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": "1.0"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": "+9"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": " 1"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": "1_0"}, "error": "RemoteProtocolError"},
        {"headers": {"libchan-type": "sender", "libchan-ref": "18446744073709551616"}, "error": "RemoteProtocolError"},
    ]
    preface = []
    for side in ("client", "server"):
        mux = H2Multiplexer(
            client_side=side == "client",
            stream_window=CFG.stream_window,
            connection_window=CFG.connection_window,
            max_frame_size=CFG.max_frame_size,
            max_concurrent_streams=CFG.max_streams,
            max_header_list_size=CFG.max_header_list_size,
        )
        data = mux.data_to_send()
        preface.append(
            {
                "side": side,
                "hex": data.hex(),
                "meaning": ([{"connection_preface": PREFACE.decode()}] if side == "client" else [])
                + [
                    {
                        "frame": "SETTINGS",
                        "settings": {
                            "HEADER_TABLE_SIZE(0x1)": 4096,
                            "ENABLE_PUSH(0x2)": 0,
                            "INITIAL_WINDOW_SIZE(0x4)": CFG.stream_window,
                            "MAX_FRAME_SIZE(0x5)": CFG.max_frame_size,
                            "ENABLE_CONNECT_PROTOCOL(0x8)": 0,
                            "MAX_CONCURRENT_STREAMS(0x3)": CFG.max_streams,
                            "MAX_HEADER_LIST_SIZE(0x6)": CFG.max_header_list_size,
                        },
                    },
                    {"frame": "WINDOW_UPDATE", "stream": 0, "increment": CFG.connection_window - 65535},
                ],
            }
        )
    return {
        "description": "libchan HTTP/2 profile: request and response header lists (in the order the implementation sends them; "
        "HTTP/2 field order is not significant except pseudo-headers first), the parsing of libchan-* stream headers, and the "
        "first bytes each side sends with the default Config.",
        "session_id_example": sid,
        "requests": requests,
        "responses": responses,
        "stream_headers": {"valid": stream_headers_valid, "invalid": stream_headers_invalid},
        "connection_start": preface,
    }


def main() -> None:
    for name, data in (("messages.json", message_vectors()), ("framing.json", framing_vectors()), ("headers.json", header_vectors())):
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(data, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print("wrote", name)


if __name__ == "__main__":
    main()
