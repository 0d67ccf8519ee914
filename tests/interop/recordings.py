"""Loader for the recordings of the real Go libchan (SPDY/3 + msgpack).

Every consumer of the recordings -- tests/interop/*, tests/engine/test_fuzz_sessions.py
and spec/vectors/make_go_vectors.py -- finds them through :func:`locate`: by default
``../shared/interop/go-libchan`` relative to the repository root; the environment
variable ``LIBCHAN_GO_RECORDINGS`` overrides it (``~`` is expanded and a relative value
is taken relative to the repository root, never to the cwd). See the README.md there
for the file formats.

Any directory in that format works, whatever scenarios it holds: the scenarios are
those of its ``index.json`` (when it has one) followed by every other subdirectory that
holds recording files. Tests are parametrized over the scenarios actually found; a
check of one named scenario runs only when that scenario is present (:func:`has`).

When the directory is missing or holds no scenario, :func:`recordings_dir` calls
``pytest.skip`` -- or ``pytest.fail`` under CI (tests/ci.py), so that CI cannot
silently stop testing interop.

When the harness cannot interpret a recording (a missing or unreadable file, a
malformed JSON line, an unknown value form), it raises :class:`RecordingError`, whose
message says so and names the file and line; tests/conftest.py turns it into a plain
test failure with that message, so that it never reads as a libchan failure.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any, Iterator

import pytest

from ci import skip_or_fail

__all__ = [
    "REPO_ROOT",
    "ENV_VAR",
    "SHARED_SET",
    "RecordingError",
    "Record",
    "locating",
    "locate",
    "recordings_dir",
    "recordings_available",
    "index",
    "scenarios",
    "has",
    "scenario_params",
    "scenario_info",
    "transcript",
    "transcript_prefix",
    "frames",
    "events",
    "readme",
    "readme_available",
    "file_sha256_mismatches",
    "REF_KINDS",
    "value_form",
    "bin_value",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RELATIVE = Path("..") / "shared" / "interop" / "go-libchan"
ENV_VAR = "LIBCHAN_GO_RECORDINGS"

#: The scenarios of the shared recording set. Assertions about the whole shared set
#: (message totals, proportions) run when all of these are present, and count only these.
SHARED_SET = (
    "01-basic", "02-reqresp", "03-bytestream", "04-rexec", "05-concurrency", "06-large", "07-time",
    "08a-malformed-messages", "08b-unknown-control-frame", "08c-headers-frame",
    "08d-data-before-syn-reply", "09a-ping-settings-windowupdate", "09b-goaway-from-client",
    "09c-goaway-from-server", "09d-tcp-close-without-goaway",
)
#: Files a scenario directory holds (README "Layout"); a subdirectory with any of them is a scenario.
SCENARIO_FILES = ("transcript.jsonl", "transcript.jsonl.gz", "frames.jsonl", "client-events.jsonl",
                  "server-events.jsonl", "frames.txt")


# ---------------------------------------------------------------------------
# errors of the harness or of the recording, never of libchan


class RecordingError(Exception):
    """The harness cannot interpret a recording: a problem of the recording set or of the harness."""

    PREFIX = "harness/recording problem (not a libchan failure)"

    def __init__(self, what: str, where: str | os.PathLike[str] | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = None if where is None else str(where)

    def __str__(self) -> str:
        return f"{self.PREFIX}: {self.where or 'recording'}: {self.what}"


class Record(dict):  # type: ignore[type-arg]
    """One JSON line of a recording file; ``where`` is ``"PATH:LINE"``."""

    where: str = "?"


@contextlib.contextmanager
def locating(where: Any) -> Iterator[None]:
    """Give a :class:`RecordingError` raised inside without a location this one.

    ``where`` is a :class:`Record` (its file and line) or a string."""
    try:
        yield
    except RecordingError as exc:
        if exc.where is None:
            exc.where = getattr(where, "where", None) or str(where)
        raise


# ---------------------------------------------------------------------------
# where the recordings are, and which scenarios they hold


def locate() -> Path:
    """The recordings directory (whether or not it exists): the one place that decides."""
    raw = os.environ.get(ENV_VAR)
    path = Path(raw).expanduser() if raw else DEFAULT_RELATIVE
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path.resolve()


@functools.lru_cache(maxsize=None)
def _scan(path: Path) -> tuple[tuple[str, ...], dict, dict]:
    """(scenario names, index.json entries by name, parsed index.json)."""
    info: dict[str, dict] = {}
    idx: dict = {"scenarios": []}
    names: list[str] = []
    idx_path = path / "index.json"
    if idx_path.is_file():
        try:
            idx = json.loads(idx_path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordingError(f"cannot read: {exc}", idx_path) from None
        except ValueError as exc:
            raise RecordingError(f"malformed JSON: {exc}", f"{idx_path}:{getattr(exc, 'lineno', '?')}") from None
        entries = idx.get("scenarios") if isinstance(idx, dict) else None
        if not isinstance(entries, list) or not all(
                isinstance(s, dict) and isinstance(s.get("dir"), str) and s["dir"] for s in entries):
            raise RecordingError('"scenarios" must be a list of objects with a "dir"', idx_path)
        for s in entries:
            names.append(s["dir"])
            info[s["dir"]] = s
    if path.is_dir():
        for p in sorted(path.iterdir()):
            if p.is_dir() and p.name not in info and any((p / f).is_file() for f in SCENARIO_FILES):
                names.append(p.name)
    return tuple(names), info, idx


def recordings_available() -> bool:
    """The directory exists and holds at least one scenario (and can be read)."""
    path = locate()
    try:
        return path.is_dir() and bool(_scan(path)[0])
    except RecordingError:
        return True  # there is something: let the tests report what is wrong with it


def recordings_dir() -> Path:
    """The recordings directory; skips (or fails under CI) when it is missing or empty."""
    path = locate()
    if not path.is_dir():
        skip_or_fail(f"Go libchan recordings not found at {path} (set {ENV_VAR})")
    if not _scan(path)[0]:  # may raise RecordingError: index.json unreadable
        skip_or_fail(f"Go libchan recordings at {path} hold no scenario (set {ENV_VAR})")
    return path


def index() -> dict:
    """The parsed index.json (``{"scenarios": []}`` when the directory has none)."""
    return _scan(recordings_dir())[2]


def scenarios() -> list[str]:
    """Scenario directory names: index.json's order, then the unlisted ones by name."""
    return list(_scan(recordings_dir())[0])


