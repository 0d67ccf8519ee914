"""Fuzzing every decoder that reads peer bytes (``-k fuzz``); also the engine of ``bench/fuzz_long.py``.

Everything here is synchronous from the outside: :func:`run_session_case` runs one
server :class:`libchan.Session` in a fresh ``trio.run`` (with an autojump clock, so
timers cost no wall time and a hang shows up as ``trio.TooSlowError`` after a
bounded amount of *virtual* time) and feeds it ``data`` as the bytes of its peer.
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path
from typing import Any

import cbor2
import h2.config
import h2.connection
import trio
import trio.testing

import libchan
from libchan.messages.framing import encode_frame
from libchan.spdy_like.spdy3 import Data, FrameWriter, GoAway, Ping, RstStream, SynStream

from interop import recordings as rec  # tests/ is on sys.path (tests/conftest.py; bench/fuzz_long.py)

#: What the application may see from a session fed garbage.
ALLOWED = (
    libchan.ProtocolError,
    trio.BrokenResourceError,  # includes SessionClosedError
    trio.EndOfChannel,
    trio.ClosedResourceError,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Small timers: everything that waits for the peer ends within a few (virtual) seconds.
FUZZ_CONFIG = libchan.Config(
    reference_timeout=2.0,
    open_timeout=2.0,
    close_timeout=1.0,
    peer_timeout=6.0,
    keepalive_interval=3.0,
    max_message_size=64 * 1024,
    max_streams=64,
    max_pending_references=16,
)

#: Virtual seconds a fed session may take, from start to the end of its close.
VIRTUAL_BUDGET = 60.0


class Finding(AssertionError):
    """The session did something other than a clean close / typed errors."""


def count_tasks() -> int:
    """Number of live trio tasks in this run (the root task's whole tree)."""

    def rec(task: trio.lowlevel.Task) -> int:
        return 1 + sum(rec(child) for nursery in task.child_nurseries for child in nursery.child_tasks)

    return rec(trio.lowlevel.current_root_task())


async def _consume(obj: Any, errors: list[BaseException], nursery: trio.Nursery, depth: int, stats: dict) -> None:
    try:
        if isinstance(obj, libchan.Receiver):
            async for msg in obj:
                stats["messages"] += 1
                _spawn_readers(msg, errors, nursery, depth, stats)
        elif isinstance(obj, trio.abc.ReceiveStream):
            while await obj.receive_some():
                stats["chunks"] += 1
        if isinstance(obj, trio.abc.SendChannel):
            await obj.send({"fuzz": "reply"})
            await obj.aclose()
    except ALLOWED as exc:
        stats["typed_errors"] += 1
        stats.setdefault("error_types", set()).add(type(exc).__name__)
    except trio.Cancelled:
        raise
    except BaseException as exc:  # noqa: BLE001 - a finding
        errors.append(exc)


def _spawn_readers(msg: Any, errors: list, nursery: trio.Nursery, depth: int, stats: dict) -> None:
    todo = [msg]
    while todo:
        m = todo.pop()
        if isinstance(m, dict):
            todo.extend(m.keys())
            todo.extend(m.values())
        elif isinstance(m, (list, tuple)):
            todo.extend(m)
        elif depth < 3 and isinstance(m, (libchan.Receiver, libchan.Sender, trio.abc.ReceiveStream)):
            nursery.start_soon(_consume, m, errors, nursery, depth + 1, stats)


async def session_case(data: bytes, profile: str, *, linger: float = 0.0, config: libchan.Config = FUZZ_CONFIG) -> dict:
    """Feed ``data`` to a fresh server Session; return stats; raise :class:`Finding` on misbehaviour."""
    errors: list[BaseException] = []
    stats = {"messages": 0, "chunks": 0, "typed_errors": 0, "accepted": 0}
    ours, peer = libchan.stream_pipe()
    tasks_before = count_tasks()
    start = trio.current_time()

    async def feed() -> None:
        try:
            # in pieces, so that frames are split across reads
            rnd = random.Random(len(data))
            pos = 0
            while pos < len(data):
                n = rnd.choice((1, 7, 64, 1000, 65536))
                await peer.send_all(data[pos : pos + n])
                pos += n
            if linger:
                await trio.sleep(linger)
            await peer.send_eof()
            while await peer.receive_some():
                pass
        except ALLOWED:
            pass

    try:
        with trio.fail_after(VIRTUAL_BUDGET):
            async with trio.open_nursery() as outer:
                outer.start_soon(feed)
                async with libchan.Session(ours, server_side=True, config=config, profile=profile) as srv:
                    async with trio.open_nursery() as nursery:

                        async def accept() -> None:
                            try:
                                async for receiver in srv:
                                    stats["accepted"] += 1
                                    nursery.start_soon(_consume, receiver, errors, nursery, 0, stats)
                            except ALLOWED:
                                pass

                        nursery.start_soon(accept)
                if not srv.closed:
                    raise Finding("the session is not closed after its async with")
                outer.cancel_scope.cancel()
    except trio.TooSlowError:
        raise Finding(f"the session did not finish within {VIRTUAL_BUDGET} virtual seconds (hang)") from None
    except Finding:
        raise
    except BaseException as exc:  # anything escaping the session is a finding
        raise Finding(f"exception escaped the session: {exc!r}") from exc
    if errors:
        raise Finding(f"the application saw an untyped error: {errors[0]!r}") from errors[0]
    await trio.lowlevel.checkpoint()
    if count_tasks() > tasks_before:
        raise Finding(f"tasks left running: {count_tasks()} > {tasks_before}")
    stats["virtual_time"] = trio.current_time() - start
    return stats


def run_session_case(data: bytes, profile: str = "h2", *, linger: float = 0.0) -> dict:
    """Synchronous wrapper: one fresh trio run with an autojump clock."""
    return trio.run(
        lambda: session_case(data, profile, linger=linger), clock=trio.testing.MockClock(autojump_threshold=0)
    )


# -- seeds ------------------------------------------------------------------------------


def _base_headers(path: str, session: str = "fuzz-session") -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "fuzz"),
        (":path", path),
        ("content-type", "application/cbor-seq"),
        ("libchan-session", session),
    ]


