"""The recordings harness itself: value forms, recording problems, any recordings directory.

The unit tests need no recordings. The ``slow`` ones run ``python -m pytest tests/interop``
in a subprocess with ``LIBCHAN_GO_RECORDINGS`` pointing at a directory made here: a subset
of the shared set, a hand-made scenario using every documented value form, a broken
recording, an empty directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import msgpack
import pytest

import libchan

from . import recordings as rec
from .synthetic import MESSAGES, write_value_forms_scenario
from .test_msgpack_codec import BinDigest, ExpRef, ExpTime, expect
from .test_replay import Driver, is_zero, match_json

HERE = Path(__file__).resolve()
BARE = Driver.__new__(Driver)  # py_from_json on plain values needs no session
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
TIME = {"$time": "2014-06-10T15:04:05.123456789Z", "unix": 1402412645, "nsec": 123456789, "zone": "UTC",
        "zone_off": 0, "is_zero": False}
TIME_PY = EPOCH + dt.timedelta(seconds=1402412645, microseconds=123456)
BLOB = bytes(range(256)) * 5
LARGE = {"$bin_len": len(BLOB), "$bin_sha256": hashlib.sha256(BLOB).hexdigest(), "$bin_head": BLOB[:16].hex()}


# -- every documented value form (README "JSON value conventions"), one test each --------


def test_form_bin():
    js = {"$bin": "0001feff"}
    assert rec.value_form(js) == "bin" and rec.bin_value(js) == b"\x00\x01\xfe\xff"
    assert match_json(b"\x00\x01\xfe\xff", js, False) is None
    assert match_json(b"\x00\x01", js, False) and match_json(None, js, False) and match_json("0001feff", js, False)
    assert expect(js) == b"\x00\x01\xfe\xff"
    assert BARE.py_from_json(js, None) == b"\x00\x01\xfe\xff"
    assert not is_zero(js) and is_zero({"$bin": ""})


def test_form_bin_nil():
    """A nil Go []byte: ``{"$bin": null}``, msgpack nil (c0) on the wire."""
    js = {"$bin": None}
    assert rec.value_form(js) == "bin-nil" and rec.bin_value(js) is None
    assert match_json(None, js, False) is None
    assert match_json(b"", js, True) is None  # a typed decode shows an empty []byte as nil
    assert match_json(b"", js, False) and match_json(b"x", js, True) and match_json(0, js, False)
    assert match_json({"Data": None}, {"Data": js}, False) is None
    assert match_json({}, {"Data": js}, True) is None  # omitempty dropped the nil slice
    assert is_zero(js)
    assert expect(js) is None
    assert BARE.py_from_json({"Data": js}, None) == {"Data": None}


def test_form_bin_large():
    assert rec.value_form(LARGE) == "bin-large"
    assert match_json(BLOB, LARGE, False) is None
    assert match_json(BLOB[:-1], LARGE, False) and match_json(BLOB[::-1], LARGE, False)
    assert match_json(BLOB, {**LARGE, "$bin_head": "ff"}, False)  # the head is checked too
    no_head = {k: v for k, v in LARGE.items() if k != "$bin_head"}
    assert rec.value_form(no_head) == "bin-large" and match_json(BLOB, no_head, False) is None
    exp = expect(LARGE)
    assert isinstance(exp, BinDigest) and exp.len == len(BLOB)


def test_form_time():
    assert rec.value_form(TIME) == "time"
    assert match_json(TIME_PY, TIME, False) is None
    assert match_json(TIME_PY + dt.timedelta(microseconds=1), TIME, False)
    assert match_json(1402412645, TIME, False)
    wire = msgpack.ExtType(6, (1402412645).to_bytes(8, "big") + (123456789).to_bytes(4, "big"))
    assert match_json(wire, TIME, False) is None
    assert is_zero({**TIME, "is_zero": True}) and not is_zero(TIME)
    exp = expect(TIME)
    assert isinstance(exp, ExpTime) and exp.instant == TIME_PY
    assert BARE.py_from_json(TIME, None) == TIME_PY


@pytest.mark.parametrize("kind", sorted(rec.REF_KINDS))
async def test_form_ref(kind):
    js = {"$ref": kind, "go_type": "*spdy.stream"}
    assert rec.value_form(js) == "ref"
    sender, receiver = libchan.pipe()
    a, _ = libchan.stream_pipe()
    good = {"libchan.Sender": sender, "libchan.Receiver": receiver}.get(kind, a)
    assert match_json(good, js, False) is None
    assert match_json(42, js, False)
    assert match_json(msgpack.ExtType(rec.REF_KINDS[kind], b"\0\0\0\3"), js, False) is None
    assert match_json(msgpack.ExtType(6, b"\0" * 12), js, False)
    assert not is_zero(js)
    exp = expect(js)
    assert isinstance(exp, ExpRef) and exp.ref is None


def test_form_ext():
    """frames.jsonl's rendering of ext values."""
    sender = {"$ext": 4, "name": "inbound-channel(Sender)", "data": "00000003", "ref": 3}
    assert rec.value_form(sender) == "ext"
    assert match_json(msgpack.ExtType(4, b"\0\0\0\3"), sender, False) is None
    assert match_json(libchan.pipe()[0], sender, False) is None
    assert match_json(libchan.pipe()[1], sender, False)
    exp = expect(sender)
    assert isinstance(exp, ExpRef) and exp.ref == 3 and exp.kinds == ("sender",)
    t = {"$ext": 6, "name": "time", "data": "00000000539720e5075bcd15", "unix": 1402412645, "nsec": 123456789,
         "utc": "2014-06-10T15:04:05.123456789Z"}
    assert rec.value_form(t) == "ext" and match_json(TIME_PY, t, False) is None
    assert isinstance(expect(t), ExpTime)
    bad_ref = {"$ext": 1, "name": "duplex-bytestream", "data": "0007", "ref": None}
    unknown = {"$ext": 42, "name": "UNKNOWN", "data": "00"}
    for js in (bad_ref, unknown):  # Go could not decode these: no value matches
        assert rec.value_form(js) == "ext" and match_json(None, js, False)


