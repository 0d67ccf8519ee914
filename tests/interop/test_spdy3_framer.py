"""The sans-IO SPDY/3 framer against recordings of the real Go libchan.

The generic tests are parametrized over every scenario found (index.json's and any
other scenario directory; tests/interop/recordings.py) and take
every expectation from the recordings' own files (frames.jsonl, the
transcripts and the README's frame-byte vectors), never from values written
here.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libchan.errors import LocalProtocolError, RemoteProtocolError
from libchan.spdy_like import spdy3
from libchan.spdy_like.spdy3 import (
    CONTROL_FRAME_NAMES,
    Data,
    FrameParser,
    FrameWriter,
    GoAway,
    HeadersFrame,
    Ping,
    RstStream,
    Settings,
    Spdy3ProtocolError,
    SynReply,
    SynStream,
    UnknownControl,
    WindowUpdate,
    decode_header_block,
    encode_header_block,
    split_header_value,
)
from libchan.spdy_like.spdy3_dictionary import SPDY3_DICTIONARY

from . import recordings as rec

SCENARIOS = rec.scenario_params()
DIRECTIONS = ["c2s", "s2c"]
HEADER_FRAMES = (SynStream, SynReply, HeadersFrame)
ZLIB_DICT_PREFIX = bytes.fromhex("78f9") + zlib.adler32(SPDY3_DICTIONARY).to_bytes(4, "big")  # (Go's)


def starts_dict_stream(z: bytes) -> bool:
    """``z`` begins a zlib stream that names the SPDY/3 dictionary, as any zlib reader
    (Go's too) takes it: deflate, a window of at most 32 KiB, FDICT, a good check."""
    return (len(z) >= 6 and z[0] & 0x0F == 8 and z[0] >> 4 <= 7 and bool(z[1] & 0x20)
            and (z[0] << 8 | z[1]) % 31 == 0 and z[2:6] == ZLIB_DICT_PREFIX[2:])
SYNC_FLUSH_TAIL = bytes.fromhex("0000ffff")

# Keys of frames.jsonl that describe the decoder's view, not frame fields.
INFORMATIONAL_KEYS = {
    "n", "dir", "t", "chunk_i", "off", "type", "status_name", "stream_kind", "messages",
    "msgpack_errors", "stream_id_reused", "header_block_zlib_hex", "data_head_hex",
}


# ---------------------------------------------------------------------------
# helpers


def direction_bytes(scenario: str, direction: str) -> bytes:
    c2s, s2c, _ = rec.transcript(scenario)
    return c2s if direction == "c2s" else s2c


def expected_frames(scenario: str, direction: str) -> list[dict]:
    return [f for f in rec.frames(scenario) if f["type"] != "TCP_EOF" and f["dir"] == direction]


def frame_type_name(frame) -> str:
    if isinstance(frame, Data):
        return "DATA"
    if isinstance(frame, UnknownControl):
        return CONTROL_FRAME_NAMES.get(frame.frame_type, f"UNKNOWN({frame.frame_type})")
    return CONTROL_FRAME_NAMES[frame.TYPE]


def wire_size(frame) -> int:
    return 8 + frame.length


def parse_all(data: bytes, *, chunks=None) -> tuple[list, FrameParser]:
    parser = FrameParser()
    if chunks is None:
        return parser.feed(data), parser
    out = []
    for c in chunks:
        out += parser.feed(c)
    return out, parser


def compare_frame(got, exp: dict) -> None:
    """Assert that our parsed frame equals one frames.jsonl record."""
    where = f"frame n={exp['n']} {exp['dir']} off={exp['off']} {exp['type']}"
    checked = set(INFORMATIONAL_KEYS)
    assert frame_type_name(got) == exp["type"], where
    assert got.raw_flags == exp["flags"], where
    assert got.length == exp["length"], where
    checked |= {"flags", "length"}
    if "version" in exp:
        assert got.version == exp["version"], where
        checked.add("version")
    if "stream_id" in exp:
        assert got.stream_id == exp["stream_id"], where
        checked.add("stream_id")
    if "fin" in exp:
        assert got.fin == exp["fin"], where
        checked.add("fin")
    if "headers" in exp:
        ours = {(name, tuple(split_header_value(value))) for name, value in got.headers}
        theirs = {(name, tuple(values)) for name, values in exp["headers"]}
        assert ours == theirs, where
        assert len(got.headers) == len(exp["headers"]), where
        assert got.header_block.hex() == exp["header_block_plain_hex"], where
        checked |= {"headers", "header_block_plain_hex"}
    for key in ("assoc_stream_id", "priority", "slot", "status", "last_good_stream_id",
                "ping_id", "delta"):
        if key in exp:
            assert getattr(got, key) == exp[key], f"{where}: {key}"
            checked.add(key)
    if "entries" in exp:
        assert got.entries == tuple((e["id"], e["flags"], e["value"]) for e in exp["entries"]), where
        checked.add("entries")
    if "data_hex" in exp:
        assert got.data.hex() == exp["data_hex"], where
        checked.add("data_hex")
    if "data_sha256" in exp:
        assert hashlib.sha256(got.data).hexdigest() == exp["data_sha256"], where
        checked.add("data_sha256")
    if "data_head_hex" in exp:
        assert got.data.hex().startswith(exp["data_head_hex"]), where
    if "payload_hex" in exp:
        assert got.payload.hex() == exp["payload_hex"], where
        checked.add("payload_hex")
    unhandled = set(exp) - checked
    assert not unhandled, f"{where}: frames.jsonl keys the harness does not check: {unhandled}"


# ---------------------------------------------------------------------------
# the recordings themselves


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_recording_files_match_index(scenario):
    rec.recordings_dir()
    assert rec.file_sha256_mismatches(scenario) == []


# ---------------------------------------------------------------------------
# parser vs. the reference decode


def _feeding_modes(data: bytes, records: list[dict], direction: str):
    yield "whole", None
    yield "recorded-chunks", [
        bytes.fromhex(r["hex"]) for r in records if r.get("type") == "chunk" and r["dir"] == direction
    ]
    step = 1 if len(data) <= 64 * 1024 else 65_537
    yield f"every-{step}-bytes", [data[i:i + step] for i in range(0, len(data), step)]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_parser_matches_reference_decode(scenario, direction):
    rec.recordings_dir()
    data = direction_bytes(scenario, direction)
    _, _, records = rec.transcript(scenario)
    expected = expected_frames(scenario, direction)
    for mode, chunks in _feeding_modes(data, records, direction):
        got, parser = parse_all(data, chunks=chunks)
        assert len(got) == len(expected), mode
        offset = 0
        for g, e in zip(got, expected):
            assert e["off"] == offset, f"{mode}: frame n={e['n']}"
            compare_frame(g, e)
            offset += wire_size(g)
        # Whatever the reference decode did not turn into frames must still be
        # buffered (a recording that ends inside a frame), and nothing else.
        assert parser.buffered_bytes == len(data) - offset, mode
        if parser.buffered_bytes == 0:
            parser.feed_eof()


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_recorded_header_blocks_use_one_zlib_context(scenario, direction):
    """Go's compressed blocks: one context per direction, sync-flushed each time."""
    rec.recordings_dir()
    blocks = [f for f in expected_frames(scenario, direction) if "header_block_zlib_hex" in f]
    inflater = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
    for i, f in enumerate(blocks):
        z = bytes.fromhex(f["header_block_zlib_hex"])
        assert starts_dict_stream(z) == (i == 0), f["n"]  # (a hand-made recording: our writer's window)
        assert z.endswith(SYNC_FLUSH_TAIL), f["n"]
        assert inflater.decompress(z).hex() == f["header_block_plain_hex"], f["n"]


# ---------------------------------------------------------------------------
# writer


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_round_trip_through_writer(scenario, direction):
    rec.recordings_dir()
    original, _ = parse_all(direction_bytes(scenario, direction))
    writer = FrameWriter()
    wire = b"".join(writer.serialize(f) for f in original)
    again, parser = parse_all(wire)
    assert again == original
    assert parser.buffered_bytes == 0
    for a, b in zip(again, original):
        assert a.raw_flags == b.raw_flags
        if not isinstance(a, Data):
            assert a.version == 3
        if isinstance(a, HEADER_FRAMES):
            assert a.header_block == b.header_block
            assert a.headers == b.headers  # order preserved too
        else:
            assert a.length == b.length


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_writer_header_blocks_decompress_with_plain_zlib(scenario, direction):
    rec.recordings_dir()
    original, _ = parse_all(direction_bytes(scenario, direction))
    header_frames = [f for f in original if isinstance(f, HEADER_FRAMES)]
    writer = FrameWriter()
    inflater = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
    for i, f in enumerate(header_frames):
        wire = writer.serialize(f)
        word0, word1 = struct.unpack_from(">II", wire)
        assert word0 == 0x80000000 | (3 << 16) | f.TYPE
        assert word1 & 0xFFFFFF == len(wire) - 8
        fixed = 10 if isinstance(f, SynStream) else 4
        block = wire[8 + fixed:]
        assert starts_dict_stream(block) == (i == 0)
        assert block.endswith(SYNC_FLUSH_TAIL)
        assert inflater.decompress(block) == f.header_block == encode_header_block(f.headers)


def _readme_vectors():
    """The "Frame bytes, taken from <scenario>" listing of the README.

    Each vector is ``(label, scenario, prefix, placeholder)``; the scenario is named
    by the README (its scenario table), whether or not it is present here."""
    text = rec.readme()
    m = re.search(r"Frame bytes, taken from ([\w.-]+?):?\s*\n\s*```\n(.*?)```", text, re.S)
    if not m:
        raise rec.RecordingError("README has no 'Frame bytes, taken from ...' listing", rec.locate() / "README.md")
    default_scenario, body = m.group(1), m.group(2)
    # The scenarios the README describes: its table rows "| NN-name | ...", and the present ones.
    names = sorted(set(re.findall(r"^\|\s*(\d\d[a-z]?-[\w-]+)\s*\|", text, re.M)) | set(rec.scenarios()))
    assert default_scenario in names
    vectors = []
    for line in body.splitlines():
        if not line.strip():
            continue
        label, rest = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        note = re.search(r"\(([^)]*)\)\s*$", rest)
        if note:
            rest = rest[: note.start()]
        scenario = default_scenario
        for token in re.findall(r"[\w-]+", note.group(1) if note else ""):
            hits = [n for n in names if n.startswith(token + "-")]
            if len(hits) == 1:
                scenario = hits[0]
        prefix, placeholder = bytearray(), None
        for group in rest.split("|"):
            group = group.strip()
            ph = re.fullmatch(r"<(\d+)-byte zlib header block>", group)
            if ph:
                placeholder = int(ph.group(1))
            else:
                assert placeholder is None, line
                prefix += bytes.fromhex(group)
        vectors.append((label, scenario, bytes(prefix), placeholder))
    assert vectors
    return vectors


def test_readme_frame_vectors():
    """The README's frame listing, for the vectors whose scenario is present here."""
    rec.recordings_dir()
    if not rec.readme_available():
        pytest.skip(f"no README.md in {rec.locate()}: no frame listing to check")
    present = set(rec.scenarios())
    vectors = [v for v in _readme_vectors() if v[1] in present]
    if not vectors:
        pytest.skip("no scenario of the README's frame listing is present here")
    for label, scenario, prefix, placeholder in vectors:
        # Find the vector in the recording, as a frame boundary.
        found = None
        for direction in DIRECTIONS:
            data = direction_bytes(scenario, direction)
            frames, _ = parse_all(data)
            off = 0
            for f in frames:
                if data.startswith(prefix, off) and (
                    placeholder is None or wire_size(f) == len(prefix) + placeholder
                ) and (placeholder is not None or wire_size(f) == len(prefix)):
                    found = f
                    break
                off += wire_size(f)
            if found:
                break
        assert found is not None, f"README vector {label!r} not found in {scenario}"
        ours = FrameWriter().serialize(found)
        if placeholder is None:
            assert ours == prefix, label
            assert FrameParser().feed(prefix) == [found], label
        else:
            # Compressed blocks differ between Go and CPython's zlib: compare
            # the control header without the length, and the fixed fields.
            assert ours[:5] == prefix[:5], label
            assert ours[8:len(prefix)] == prefix[8:], label
            assert int.from_bytes(ours[5:8], "big") == len(ours) - 8, label


def test_readme_frame_vectors_cover_the_shared_set():
    """With the whole shared set, every vector of the README's listing was checked above."""
    if not rec.has(*rec.SHARED_SET) or not rec.readme_available():
        pytest.skip("about the whole shared recording set and its README, not all present here")
    vectors = _readme_vectors()
    assert {v[1] for v in vectors} <= set(rec.SHARED_SET), vectors
    assert len(vectors) >= 7, vectors


# ---------------------------------------------------------------------------
# unit tests of the framer


def _stream(*frames) -> bytes:
    w = FrameWriter()
    return b"".join(w.serialize(f) for f in frames)


def _control(ftype: int, payload: bytes, flags: int = 0, version: int = 3) -> bytes:
    return struct.pack(">II", 0x80000000 | version << 16 | ftype, flags << 24 | len(payload)) + payload


def _zblock(plain: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=SPDY3_DICTIONARY)
    return c.compress(plain) + c.flush(zlib.Z_SYNC_FLUSH)


def _raw_block(pairs) -> bytes:
    out = struct.pack(">I", len(pairs))
    for n, v in pairs:
        out += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
    return out


def test_dictionary():
    assert len(SPDY3_DICTIONARY) == 1423
    assert zlib.adler32(SPDY3_DICTIONARY) == 0xE3C6A7C2


def test_error_class():
    assert issubclass(Spdy3ProtocolError, RemoteProtocolError)


def test_status_constants():
    expected = dict(PROTOCOL_ERROR=1, INVALID_STREAM=2, REFUSED_STREAM=3, UNSUPPORTED_VERSION=4,
                    CANCEL=5, INTERNAL_ERROR=6, FLOW_CONTROL_ERROR=7, STREAM_IN_USE=8,
                    STREAM_ALREADY_CLOSED=9, FRAME_TOO_LARGE=11)
    for name, value in expected.items():
        assert getattr(spdy3, name) == value


def test_all_frame_types_round_trip():
    frames = [
        SynStream(1, {"libchan-ref": "2", "multi": ["a", "b"]}, fin=True, unidirectional=True,
                  assoc_stream_id=7, priority=5, slot=3),
        SynReply(1, [(":status", "200")]),
        HeadersFrame(1, [("x-extra", b"1")], fin=True),
        RstStream(3, spdy3.CANCEL),
        Settings([(4, 1, 100), (7, 0, 65536)], clear=True),
        Ping(0xFFFFFFFF),
        GoAway(5, 2),
        WindowUpdate(0, 0x7FFFFFFF),
        Data(9, b"x" * 70000, fin=True),
        Data(9, b""),
        UnknownControl(10, 0x42, b"\x00\x01"),
    ]
    got = FrameParser().feed(_stream(*frames))
    assert got == frames
    assert got[0].headers_dict() == {"libchan-ref": ["2"], "multi": ["a", "b"]}
    assert got[0].header("multi") == "a\0b"
    assert got[0].raw_flags == 3 and got[4].raw_flags == 1 and got[-1].raw_flags == 0x42


def test_writer_matches_go_layout():
    w = FrameWriter()
    first = w.serialize(SynStream(1, {"libchan-ref": "2"}))
    assert first[:4] == bytes.fromhex("80030001")
    assert first[8:18] == bytes.fromhex("00000001000000000000")
    assert starts_dict_stream(first[18:]) and first.endswith(SYNC_FLUSH_TAIL)
    second = w.serialize(SynReply(2, {":status": "200"}))
    assert not starts_dict_stream(second[12:]) and second.endswith(SYNC_FLUSH_TAIL)
    assert w.serialize(Data(1, b"", fin=True)) == bytes.fromhex("0000000101000000")


def test_unknown_flag_bits_are_kept():
    f = FrameParser().feed(bytes.fromhex("00000001") + bytes([0x81, 0, 0, 1]) + b"*")[0]
    assert f == Data(1, b"*", fin=True) and f.raw_flags == 0x81
    assert FrameWriter().serialize(f) == bytes.fromhex("0000000181000001") + b"*"


def test_partial_frames_are_buffered():
    wire = _stream(SynStream(1, {"libchan-ref": "2"}), Data(1, b"hello"))
    p = FrameParser()
    out = []
    for b in wire:
        out += p.feed(bytes([b]))
    assert [type(f) for f in out] == [SynStream, Data]
    p.feed(wire[-3:][:2])
    with pytest.raises(Spdy3ProtocolError, match="inside a frame"):
        p.feed_eof()


def test_version_is_not_checked():
    f = FrameParser().feed(_control(6, b"\x00\x00\x00\x01", version=2))[0]
    assert f == Ping(1) and f.version == 2


@pytest.mark.parametrize(
    "wire, match",
    [
        (_control(3, b"\x00" * 7), "truncated RST_STREAM"),
        (_control(3, b"\x00" * 9), "bad length for RST_STREAM"),
        (_control(6, b"\x00" * 3), "truncated PING"),
        (_control(7, b"\x00" * 4), "truncated GOAWAY"),
        (_control(9, b"\x00" * 12), "bad length for WINDOW_UPDATE"),
        (_control(4, b"\x00\x00"), "truncated SETTINGS"),
        (_control(4, b"\x00\x00\x00\x02" + b"\x00" * 8), "does not fit 2 entries"),
        (_control(1, b"\x00" * 9), "truncated SYN_STREAM"),
        (_control(2, b"\x00" * 3), "truncated SYN_REPLY"),
        (_control(8, b"\x00\x00\x00\x01"), "too short"),
        (_control(2, b"\x00\x00\x00\x01" + b"garbage!"), "decompression failed"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(_raw_block([(b"Upper", b"1")]))), "not lowercase"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(_raw_block([(b"a", b"1"), (b"a", b"2")]))), "duplicate"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(_raw_block([(b"", b"1")]))), "empty header name"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(_raw_block([(b"\xff", b"1")]))), "UTF-8"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(_raw_block([(b"a", b"1")]) + b"xx")), "trailing"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(_raw_block([(b"a", b"1")])[:-1])), "exceeds"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(b"\x00\x00\x01\x00")), "claims 256"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(b"")), "too short"),
        (_control(2, b"\x00\x00\x00\x01" + _zblock(_raw_block([(b"a", b"x" * 2_000_000)]))),
         "more than"),
    ],
)
def test_protocol_errors(wire, match):
    with pytest.raises(Spdy3ProtocolError, match=match):
        FrameParser().feed(wire)