def h2_client(*, settings: bool = True) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False)
    )
    conn.initiate_connection()
    return conn


def h2_seed(messages: list[bytes] | None = None) -> bytes:
    """A valid HTTP/2 client conversation of a libchan session (preface included)."""
    c = h2_client()
    c.send_headers(1, _base_headers("/libchan/v1/session"))
    c.send_headers(3, _base_headers("/libchan/v1/park"))
    c.send_headers(5, _base_headers("/libchan/v1/stream") + [("libchan-ref", "1"), ("libchan-type", "receiver")])
    if messages is None:
        messages = [
            cbor2.dumps({"a": [1, 2.5, "x", b"y", None, True], "r": cbor2.CBORTag(41401, 3), "s": cbor2.CBORTag(41402, 7)}),
            cbor2.dumps({"w": cbor2.CBORTag(41400, 9), "ro": cbor2.CBORTag(41403, 11)}),
            cbor2.dumps("hi"),
        ]
    c.send_data(5, b"\xf7" + b"".join(encode_frame(m) for m in messages))
    for sid, ref, kind in ((7, 3, "receiver"), (9, 7, "stream"), (11, 9, "sender"), (13, 11, "read-stream")):
        c.send_headers(
            sid,
            _base_headers("/libchan/v1/stream")
            + [("libchan-ref", str(ref)), ("libchan-type", kind), ("libchan-parent-ref", "1")],
        )
    c.send_data(7, encode_frame(cbor2.dumps(42)), end_stream=True)
    c.send_data(9, encode_frame(b"bytes!") + b"\xf7")
    c.send_data(13, encode_frame(b"read me"), end_stream=True)
    # an anonymous request (curl style) on the same connection
    c.send_headers(15, [(":method", "POST"), (":scheme", "http"), (":authority", "f"), (":path", "/")])
    c.send_data(15, encode_frame(cbor2.dumps({"anon": 1})), end_stream=True)
    c.end_stream(5)
    c.ping(b"12345678")
    return c.data_to_send()


