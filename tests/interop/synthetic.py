"""A hand-made recording in the format of the Go libchan recordings (README of the set).

:func:`write_value_forms_scenario` writes one scenario directory -- transcript.jsonl,
frames.jsonl, client-events.jsonl and server-events.jsonl -- in which a Go-like client
sends, on one top-level channel, messages whose JSON renderings use every value form
the recordings' README documents, including a nil ``[]byte`` (``{"$bin": null}``); the
server reads them to EOF and closes the session, as in 01-basic. The wire bytes are
made with our own SPDY/3 writer and msgpack-python, with Go's encoding choices.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import msgpack

from libchan.spdy_like.spdy3 import Data, FrameWriter, GoAway, SynReply, SynStream, encode_header_block

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
UNIX, NSEC = 1402412645, 123456000  # 2014-06-10T15:04:05.123456Z (whole microseconds)
BLOB = bytes((7 * i + 3) & 0xFF for i in range(300))


def _time_wire() -> msgpack.ExtType:
    return msgpack.ExtType(6, UNIX.to_bytes(8, "big", signed=True) + NSEC.to_bytes(4, "big"))


def _time_event() -> dict:
    s = "2014-06-10T15:04:05.123456Z"
    return {"$time": s, "formatted": s, "is_zero": False, "nsec": NSEC, "unix": UNIX, "zone": "UTC", "zone_off": 0}


def _time_frames() -> dict:
    w = _time_wire()
    return {"$ext": 6, "name": "time", "data": w.data.hex(), "unix_u64": UNIX, "unix": UNIX, "nsec": NSEC,
            "utc": "2014-06-10T15:04:05.123456000Z"}


SENDER = msgpack.ExtType(4, (3).to_bytes(4, "big"))

#: (wire value, Go's send/recv rendering, go_type of the recv, frames.jsonl rendering, refs)
MESSAGES: list[tuple[Any, Any, str, Any, list]] = [
    (b"\x00\x01\xfe\xff", {"$bin": "0001feff"}, "[]uint8", {"$bin": "0001feff"}, []),
    (b"", {"$bin": ""}, "[]uint8", {"$bin": ""}, []),
    (None, {"$bin": None}, "[]uint8", None, []),  # a nil []byte: c0 on the wire
    (BLOB, {"$bin_len": len(BLOB), "$bin_sha256": hashlib.sha256(BLOB).hexdigest(), "$bin_head": BLOB[:16].hex()},
     "[]uint8", {"$bin_len": len(BLOB), "$bin_sha256": hashlib.sha256(BLOB).hexdigest(), "$bin_head": BLOB[:16].hex()}, []),
    (_time_wire(), _time_event(), "*time.Time", _time_frames(), []),
    ({"Name": "x", "Data": None, "Blob": b"ab", "When": _time_wire(), "Reply": SENDER},
     {"Name": "x", "Data": {"$bin": None}, "Blob": {"$bin": "6162"}, "When": _time_event(),
      "Reply": {"$ref": "libchan.Sender", "go_type": "*spdy.sender"}},
     "map[interface {}]interface {}",
     {"Name": "x", "Data": None, "Blob": {"$bin": "6162"}, "When": _time_frames(),
      "Reply": {"$ext": 4, "name": "inbound-channel(Sender)", "data": "00000003", "ref": 3}},
     [{"code": 4, "ref": 3, "stream_id": 3}]),
    ([1, -2, 1.5, "s", True, None, [1], {"k": "v"}], [1, -2, 1.5, "s", True, None, [1], {"k": "v"}],
     "[]interface {}", [1, -2, 1.5, "s", True, None, [1], {"k": "v"}], []),
]


def _pack(v: Any) -> bytes:
    return msgpack.packb(v, use_bin_type=True)


def write_value_forms_scenario(base: Path, name: str = "90-value-forms") -> Path:
    d = base / name
    d.mkdir(parents=True)
    writers = {"c2s": FrameWriter(), "s2c": FrameWriter()}
    # (dir, frame, messages-or-None)
    plan: list[tuple[str, Any, list | None]] = [
        ("c2s", SynStream(1, [("libchan-ref", "2")]), None),
        ("s2c", SynReply(1, [(":status", "200")]), None),
    ]
    for k, (wire, _, _, fjs, refs) in enumerate(MESSAGES):
        if refs:
            plan.append(("c2s", SynStream(3, [("libchan-ref", "3"), ("libchan-parent-ref", "2")]), None))
            plan.append(("s2c", SynReply(3, [(":status", "200")]), None))
        plan.append(("c2s", Data(1, _pack(wire)), [(fjs, refs)]))
    plan += [("c2s", Data(1, b"", fin=True), None), ("s2c", Data(1, b"", fin=True), None), ("s2c", GoAway(3, 0), None)]

    transcript: list[dict] = []
    frames: list[dict] = []
    off = {"c2s": 0, "s2c": 0}
    t = 0.001
    for n, (direction, frame, msgs) in enumerate(plan):
        raw = writers[direction].serialize(frame)
        t += 0.0001
        transcript.append({"type": "chunk", "i": n, "dir": direction, "t": round(t, 6), "off": off[direction],
                           "len": len(raw), "hex": raw.hex()})
        rec: dict[str, Any] = {"n": n, "dir": direction, "t": round(t, 6), "chunk_i": n, "off": off[direction]}
        length = len(raw) - 8
        if isinstance(frame, Data):
            rec.update(type="DATA", flags=int(frame.fin), length=length, stream_id=frame.stream_id, fin=frame.fin,
                       stream_kind="channel", data_hex=frame.data.hex())
            if msgs:
                rec["messages"] = [{"n": 1, "len": len(frame.data), "hex": frame.data.hex(),
                                    "sha256": hashlib.sha256(frame.data).hexdigest(), "value": fjs,
                                    "annotated": "hand-made", "refs": refs} for fjs, refs in msgs]
        else:
            kind = {SynStream: "SYN_STREAM", SynReply: "SYN_REPLY", GoAway: "GOAWAY"}[type(frame)]
            rec.update(type=kind, flags=0, length=length, version=3)
            if isinstance(frame, GoAway):
                rec.update(last_good_stream_id=frame.last_good_stream_id, status=frame.status, status_name="OK")
            else:
                rec["stream_id"] = frame.stream_id
                fixed = 10 if isinstance(frame, SynStream) else 4
                if isinstance(frame, SynStream):
                    rec.update(assoc_stream_id=0, priority=0, slot=0)
                rec["headers"] = [[h, [v]] for h, v in frame.headers]
                rec["header_block_plain_hex"] = encode_header_block(frame.headers).hex()
                rec["header_block_zlib_hex"] = raw[8 + fixed:].hex()
        frames.append(rec)
        off[direction] += len(raw)
    # Go's client exits when the server's GOAWAY arrives; both directions end.
    transcript += [{"type": "eof", "i": len(plan), "dir": "s2c", "t": round(t + 0.0001, 6), "off": off["s2c"]},
                   {"type": "eof", "i": len(plan) + 1, "dir": "c2s", "t": round(t + 0.0002, 6), "off": off["c2s"]}]
    frames += [{"type": "TCP_EOF", "dir": "s2c", "t": round(t + 0.0001, 6), "off": off["s2c"]},
               {"type": "TCP_EOF", "dir": "c2s", "t": round(t + 0.0002, 6), "off": off["c2s"]}]
    meta = {"format": "go-libchan-wire-transcript/1", "scenario": name, "variant": "hand-made", "type": "meta",
            "exit_codes": {"client": 0, "server": 0, "proxy": 0}, "c2s_bytes": off["c2s"], "s2c_bytes": off["s2c"],
            "records": len(transcript), "proxy_timed_out": False}
    client = [{"event": "channel_created", "chan": "main", "err": None}]
    client += [{"event": "send", "chan": "main", "go_type": "interface {}", "value": ev} for _, ev, _, _, _ in MESSAGES]
    client += [{"event": "chan_close", "chan": "main", "err": None}]
    server = [{"event": "channel_accepted", "chan": "main", "err": None}]
    server += [{"event": "recv", "chan": "main", "go_type": gt, "value": ev} for _, ev, gt, _, _ in MESSAGES]
    server += [{"event": "recv_eof", "chan": "main"}, {"event": "transport_close_begin"}]
    for role, evs in (("client", client), ("server", server)):
        lines = [{"seq": i, "t": 0.001 + i * 0.0001, "role": role, **e} for i, e in enumerate(evs)]
        (d / f"{role}-events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (d / "transcript.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [meta, *transcript]))
    (d / "frames.jsonl").write_text("".join(json.dumps(x) + "\n" for x in frames))
    return d