def has(*names: str) -> bool:
    """All of these scenarios are present (for checks that are about named scenarios)."""
    path = locate()
    try:
        found = set(_scan(path)[0]) if path.is_dir() else set()
    except RecordingError:
        return False
    return all(n in found for n in names)


def scenario_params() -> list:
    """``pytest.param`` list for parametrizing over the scenarios at collection.

    Collection must not skip or error the whole module, so when the recordings are
    missing, empty or unreadable this returns one placeholder; tests receiving it
    call :func:`recordings_dir` (or any accessor), which then skips, fails or
    raises :class:`RecordingError`.
    """
    path = locate()
    try:
        names = _scan(path)[0] if path.is_dir() else ()
    except RecordingError:
        return [pytest.param(None, id="recordings-unreadable")]
    if not names:
        return [pytest.param(None, id="recordings-missing")]
    return [pytest.param(name, id=name) for name in names]


def scenario_info(scenario: str | None) -> dict:
    """The index.json entry of a scenario (``{"dir": name}`` for an unlisted one)."""
    names, info, _ = _scan(recordings_dir())
    if scenario not in names:
        raise RecordingError(f"no scenario {scenario!r} here", recordings_dir())
    return info.get(scenario) or {"dir": scenario}


# ---------------------------------------------------------------------------
# files


def _read_jsonl(path: Path) -> list[Record]:
    if not path.is_file():
        raise RecordingError("file missing", path)
    out = []
    try:
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise RecordingError(f"malformed JSON line: {exc}", f"{path}:{lineno}") from None
                if not isinstance(value, dict):
                    raise RecordingError(f"a line must be a JSON object, not {type(value).__name__}",
                                         f"{path}:{lineno}")
                record = Record(value)
                record.where = f"{path}:{lineno}"
                out.append(record)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise RecordingError(f"cannot read: {exc}", path) from None
    return out