def h2_frames_seed(headers: list[tuple[str, str]], body: bytes, *, end: bool = True) -> bytes:
    """Control stream plus one stream request with arbitrary libchan headers and body."""
    c = h2_client()
    c.send_headers(1, _base_headers("/libchan/v1/session"))
    c.send_headers(3, headers)
    if body:
        c.send_data(3, body, end_stream=end)
    elif end:
        c.end_stream(3)
    return c.data_to_send()


def spdy_frames(frames: list[Any]) -> bytes:
    writer = FrameWriter()
    return b"".join(writer.serialize(f) for f in frames)


def spdy_seed(messages: list[bytes]) -> bytes:
    """A Go-style client: top-level channel 1 carrying ``messages`` and two nested streams."""
    return spdy_frames(
        [
            Ping(1),
            SynStream(1, [("libchan-ref", "2")]),
            Data(1, b"".join(messages)),
            SynStream(3, [("libchan-ref", "3"), ("libchan-parent-ref", "2")]),
            Data(3, b"\x01\x02\x03"),
            SynStream(5, [("libchan-ref", "4"), ("libchan-parent-ref", "2")]),
            Data(5, b"\x93\x01\x02\x03"),
            Data(5, b"", fin=True),
            RstStream(3, 5),
            Data(1, b"", fin=True),
            GoAway(0, 0),
        ]
    )


# -- Go recordings -------------------------------------------------------------------------


def go_recordings_dir() -> Path | None:
    """The Go recordings (tests/interop/recordings.py decides where), or None when there are none."""
    return rec.locate() if rec.recordings_available() else None


def go_transcripts(max_bytes: int = 64 * 1024) -> dict[str, bytes]:
    """c2s bytes (what the Go client sent) of every recorded scenario, cut at ``max_bytes``."""
    if go_recordings_dir() is None:
        return {}
    return {name: rec.transcript_prefix(name, "c2s", max_bytes) for name in rec.scenarios()}


# -- mutation ------------------------------------------------------------------------------


def mutate(data: bytes, ops: list[tuple[int, int, int]], keep: int = 0) -> bytes:
    """Apply ``ops`` (op, position, value) to ``data``; the first ``keep`` bytes stay intact."""
    buf = bytearray(data)
    for op, pos, value in ops:
        span = len(buf) - keep
        if span <= 0:
            buf += bytes((value,))
            continue
        i = keep + pos % span
        op %= 8
        if op == 0:
            buf[i] ^= 1 << (value % 8)
        elif op == 1:
            buf[i] = value
        elif op == 2:
            buf.insert(i, value)
        elif op == 3:
            del buf[i : i + 1 + value % 16]
        elif op == 4:
            del buf[i:]
        elif op == 5:  # duplicate a slice
            buf[i:i] = buf[i : i + 1 + value]
        elif op == 6:  # interesting values
            buf[i] = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xF6, 0xF7, 0x5B)[value % 8]
        else:  # overwrite a 32-bit length-ish field with something extreme
            buf[i : i + 4] = (0xFFFFFFFF, 0x7FFFFFFF, 0, 1 << 24, 0x00FFFFFF)[value % 5].to_bytes(4, "big")
    return bytes(buf)


def random_ops(rnd: random.Random, n: int) -> list[tuple[int, int, int]]:
    return [(rnd.randrange(8), rnd.randrange(1 << 30), rnd.randrange(256)) for _ in range(n)]