def test_oversized_frame_fails_on_the_header_alone():
    p = FrameParser(max_frame_size=100)
    with pytest.raises(Spdy3ProtocolError, match="oversized frame: DATA frame of 101 bytes"):
        p.feed(bytes.fromhex("00000001 00000065".replace(" ", "")))
    p = FrameParser(max_frame_size=100)
    assert p.feed(bytes.fromhex("0000000100000064")) == []  # 100 is fine: waits for the payload
    assert p.buffered_bytes == 8


def test_error_keeps_earlier_frames_and_poisons_parser():
    good = _stream(Ping(1), Ping(3))
    p = FrameParser()
    with pytest.raises(Spdy3ProtocolError) as info:
        p.feed(good + _control(6, b""))
    assert info.value.frames == [Ping(1), Ping(3)]
    assert p.failed
    with pytest.raises(Spdy3ProtocolError, match="already failed"):
        p.feed(_stream(Ping(5)))


def test_writer_rejects_bad_frames():
    w = FrameWriter()
    for bad in (
        SynStream(1, {"Upper": "x"}),
        SynStream(1, [("a", "1"), ("a", "2")]),
        SynStream(1, {"": "x"}),
        SynStream(1, {"a": "1"}, priority=8),
        SynStream(2**31, {"a": "1"}),
        Data(1, b"x" * (2**24)),
        WindowUpdate(1, 2**31),
        Ping(-1),
    ):
        with pytest.raises(LocalProtocolError):
            w.serialize(bad)
    # None of those touched the compression context.
    wire = w.serialize(SynReply(1, {":status": "200"}))
    assert FrameParser().feed(wire) == [SynReply(1, {":status": "200"})]