def _transcript_path(scenario: str) -> Path:
    base = recordings_dir() / scenario
    name = scenario_info(scenario).get("transcript")
    candidates = [name] if name else []
    candidates += ["transcript.jsonl", "transcript.jsonl.gz"]
    for c in candidates:
        if (base / c).is_file():
            return base / c
    raise RecordingError("no transcript.jsonl or transcript.jsonl.gz", base)


@functools.lru_cache(maxsize=None)
def _transcript(path: Path) -> tuple[bytes, bytes, tuple[Record, ...]]:
    records = _read_jsonl(path)
    streams = {"c2s": bytearray(), "s2c": bytearray()}
    for rec in records:
        if rec.get("type") != "chunk":
            continue
        try:
            buf = streams[rec["dir"]]
            if rec["off"] != len(buf):
                raise RecordingError(f"chunk i={rec.get('i')} {rec['dir']} at offset {rec['off']}, expected {len(buf)}",
                                     rec.where)
            chunk = bytes.fromhex(rec["hex"])
            if len(chunk) != rec["len"]:
                raise RecordingError(f"chunk i={rec.get('i')} has {len(chunk)} bytes, says {rec['len']}", rec.where)
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordingError(f"bad chunk record ({type(exc).__name__}: {exc})", rec.where) from None
        buf += chunk
    meta = records[0] if records and records[0].get("type") == "meta" else {}
    for d in ("c2s", "s2c"):
        if f"{d}_bytes" in meta and meta[f"{d}_bytes"] != len(streams[d]):
            raise RecordingError(f"{d} has {len(streams[d])} bytes, meta says {meta[f'{d}_bytes']}",
                                 getattr(meta, "where", path))
    return bytes(streams["c2s"]), bytes(streams["s2c"]), tuple(records)


def transcript(scenario: str) -> tuple[bytes, bytes, list[Record]]:
    """``(c2s_bytes, s2c_bytes, records)``; records include the meta line."""
    c2s, s2c, records = _transcript(_transcript_path(scenario))
    return c2s, s2c, list(records)