# -- known bugs (see the xfail regression tests below) ------------------------------------------


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def known_bug(finding: BaseException) -> str | None:
    """The id of an already reported libchan bug this finding is an instance of, else None.

    The fuzz tests tolerate (and count) these so that they keep hunting for *new*
    problems; each has a deterministic xfail(strict) regression test. Set
    LIBCHAN_FUZZ_STRICT=1 to fail on them too."""
    if os.environ.get("LIBCHAN_FUZZ_STRICT", "1"):  # both bugs below are fixed: strict by default
        return None
    leaf = _leaf(finding.__cause__) if finding.__cause__ is not None else finding
    import traceback

    frames = [f.name for f in traceback.extract_tb(leaf.__traceback__)]
    if isinstance(leaf, UnicodeDecodeError) and "_decode_headers" in frames:
        return "BUG-1 invalid UTF-8 header escapes h2"
    if type(leaf).__name__ in ("StreamClosedError", "KeyError") and "answer_stream" in frames:
        return "BUG-2 refusal answer on a stream the peer already reset"
    return None


def check_session(data: bytes, profile: str, *, linger: float = 0.0) -> dict:
    try:
        return run_session_case(data, profile, linger=linger)
    except Finding as finding:
        bug = known_bug(finding)
        if bug is None:
            raise
        return {"known_bug": bug}


# -- codec-level decoders --------------------------------------------------------------------


def make_on_reference(max_pending: int = 8):
    """An ``on_reference`` backed by a real RefTable (raises RemoteProtocolError like a session)."""
    from libchan.messages.refs import RefTable

    table = RefTable(local_parity=0, timeout=1.0, max_pending=max_pending)

    def on_reference(kind: str, ref: int) -> Any:
        got = table.claim(ref, kind, (kind, ref), 0.0)
        return ("ref", kind, ref) if got is None else got

    return on_reference


def cbor_case(payload: bytes, codec) -> Any:
    """Decode one CBOR message; only a value or a typed error may come out."""
    try:
        return codec.decode(payload, make_on_reference())
    except (libchan.RemoteProtocolError, libchan.MessageTooLargeError) as exc:
        return exc


def msgpack_case(chunks: list[bytes], codec) -> list[Any]:
    """Feed chunks to a msgpack stream decoder; only values, error values or typed errors."""
    from libchan.messages.msgpack_codec import MsgpackStreamDecoder

    dec = MsgpackStreamDecoder(codec, make_on_reference())
    out: list[Any] = []
    for chunk in chunks:
        try:
            items = dec.feed(chunk)
        except (libchan.RemoteProtocolError, libchan.MessageTooLargeError):
            assert dec.error is not None, "feed raised without recording a fatal error"
            break
        for value, size in items:
            assert isinstance(size, int) and size > 0
            out.append(value)
        if dec.error is not None:
            assert isinstance(dec.error, (libchan.RemoteProtocolError, libchan.MessageTooLargeError))
    return out


def spdy_parser_case(data: bytes, cut: int) -> None:
    from libchan.spdy_like.spdy3 import FrameParser, Spdy3ProtocolError

    parser = FrameParser(max_frame_size=1 << 16, max_header_block_size=1 << 16)
    try:
        parser.feed(data[:cut])
        parser.feed(data[cut:])
    except Spdy3ProtocolError:
        pass


def swarm_case(value: Any) -> None:
    from libswarm import Message
    from libswarm._errors import MessageError
    from libswarm._message import reply_sender_of

    try:
        msg = Message.from_wire(value)
    except MessageError:
        reply_sender_of(value)
        return
    assert isinstance(msg, Message)
    msg.to_wire()
    repr(msg)


# =============================================================================================
# The tests. Example counts scale with LIBCHAN_FUZZ_SCALE (default 1: a few thousand per
# decoder, well under a minute in total); derandomized so that CI runs are reproducible.
# =============================================================================================

import msgpack  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from libchan.messages.cbor_codec import CborCodec  # noqa: E402
from libchan.messages.msgpack_codec import MsgpackCodec  # noqa: E402
from libchan.spdy_like.spdy3 import HeadersFrame, Settings, SynReply, UnknownControl, WindowUpdate  # noqa: E402

from ci import skip_or_fail  # noqa: E402

_SCALE = float(os.environ.get("LIBCHAN_FUZZ_SCALE", "1"))