def test_form_plain_json_and_structs():
    """Plain JSON values, and structs rendered with their wire keys."""
    assert rec.value_form({"Name": "x", "Args": [1]}) is None
    assert match_json({"Name": "x", "Args": [1, 2.5, None, True]}, {"Name": "x", "Args": [1, 2.5, None, True]}, False) is None
    assert match_json({"Name": "y"}, {"Name": "x"}, False)
    assert match_json(-1.0, -1, False) is None  # Go's JSON loses float32(-1)'s type
    assert match_json(True, 1, False) and match_json(1, True, False)


@pytest.mark.parametrize("js", [
    {"$bytes": "00"},                       # unknown form
    {"$bin": "zz"},                         # not hex
    {"$bin": 7},
    {"$bin_len": 3},                        # incomplete large binary
    {"$time": "2014-06-10T15:04:05Z"},      # no unix / nsec
    {"$ref": "libchan.Pipe"},               # unknown kind
    {"$ext": "4", "data": "00000003"},
    {"$bin": "00", "$time": "x", "unix": 0, "nsec": 0},  # two forms at once
])
def test_unknown_or_malformed_form_is_a_recording_problem(js):
    with pytest.raises(rec.RecordingError) as info:
        rec.value_form(js)
    with pytest.raises(rec.RecordingError):
        match_json({"Field": [None]}, {"Field": [js]}, False)
    with pytest.raises(rec.RecordingError):
        expect([js])
    with pytest.raises(rec.RecordingError):
        is_zero(js)
    assert str(info.value).startswith("harness/recording problem (not a libchan failure)")


# -- recording problems name the file and line ---------------------------------------------


@pytest.fixture
def recordings_at(tmp_path, monkeypatch):
    monkeypatch.setenv(rec.ENV_VAR, str(tmp_path))
    rec._scan.cache_clear()
    yield tmp_path
    rec._scan.cache_clear()


def test_malformed_json_line(recordings_at):
    d = recordings_at / "01-x"
    d.mkdir()
    (d / "client-events.jsonl").write_text('{"seq": 0, "event": "start"}\n{"seq": 1, "event": \n')
    with pytest.raises(rec.RecordingError) as info:
        rec.events("01-x", "client")
    assert info.value.where == f"{d / 'client-events.jsonl'}:2"
    assert "malformed JSON line" in str(info.value)