def test_header_value_helpers():
    block = encode_header_block({"a": ["1", "2"], "b": b"\xff"})
    assert decode_header_block(block) == (("a", "1\x002"), ("b", b"\xff".decode("utf-8", "surrogateescape")))
    assert split_header_value("1\x002") == ["1", "2"]
    assert encode_header_block(decode_header_block(block)) == block


# ---------------------------------------------------------------------------
# fuzzing: random input gives frames or Spdy3ProtocolError, never anything else


FRAME_CLASSES = (SynStream, SynReply, RstStream, Settings, Ping, GoAway, HeadersFrame,
                 WindowUpdate, Data, UnknownControl)


def _fuzz_feed(data: bytes, cuts: list[int], max_frame_size: int) -> None:
    p = FrameParser(max_frame_size=max_frame_size, max_header_block_size=4096)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    try:
        for a, b in zip(points, points[1:]):
            for f in p.feed(data[a:b]):
                assert isinstance(f, FRAME_CLASSES)
            assert p.buffered_bytes < 8 + max_frame_size
        p.feed_eof()
    except Spdy3ProtocolError as exc:
        assert all(isinstance(f, FRAME_CLASSES) for f in exc.frames)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8), st.integers(0, 300))
def test_fuzz_random_bytes(data, cuts, max_frame_size):
    _fuzz_feed(data, cuts, max_frame_size)