@pytest.fixture(autouse=True)
def _quiet_libchan_log():
    # refused streams are logged as warnings; thousands of them only slow the run down
    import logging

    logger = logging.getLogger("libchan")
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(old)


def _fuzz_settings(n: int):
    return settings(
        max_examples=max(1, int(n * _SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


_ops = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2**30), st.integers(0, 255)), min_size=1, max_size=6)

_REF_TAGS = [41399, 41400, 41401, 41402, 41403, 41404, 41405]
_tag_content = st.one_of(
    st.integers(-3, 40),
    st.integers(2**63 - 2, 2**70),
    st.none(),
    st.text(max_size=3),
    st.floats(allow_nan=True),
    st.lists(st.integers(0, 9), max_size=2),
)
_cbor_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.builds(cbor2.CBORTag, st.sampled_from(_REF_TAGS + [0, 1, 2, 3, 258, 55799, 999, 1 << 40]), _tag_content),
)
cbor_values = st.recursive(
    _cbor_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4) | st.integers(), kids, max_size=4),
    max_leaves=12,
)


def _dumps(value: Any) -> bytes:
    try:
        return cbor2.dumps(value)
    except Exception:  # noqa: BLE001 - a value cbor2 itself cannot write
        return b"\xf6"


_mp_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.just(msgpack.Timestamp(1, 2)),
    st.builds(
        msgpack.ExtType,
        st.integers(0, 8),
        st.one_of(st.binary(min_size=4, max_size=4), st.binary(min_size=8, max_size=8), st.binary(max_size=13)),
    ),
)
mp_values = st.recursive(
    _mp_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), kids, max_size=4),
    max_leaves=12,
)


def _packb(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


# -- HTTP/2 sessions ---------------------------------------------------------------------------


@_fuzz_settings(400)
@given(st.binary(max_size=1500), st.sampled_from([0.0, 1.0]))
def test_fuzz_h2_session_random_bytes_after_preface(data, linger):
    check_session(PREFACE + data, "h2", linger=linger)


_H2_SEED = h2_seed()


@pytest.mark.slow
@_fuzz_settings(700)
@given(_ops, st.sampled_from([0.0, 0.0, 1.0]))
def test_fuzz_h2_session_mutated_conversation(ops, linger):
    check_session(mutate(_H2_SEED, ops, keep=len(PREFACE)), "h2", linger=linger)


_header_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=22)
_h2_stream_headers = st.tuples(
    st.sampled_from(["/libchan/v1/stream", "/libchan/v1/park", "/libchan/v1/session", "/x"]),
    st.one_of(st.sampled_from(["receiver", "sender", "stream", "read-stream", "write-stream"]), _header_text),
    st.one_of(st.integers(0, 2**64 + 5).map(str), _header_text),
    st.one_of(st.none(), st.integers(0, 2**64).map(str), _header_text),
)


@pytest.mark.slow
@_fuzz_settings(400)
@given(_h2_stream_headers, st.lists(cbor_values, max_size=4), st.binary(max_size=12), st.booleans(), _ops | st.just([]))
def test_fuzz_h2_session_structured_requests(hdrs, values, tail, end, ops):
    path, kind, ref, parent = hdrs
    headers = _base_headers(path) + [("libchan-type", kind), ("libchan-ref", ref)]
    if parent is not None:
        headers.append(("libchan-parent-ref", parent))
    body = b"".join(encode_frame(_dumps(v)) for v in values) + tail
    data = h2_frames_seed(headers, body, end=end)
    if ops:
        data = mutate(data, ops, keep=len(data) - len(body) if body else len(PREFACE))
    check_session(data, "h2", linger=0.5)


# -- SPDY/3.1 sessions (Go profile) ----------------------------------------------------------

#: The scenarios found (or one placeholder, None, when there are none): read lazily, so that a
#: recording the harness cannot read fails the test with a RecordingError, not the collection.
_GO_NAMES = sorted((p.values[0] for p in rec.scenario_params()), key=str)