def transcript_prefix(scenario: str, direction: str, max_bytes: int) -> bytes:
    """The first ``max_bytes`` of one direction's bytes, reading no further than needed."""
    if direction not in ("c2s", "s2c"):
        raise ValueError(f"direction must be 'c2s' or 's2c', not {direction!r}")
    path = _transcript_path(scenario)
    buf = bytearray()
    try:
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if len(buf) >= max_bytes:
                    break
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if isinstance(record, dict) and record.get("type") == "chunk" and record["dir"] == direction:
                        buf += bytes.fromhex(record["hex"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise RecordingError(f"bad transcript line ({type(exc).__name__}: {exc})",
                                         f"{path}:{lineno}") from None
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise RecordingError(f"cannot read: {exc}", path) from None
    return bytes(buf[:max_bytes])


def frames(scenario: str) -> list[Record]:
    """The reference decode (frames.jsonl), including the TCP_EOF records."""
    out = _read_jsonl(recordings_dir() / scenario / "frames.jsonl")
    for f in out:
        if not isinstance(f.get("type"), str):
            raise RecordingError('a frame record needs a "type"', f.where)
    return out


def events(scenario: str, role: str) -> list[Record]:
    """``client-events.jsonl`` or ``server-events.jsonl`` (role: client/server)."""
    if role not in ("client", "server"):
        raise ValueError(f"role must be 'client' or 'server', not {role!r}")
    out = _read_jsonl(recordings_dir() / scenario / f"{role}-events.jsonl")
    for e in out:
        if not isinstance(e.get("event"), str):
            raise RecordingError('an event record needs an "event" name', e.where)
    return out


def readme_available() -> bool:
    return (locate() / "README.md").is_file()


def readme() -> str:
    path = recordings_dir() / "README.md"
    if not path.is_file():
        raise RecordingError("file missing", path)
    return path.read_text("utf-8")


def file_sha256_mismatches(scenario: str) -> list[str]:
    """Files whose size or sha256 differ from index.json (empty when intact)."""
    base = recordings_dir() / scenario
    bad = []
    if not base.is_dir():
        return [f"{base}: listed in index.json, directory missing"]
    for f in scenario_info(scenario).get("files", []):
        p = base / f["name"]
        if not p.is_file():
            bad.append(f"{f['name']}: missing")
            continue
        data = p.read_bytes()
        if len(data) != f["bytes"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            bad.append(f"{f['name']}: size/sha256 differ from index.json")
    return bad


# ---------------------------------------------------------------------------
# value forms (README "JSON value conventions", used in the events' ``value`` and in
# frames.jsonl's messages)

#: ``$ref`` renderings of channel and byte-stream objects -> the ext code Go gives them.
REF_KINDS = {"libchan.Sender": 4, "libchan.Receiver": 5, "bytestream(rw)": 1, "bytestream(r)": 3,
             "bytestream(w)": 2}


def _is_hex(s: Any) -> bool:
    if not isinstance(s, str) or len(s) % 2:
        return False
    try:
        bytes.fromhex(s)
    except ValueError:
        return False
    return True


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def value_form(js: Any) -> str | None:
    """The documented value form of a JSON value, or None for plain JSON.

    * ``"bin"``: ``{"$bin": "hex"}``, a Go ``[]byte``;
    * ``"bin-nil"``: ``{"$bin": null}``, a nil Go ``[]byte`` (msgpack ``c0`` on the wire);
    * ``"bin-large"``: ``{"$bin_len": N, "$bin_sha256": "hex", "$bin_head": "hex"}``;
    * ``"time"``: ``{"$time": RFC3339, "unix": S, "nsec": N, "zone": ..., ...}``;
    * ``"ref"``: ``{"$ref": "libchan.Sender" | "libchan.Receiver" | "bytestream(rw|r|w)", "go_type": ...}``;
    * ``"ext"``: ``{"$ext": CODE, "name": ..., "data": "hex", "ref": N | null}`` (frames.jsonl;
      ext 6 also has ``unix`` and ``nsec``).

    Raises :class:`RecordingError` for any other object with a ``$`` key, or a
    documented form with missing or ill-typed fields (the caller adds the location).
    """
    if not isinstance(js, dict) or not any(isinstance(k, str) and k.startswith("$") for k in js):
        return None
    keys = {k for k in js if k.startswith("$")}

    def bad(why: str) -> RecordingError:
        return RecordingError(f"{why}: {json.dumps(js)[:200]}")

    if keys == {"$bin"}:
        if js["$bin"] is None:
            return "bin-nil"
        if not _is_hex(js["$bin"]):
            raise bad("$bin is neither a hex string nor null")
        return "bin"
    if keys == {"$bin_len", "$bin_sha256", "$bin_head"} or keys == {"$bin_len", "$bin_sha256"}:
        if not _is_int(js["$bin_len"]) or js["$bin_len"] < 0 or not _is_hex(js["$bin_sha256"]) \
                or len(js["$bin_sha256"]) != 64 or not _is_hex(js.get("$bin_head", "")):
            raise bad("malformed large binary")
        return "bin-large"
    if keys == {"$time"}:
        if not isinstance(js["$time"], str) or not _is_int(js.get("unix")) or not _is_int(js.get("nsec")) \
                or not 0 <= js["nsec"] < 1_000_000_000:
            raise bad("malformed time (needs $time, unix and nsec)")
        return "time"
    if keys == {"$ref"}:
        if js["$ref"] not in REF_KINDS:
            raise bad(f"unknown $ref kind (known: {', '.join(REF_KINDS)})")
        return "ref"
    if keys == {"$ext"}:
        if not _is_int(js["$ext"]) or not _is_hex(js.get("data")):
            raise bad("malformed ext (needs an integer $ext and hex data)")
        if js["$ext"] == 6 and len(js["data"]) == 24 and not (_is_int(js.get("unix")) and _is_int(js.get("nsec"))):
            raise bad("malformed ext 6 time (needs unix and nsec)")
        if js.get("ref") is not None and not _is_int(js["ref"]):
            raise bad("malformed ext reference")
        return "ext"
    raise bad(f"unknown value form {sorted(keys)}")


def bin_value(js: Any) -> bytes | None:
    """The bytes of a ``$bin`` form (None for a nil ``[]byte``)."""
    form = value_form(js)
    if form == "bin-nil":
        return None
    if form != "bin":
        raise RecordingError(f"not a $bin value: {json.dumps(js)[:200]}")
    return bytes.fromhex(js["$bin"])