_frame_header = st.builds(
    lambda control, ftype, version, flags, payload: (
        struct.pack(">II", (0x80000000 | version << 16 | ftype) if control else ftype,
                    flags << 24 | len(payload)) + payload
    ),
    st.booleans(),
    st.integers(0, 12),
    st.sampled_from([3, 3, 3, 2, 0x7FFF]),
    st.integers(0, 255),
    st.one_of(
        st.binary(max_size=40),
        st.builds(lambda sid, z: sid + z, st.binary(min_size=4, max_size=10),
                  st.sampled_from([_zblock(_raw_block([(b"a", b"1")])), ZLIB_DICT_PREFIX, b""])),
    ),
)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(st.lists(_frame_header, max_size=6), st.lists(st.integers(0, 400), max_size=5))
def test_fuzz_structured_frames(frames, cuts):
    _fuzz_feed(b"".join(frames), cuts, 1024)


_VALID = _stream(
    SynStream(1, {"libchan-ref": "2", "libchan-parent-ref": "3"}), SynReply(1, {":status": "200"}),
    Data(1, b"\x2a"), Settings([(4, 0, 100)]), WindowUpdate(0, 5), Ping(1), RstStream(1, 5),
    HeadersFrame(1, {"x": "y"}), SynStream(3, {"libchan-ref": "3"}), GoAway(3),
)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=4),
       st.lists(st.integers(0, len(_VALID)), max_size=5))