def test_missing_file(recordings_at):
    (recordings_at / "01-x").mkdir()
    (recordings_at / "01-x" / "frames.jsonl").write_text("")
    assert rec.scenarios() == ["01-x"]
    for call in (lambda: rec.events("01-x", "server"), lambda: rec.transcript("01-x")):
        with pytest.raises(rec.RecordingError) as info:
            call()
        assert str(recordings_at / "01-x") in str(info.value)


def test_records_know_their_line_and_locating_adds_it(recordings_at):
    d = recordings_at / "01-x"
    d.mkdir()
    (d / "server-events.jsonl").write_text('\n{"seq": 0, "event": "recv", "value": {"$nope": 1}}\n')
    [ev] = rec.events("01-x", "server")
    assert ev.where == f"{d / 'server-events.jsonl'}:2"
    with pytest.raises(rec.RecordingError) as info:
        with rec.locating(ev):
            match_json(1, ev["value"], False)
    assert info.value.where == ev.where and ev.where in str(info.value)


def test_index_lists_a_missing_scenario(recordings_at):
    (recordings_at / "index.json").write_text(json.dumps({"scenarios": [{"dir": "01-gone"}]}))
    assert rec.scenarios() == ["01-gone"]
    assert rec.file_sha256_mismatches("01-gone")
    with pytest.raises(rec.RecordingError):
        rec.frames("01-gone")


def test_locate_is_relative_to_the_repository(monkeypatch):
    monkeypatch.setenv(rec.ENV_VAR, "some/dir")
    assert rec.locate() == (rec.REPO_ROOT / "some" / "dir").resolve()
    monkeypatch.delenv(rec.ENV_VAR)
    assert rec.locate() == (rec.REPO_ROOT / ".." / "shared" / "interop" / "go-libchan").resolve()


# -- whole runs over a directory made here (subprocess) ------------------------------------


