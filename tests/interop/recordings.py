"""Loader for the recordings of the real Go libchan (SPDY/3 + msgpack).

The recordings live outside the repository, by default in
``../shared/interop/go-libchan`` relative to the repository root (the
environment variable ``LIBCHAN_GO_RECORDINGS`` overrides it; a relative value
is also taken relative to the repository root, never to the cwd). See the
README.md there for the file formats.

When the directory is missing, every accessor calls ``pytest.skip`` -- or
``pytest.fail`` under CI (tests/ci.py), so that CI cannot silently stop testing interop.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest

from ci import skip_or_fail

__all__ = [
    "REPO_ROOT",
    "recordings_dir",
    "recordings_available",
    "index",
    "scenarios",
    "scenario_params",
    "scenario_info",
    "transcript",
    "frames",
    "events",
    "readme",
    "file_sha256_mismatches",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RELATIVE = Path("..") / "shared" / "interop" / "go-libchan"
ENV_VAR = "LIBCHAN_GO_RECORDINGS"


def _candidate() -> Path:
    raw = os.environ.get(ENV_VAR)
    path = Path(raw).expanduser() if raw else DEFAULT_RELATIVE
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path.resolve()


def recordings_available() -> bool:
    return (_candidate() / "index.json").is_file()


def recordings_dir() -> Path:
    """The recordings directory; skips (or fails under CI) when it is missing."""
    path = _candidate()
    if not (path / "index.json").is_file():
        msg = f"Go libchan recordings not found at {path} (set {ENV_VAR})"
        skip_or_fail(msg)
    return path


@functools.lru_cache(maxsize=None)
def _index(path: Path) -> dict:
    return json.loads((path / "index.json").read_text("utf-8"))


def index() -> dict:
    """The parsed index.json."""
    return _index(recordings_dir())


def scenarios() -> list[str]:
    """Scenario directory names, in index.json order."""
    return [s["dir"] for s in index()["scenarios"]]


def scenario_params() -> list:
    """``pytest.param`` list for parametrizing over the scenarios at collection.

    Collection must not skip the whole module, so when the recordings are
    missing this returns one placeholder; tests receiving it must call
    :func:`recordings_dir` (or any accessor), which then skips or fails.
    """
    if not recordings_available():
        return [pytest.param(None, id="recordings-missing")]
    return [pytest.param(name, id=name) for name in scenarios()]


def scenario_info(scenario: str | None) -> dict:
    for s in index()["scenarios"]:
        if s["dir"] == scenario:
            return s
    raise KeyError(f"no scenario {scenario!r} in index.json")


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _transcript_path(scenario: str) -> Path:
    base = recordings_dir() / scenario
    name = scenario_info(scenario).get("transcript")
    candidates = [name] if name else []
    candidates += ["transcript.jsonl", "transcript.jsonl.gz"]
    for c in candidates:
        if (base / c).is_file():
            return base / c
    raise FileNotFoundError(f"no transcript in {base}")


@functools.lru_cache(maxsize=None)
def _transcript(path: Path) -> tuple[bytes, bytes, tuple[dict, ...]]:
    records = _read_jsonl(path)
    streams = {"c2s": bytearray(), "s2c": bytearray()}
    for rec in records:
        if rec.get("type") != "chunk":
            continue
        buf = streams[rec["dir"]]
        if rec["off"] != len(buf):
            raise AssertionError(
                f"{path}: chunk i={rec['i']} {rec['dir']} at offset {rec['off']}, "
                f"expected {len(buf)}"
            )
        chunk = bytes.fromhex(rec["hex"])
        if len(chunk) != rec["len"]:
            raise AssertionError(f"{path}: chunk i={rec['i']} has {len(chunk)} bytes, says {rec['len']}")
        buf += chunk
    meta = records[0] if records and records[0].get("type") == "meta" else {}
    for d in ("c2s", "s2c"):
        if f"{d}_bytes" in meta and meta[f"{d}_bytes"] != len(streams[d]):
            raise AssertionError(f"{path}: {d} has {len(streams[d])} bytes, meta says {meta[f'{d}_bytes']}")
    return bytes(streams["c2s"]), bytes(streams["s2c"]), tuple(records)


def transcript(scenario: str) -> tuple[bytes, bytes, list[dict]]:
    """``(c2s_bytes, s2c_bytes, records)``; records include the meta line."""
    c2s, s2c, records = _transcript(_transcript_path(scenario))
    return c2s, s2c, list(records)


def frames(scenario: str) -> list[dict]:
    """The reference decode (frames.jsonl), including the TCP_EOF records."""
    return _read_jsonl(recordings_dir() / scenario / "frames.jsonl")


def events(scenario: str, role: str) -> list[dict]:
    """``client-events.jsonl`` or ``server-events.jsonl`` (role: client/server)."""
    if role not in ("client", "server"):
        raise ValueError(f"role must be 'client' or 'server', not {role!r}")
    return _read_jsonl(recordings_dir() / scenario / f"{role}-events.jsonl")


def readme() -> str:
    return (recordings_dir() / "README.md").read_text("utf-8")


def file_sha256_mismatches(scenario: str) -> list[str]:
    """Files whose size or sha256 differ from index.json (empty when intact)."""
    base = recordings_dir() / scenario
    bad = []
    for f in scenario_info(scenario).get("files", []):
        p = base / f["name"]
        if not p.is_file():
            bad.append(f"{f['name']}: missing")
            continue
        data = p.read_bytes()
        if len(data) != f["bytes"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            bad.append(f"{f['name']}: size/sha256 differ from index.json")
    return bad
