"""Generate spec/vectors/go-profile.json from the recordings of the real Go libchan.

Run from the repository root: ``.venv/bin/python spec/vectors/make_go_vectors.py``
(recordings found by ``tests/interop/recordings.py``'s ``locate()``: ``../shared/interop/go-libchan``
or ``$LIBCHAN_GO_RECORDINGS``; the scenarios it takes vectors from must all be there).
The checked-in JSON is the reference; tests/wire/test_vectors.py checks it both ways.

Frame vectors are whole recorded frames (bytes as Go wrote them) with their
decoded meaning. Header blocks use one zlib context per direction, so only the
first header frame of each direction of a scenario can be decoded on its own:
those are the header-frame vectors. Message vectors are recorded msgpack
messages with their decoded values; value vectors are Python values with the
bytes this implementation sends (byte-identical to Go's where ``go`` is true).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # interop.recordings (and the ci module it imports)

from libchan.spdy_like import spdy3  # noqa: E402
from libchan.engine.kinds import kind_of  # noqa: E402
from libchan.messages.msgpack_codec import MsgpackCodec, MsgpackStreamDecoder  # noqa: E402

CODEC = MsgpackCodec(max_message_size=16 * 1024 * 1024, max_depth=256, kind_of=kind_of)


def recordings() -> Path:
    from interop.recordings import locate  # the one place that decides where the recordings are

    return locate()


def to_json(value):
    """Python value -> JSON with the conventions $bin, $time, $ref."""
    if isinstance(value, Ref):
        return {"$ref": {"kind": value.kind, "ref": value.ref}}
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, dt.datetime):
        return {"$time": value.isoformat()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {"$map": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [to_json(v) for v in value]}
    return value


class Ref:
    def __init__(self, kind: str, ref: int) -> None:
        self.kind, self.ref = kind, ref


def frame_meaning(f) -> dict:
    out = {"type": type(f).__name__}
    for name in ("stream_id", "fin", "assoc_stream_id", "priority", "slot", "status", "ping_id",
                 "last_good_stream_id", "delta"):
        if hasattr(f, name):
            out[name] = getattr(f, name)
    if hasattr(f, "headers"):
        out["headers"] = [list(h) for h in f.headers]
        out["header_block_plain_hex"] = f.header_block.hex()
    if isinstance(f, spdy3.Data):
        out["data_hex"] = f.data.hex()
    if isinstance(f, spdy3.Settings):
        out["entries"] = [list(e) for e in f.entries]
    return out


def split_frames(data: bytes) -> list[tuple[bytes, object]]:
    parser = spdy3.FrameParser()
    out, pos = [], 0
    for f in parser.feed(data):
        n = 8 + f.length
        out.append((data[pos:pos + n], f))
        pos += n
    return out


def main() -> None:
    rec = recordings()
    index = json.loads((rec / "index.json").read_text())
    frames_out, messages_out = [], []
    wanted_scenarios = {"01-basic", "02-reqresp", "03-bytestream", "07-time", "08a-malformed-messages",
                        "09a-ping-settings-windowupdate", "09c-goaway-from-server"}
    missing = sorted(wanted_scenarios - {sc["dir"] for sc in index["scenarios"]})
    if missing:
        sys.exit(f"make_go_vectors.py: {rec} lacks {', '.join(missing)}; the checked-in vectors are built from them")
    for sc in index["scenarios"]:
        name = sc["dir"]
        if name not in wanted_scenarios:
            continue
        lines = [json.loads(line) for line in (rec / name / sc["transcript"]).read_text().splitlines()]
        for direction in ("c2s", "s2c"):
            data = b"".join(bytes.fromhex(r["hex"]) for r in lines if r.get("type") == "chunk" and r["dir"] == direction)
            seen_header_frame = False
            kinds_seen: set[str] = set()
            for raw, f in split_frames(data):
                kind = type(f).__name__
                if hasattr(f, "headers"):
                    if seen_header_frame:
                        continue  # needs the compression context of earlier blocks
                    seen_header_frame = True
                elif kind in kinds_seen and kind != "Data":
                    continue
                if kind == "Data" and len(f.data) > 64:
                    continue
                kinds_seen.add(kind)
                frames_out.append({"scenario": name, "dir": direction, "hex": raw.hex(), "frame": frame_meaning(f)})
        # messages from frames.jsonl (Go's own bytes)
        for fr in (json.loads(line) for line in (rec / name / "frames.jsonl").read_text().splitlines()):
            for m in fr.get("messages") or []:
                if not m.get("hex") or len(m["hex"]) > 400:
                    continue
                refs = []
                dec = MsgpackStreamDecoder(CODEC, lambda kind, ref: Ref(kind, ref))
                items = dec.feed(bytes.fromhex(m["hex"]))
                if dec.error is not None or len(items) != 1:
                    continue
                value = items[0][0]
                entry = {"scenario": name, "hex": m["hex"], "go": m.get("annotated")}
                if isinstance(value, Exception):
                    entry["error"] = type(value).__name__
                else:
                    entry["value"] = to_json(value)
                messages_out.append(entry)
    values = [
        ("int 42", 42), ("int -129 (int16, as Go's int)", -129), ("int 200 (int16, not uint8)", 200),
        ("int 2**63 (uint64)", 2**63), ("int -2**63", -(2**63)), ("float", 3.14159), ("str", "hello, libchan ☃"),
        ("str8", "x" * 40), ("bytes", b"\x00\x01\xfe\xff"), ("nil", None), ("bools", [True, False]),
        ("nested", [1, [2, [3]]]), ("map", {"alpha": 1}),
        ("time 1969-07-20T20:17:40Z", dt.datetime(1969, 7, 20, 20, 17, 40, tzinfo=dt.timezone.utc)),
        ("Go zero time", dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)),
    ]
    value_vectors = [{"name": n, "value": to_json(v), "hex": CODEC.encode(v, lambda k, o: 0).hex()} for n, v in values]
    for kind, ref in (("sender", 3), ("receiver", 2), ("stream", 4), ("read-stream", 5), ("write-stream", 6), ("sender", 2**33)):
        value_vectors.append({
            "name": f"reference {kind} {ref}",
            "value": to_json(Ref(kind, ref)),
            "hex": CODEC.encode(_obj(kind), lambda k, o, r=ref: r).hex(),
        })
    out = {
        "description": "Go-compatible profile vectors (SPDY/3 frames and msgpack messages) taken from "
        "recordings of the real Go libchan; values use $bin (hex bytes), $time (ISO 8601), "
        "$ref ({kind, ref}), $map ([[key, value], ...]) and $tuple.",
        "frames": frames_out,
        "messages": messages_out,
        "values": value_vectors,
    }
    (ROOT / "spec" / "vectors" / "go-profile.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote go-profile.json: {len(frames_out)} frames, {len(messages_out)} messages, {len(value_vectors)} values")


def _obj(kind: str):
    import libchan

    s, r = libchan.pipe()
    a, b = libchan.stream_pipe()
    return {"sender": s, "receiver": r, "stream": a, "read-stream": libchan.ReadOnly(a), "write-stream": libchan.WriteOnly(a)}[kind]


if __name__ == "__main__":
    main()