def run_pytest(recordings: Path, tmp_path: Path, *args: str, ci: bool = True) -> tuple[int, str, list]:
    """``python -m pytest`` (default: tests/interop) over ``recordings``; (status, output, testcases)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env[rec.ENV_VAR] = str(recordings)
    env["CI"] = "1" if ci else "0"
    xml = tmp_path / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
           "-o", "junit_family=xunit1", *(args or ("tests/interop", f"--ignore={HERE}"))]
    proc = subprocess.run(cmd, cwd=rec.REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    cases = []
    if xml.exists():
        for tc in ET.parse(xml).getroot().iter("testcase"):
            outcome = "passed"
            for child in tc:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = child.tag
                    message = child.get("message", "") + (child.text or "")
                    break
            else:
                message = ""
            cases.append((tc.get("name"), outcome, message))
    return proc.returncode, proc.stdout + proc.stderr, cases


def scenarios_run(cases: list, candidates) -> set[str]:
    return {s for name, outcome, _ in cases if outcome == "passed" for s in candidates if f"[{s}" in name or f"-{s}" in name}


@pytest.mark.slow
def test_subset_of_the_shared_set(tmp_path):
    """A copy of three scenarios (one with a hand-made client) with a matching index.json: exactly those run."""
    rec.recordings_dir()
    src = rec.recordings_dir()
    subset = [s for s in ("01-basic", "04-rexec", "08d-data-before-syn-reply") if rec.has(s)]
    if len(subset) < 2:
        pytest.skip("needs 01-basic, 04-rexec or 08d-data-before-syn-reply in the recordings")
    dst = tmp_path / "recordings"
    dst.mkdir()
    for s in subset:
        shutil.copytree(src / s, dst / s)
    index = dict(rec.index())
    index["scenarios"] = [e for e in index.get("scenarios", []) if e["dir"] in subset]
    (dst / "index.json").write_text(json.dumps(index, indent=1))
    status, out, cases = run_pytest(dst, tmp_path)
    assert status == 0, out[-4000:]
    assert scenarios_run(cases, rec.scenarios()) == set(subset), out[-2000:]
    for test in ("test_server_replay", "test_recording_files_match_index", "test_decode_recorded_messages"):
        assert {s for name, outcome, _ in cases if name.startswith(test + "[") and outcome == "passed"
                for s in subset if name == f"{test}[{s}]"} == set(subset), test


@pytest.mark.slow
def test_hand_made_recording_with_every_value_form(tmp_path):
    """A hand-made scenario (no index.json, no README) whose events use every form, {"$bin": null} too."""
    dst = tmp_path / "recordings"
    write_value_forms_scenario(dst, "90-value-forms")
    forms = set()
    for line in (dst / "90-value-forms" / "server-events.jsonl").read_text().splitlines():
        def walk(v):
            if isinstance(v, dict):
                forms.add(rec.value_form(v))
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        walk(json.loads(line).get("value"))
    assert forms >= {"bin", "bin-nil", "bin-large", "time", "ref", None}
    assert any(fr.get("value") is not None and "$ext" in json.dumps(fr) for fr in [
        m for line in (dst / "90-value-forms" / "frames.jsonl").read_text().splitlines()
        for m in json.loads(line).get("messages") or []])
    status, out, cases = run_pytest(dst, tmp_path)
    assert status == 0, out[-4000:]
    assert scenarios_run(cases, ["90-value-forms"]) == {"90-value-forms"}
    for test in ("test_server_replay", "test_client_replay", "test_decode_recorded_messages",
                 "test_parser_matches_reference_decode"):
        assert any(name.startswith(test + "[") and "90-value-forms" in name and outcome == "passed"
                   for name, outcome, _ in cases), test
    assert len(MESSAGES) >= 7


@pytest.mark.slow
def test_a_broken_recording_is_reported_as_a_harness_problem(tmp_path):
    dst = tmp_path / "recordings"
    d = write_value_forms_scenario(dst, "91-unknown-form")
    path = d / "server-events.jsonl"
    lines = path.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if '"$bin": null' in line)
    lines[k] = lines[k].replace('{"$bin": null}', '{"$bytes": null}')
    path.write_text("\n".join(lines) + "\n")
    d2 = write_value_forms_scenario(dst, "92-malformed-line")
    ev = d2 / "client-events.jsonl"
    ev.write_text(ev.read_text() + '{"seq": 99, "event": \n')
    status, out, cases = run_pytest(dst, tmp_path, "tests/interop/test_replay.py")
    assert status == 1, out[-3000:]
    failed = {name: msg for name, outcome, msg in cases if outcome in ("failure", "error")}
    assert set(failed) == {"test_server_replay[91-unknown-form]", "test_client_replay[92-malformed-line]",
                           "test_server_replay[92-malformed-line]", "test_goaway_not_lost"}, out[-3000:]
    for name, msg in failed.items():
        assert "harness/recording problem (not a libchan failure)" in msg, msg
        assert "untyped exception" not in msg and "TypeError" not in msg, msg
    assert f"{path}:{k + 1}" in failed["test_server_replay[91-unknown-form]"]
    assert "$bytes" in failed["test_server_replay[91-unknown-form]"]
    assert f"{ev}:{len(ev.read_text().splitlines())}" in failed["test_server_replay[92-malformed-line]"]


@pytest.mark.slow
@pytest.mark.parametrize("state", ["missing", "empty"])
def test_no_recordings_fails_under_ci(tmp_path, state):
    dst = tmp_path / "recordings"
    if state == "empty":
        dst.mkdir()
    targets = ("tests/interop/test_replay.py", "tests/interop/test_spdy3_framer.py::test_recording_files_match_index",
               "tests/interop/test_msgpack_codec.py::test_decode_recorded_messages",
               "tests/engine/test_fuzz_sessions.py::test_fuzz_spdy_session_mutated_go_transcripts")
    status, out, cases = run_pytest(dst, tmp_path, *targets, ci=True)
    assert status == 1, out[-3000:]
    assert cases and all(outcome in ("failure", "error") for _, outcome, _ in cases), cases  # never a skip
    status, out, cases = run_pytest(dst, tmp_path, *targets, ci=False)
    assert status == 0 and cases and all(outcome == "skipped" for _, outcome, _ in cases), cases