@functools.lru_cache(maxsize=None)
def _go_transcript(name: str) -> bytes:
    return rec.transcript_prefix(name, "c2s", 16 * 1024)


def _go_all() -> dict[str, bytes]:
    """Every scenario's first 16 KiB of c2s ({} without recordings)."""
    return {name: _go_transcript(name) for name in _GO_NAMES if name is not None}


@pytest.mark.slow
@_fuzz_settings(700)
@given(st.sampled_from(_GO_NAMES), _ops, st.sampled_from([0.0, 0.0, 1.0]))
def test_fuzz_spdy_session_mutated_go_transcripts(name, ops, linger):
    if name is None:
        rec.recordings_dir()  # missing or empty: a skip, or a failure under CI; unreadable: RecordingError
        skip_or_fail("Go libchan recordings not usable")
    check_session(mutate(_go_transcript(name), ops), "spdy", linger=linger)


_sid = st.integers(0, 12)
_spdy_header_names = st.sampled_from(["libchan-ref", "libchan-parent-ref", ":status", "x", "libchan-type"])
_spdy_header_values = st.one_of(st.integers(0, 2**64 + 1).map(str), _header_text)
_spdy_frame = st.one_of(
    st.builds(
        SynStream,
        _sid,
        st.lists(st.tuples(_spdy_header_names, _spdy_header_values), max_size=3, unique_by=lambda h: h[0]),
        fin=st.booleans(),
    ),
    st.builds(SynReply, _sid, st.just([(":status", "200")]), fin=st.booleans()),
    st.builds(Data, _sid, st.one_of(mp_values.map(_packb), st.binary(max_size=40)), fin=st.booleans()),
    st.builds(RstStream, _sid, st.integers(0, 12)),
    st.builds(Ping, st.integers(0, 2**32 - 1)),
    st.builds(GoAway, st.integers(0, 12), st.integers(0, 3)),
    st.builds(WindowUpdate, st.integers(0, 12), st.integers(1, 2**31 - 1)),
    st.builds(Settings, st.just(((0, 4, 100),))),
    st.builds(HeadersFrame, _sid, st.just([("x", "y")])),
    st.builds(UnknownControl, st.integers(10, 20), st.integers(0, 255), st.binary(max_size=8)),
)


@pytest.mark.slow
@_fuzz_settings(500)
@given(st.lists(_spdy_frame, max_size=12), st.sampled_from([0.0, 1.0]))
def test_fuzz_spdy_session_random_frames(frames, linger):
    # a valid top-level channel first, so that messages with references get decoded
    prelude = [SynStream(1, [("libchan-ref", "2")]), Data(1, _packb({"r": msgpack.ExtType(5, b"\0\0\0\3")}))]
    check_session(spdy_frames(prelude + frames), "spdy", linger=linger)