def test_fuzz_mutated_valid_stream(mutations, cuts):
    data = bytearray(_VALID)
    for pos, value in mutations:
        data[pos] = value
    _fuzz_feed(bytes(data), cuts, 1 << 16)


_headers = st.lists(
    st.tuples(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(
        lambda c: not c.isupper()), min_size=1, max_size=8),
        st.text(max_size=12)),
    max_size=4, unique_by=lambda p: p[0],
)
_sid = st.integers(0, 2**31 - 1)
_any_frame = st.one_of(
    st.builds(SynStream, _sid, _headers, st.booleans(), st.booleans(), _sid, st.integers(0, 7),
              st.integers(0, 255)),
    st.builds(SynReply, _sid, _headers, st.booleans()),
    st.builds(HeadersFrame, _sid, _headers, st.booleans()),
    st.builds(RstStream, _sid, st.integers(0, 2**32 - 1)),
    st.builds(Settings, st.lists(st.tuples(st.integers(0, 2**24 - 1), st.integers(0, 255),
                                           st.integers(0, 2**32 - 1)), max_size=3), st.booleans()),
    st.builds(Ping, st.integers(0, 2**32 - 1)),
    st.builds(GoAway, _sid, st.integers(0, 2**32 - 1)),
    st.builds(WindowUpdate, _sid, _sid),
    st.builds(Data, _sid, st.binary(max_size=50), st.booleans()),
    st.builds(UnknownControl, st.sampled_from([0, 5, 10, 11, 0xFFFF]), st.integers(0, 255),
              st.binary(max_size=20)),
)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(st.lists(_any_frame, max_size=8))
def test_fuzz_round_trip_generated_frames(frames):
    assert FrameParser().feed(_stream(*frames)) == frames