@_fuzz_settings(300)
@given(st.binary(max_size=1500))
def test_fuzz_spdy_session_random_bytes(data):
    check_session(b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01" + data, "spdy")


# -- message decoders with references --------------------------------------------------------

_cbor = CborCodec(max_message_size=1 << 16, max_depth=32)


@pytest.mark.slow
@_fuzz_settings(1200)
@given(st.one_of(st.binary(max_size=300), cbor_values.map(_dumps)), _ops | st.just([]))
def test_fuzz_cbor_message_decoding_with_references(payload, ops):
    cbor_case(mutate(payload, ops) if ops else payload, _cbor)


_msgpack = MsgpackCodec(max_message_size=1 << 12, max_depth=32)


@pytest.mark.slow
@_fuzz_settings(1200)
@given(
    st.lists(st.one_of(mp_values.map(_packb), st.binary(max_size=40)), max_size=5),
    _ops | st.just([]),
    st.integers(1, 64),
)
def test_fuzz_msgpack_stream_decoding_with_references(messages, ops, piece):
    data = b"".join(messages)
    if ops:
        data = mutate(data, ops)
    msgpack_case([data[i : i + piece] for i in range(0, len(data), piece)], _msgpack)


@pytest.mark.slow
@_fuzz_settings(1500)
@given(st.one_of(st.binary(max_size=300), st.deferred(lambda: st.sampled_from(sorted(_go_all().values(), key=len)[:8] or [b""]))), st.integers(0, 400), _ops | st.just([]))
def test_fuzz_spdy_frame_parser(data, cut, ops):
    spdy_parser_case(mutate(data, ops) if ops else data, cut)


# -- libswarm message decoding ------------------------------------------------------------------

_verbs = st.one_of(
    st.integers(-3, 15),
    st.sampled_from(["ls", "SPAWN", "Watch", "nope", ""]),
    st.none(),
    st.booleans(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.binary(max_size=4),
)
_swarm_maps = st.fixed_dictionaries(
    {},
    optional={
        "Verb": _verbs,
        "Args": st.one_of(st.none(), st.lists(st.one_of(st.text(max_size=5), st.binary(max_size=5), st.integers(), st.none()), max_size=4), st.text(), st.binary(), st.integers(), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)),
        "Ret": st.one_of(st.none(), st.integers(), st.text(max_size=3), st.builds(lambda: libchan.pipe()[0])),
        "Att": st.one_of(st.none(), st.integers(), st.builds(lambda: libchan.stream_pipe()[0])),
        "Extra": cbor_values,
    },
)


@pytest.mark.slow
@_fuzz_settings(1200)
@given(st.one_of(_swarm_maps, cbor_values, st.binary(max_size=200).map(lambda b: cbor_case(b, _cbor))))
def test_fuzz_libswarm_message_decoding(value):
    swarm_case(value)


@pytest.mark.slow
@_fuzz_settings(500)
@given(_swarm_maps.filter(lambda m: "Ret" not in m and "Att" not in m), _ops | st.just([]))
def test_fuzz_libswarm_message_through_both_codecs(value, ops):
    clean = {k: v for k, v in value.items() if k != "Extra"}
    payload = _dumps(clean)
    decoded = cbor_case(mutate(payload, ops) if ops else payload, _cbor)
    swarm_case(decoded)
    try:
        packed = _packb(clean)
    except Exception:  # noqa: BLE001 - a value msgpack cannot write (e.g. int beyond 64 bits)
        return
    for v in msgpack_case([mutate(packed, ops) if ops else packed], _msgpack):
        swarm_case(v)


# -- deterministic regression tests of the bugs the fuzzers found --------------------------------


def _strict(data: bytes, profile: str) -> None:
    run_session_case(data, profile)


def test_fuzz_regression_invalid_utf8_header_value_is_a_clean_close():
    c = h2_client()
    c.send_headers(1, _base_headers("/libchan/v1/session")[:-1] + [("libchan-session", b"\xff\xfe")])
    _strict(c.data_to_send(), "h2")


@pytest.mark.parametrize("path, extra", [
    ("/nope", []),  # 404
    ("/libchan/v1/stream", [("libchan-ref", "x"), ("libchan-type", "receiver")]),  # 400
])
def test_fuzz_regression_h2_refused_request_reset_in_same_read(path, extra):
    c = h2_client()
    c.send_headers(1, _base_headers("/libchan/v1/session"))
    c.send_headers(3, _base_headers(path) + extra)
    c.reset_stream(3, 8)
    _strict(c.data_to_send(), "h2")


def test_fuzz_regression_spdy_refused_stream_reset_in_same_read():
    _strict(spdy_frames([SynStream(1, []), RstStream(1, 5)]), "spdy")


def test_fuzz_seeds_are_accepted_cleanly():
    """The seeds themselves decode: the fuzzers start from inputs that reach deep."""
    stats = run_session_case(_H2_SEED, "h2")
    assert stats["messages"] >= 4 and stats["chunks"] >= 1, stats
    for name, data in _go_all().items():
        if name.startswith("0") and not name.startswith(("06", "08d")):
            assert run_session_case(data, "spdy")["accepted"] >= 1, name
