"""The audit log: one JSON object per line for every decision (and every reload).

A decision line::

    {"time": "2026-11-26T10:00:00.123Z", "identity": {"transport": "tls", "cn": "alice", ...},
     "verb": "Spawn", "on": "engine", "target": "web", "rule": "no-privileged",
     "action": "deny", "reason": "privileged containers are not allowed", "rewrites": []}

``rule`` is null when the default decided; ``reason`` is there for deny and hide.
A reload line: ``{"time", "event": "reload", "rules": PATH, "ok": true|false, "error"?}``.
Lines are written whole and flushed at once; a file is opened for appending and opened
again on reload (so it can be rotated).
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any, TextIO

from ..._identity import Identity
from .conditions import Query
from .rules import Decision

__all__ = ["Audit"]


def _now() -> str:
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class Audit:
    """Where decision lines go: a file path, or ``-`` / None for stderr (or ``stream``)."""

    def __init__(self, path: str | None = None, stream: TextIO | None = None) -> None:
        self.path = None if path in (None, "-") else path
        self._stream = stream
        self._file: TextIO | None = None
        if self.path is not None:
            self._file = open(self.path, "a", encoding="utf-8")

    def reopen(self) -> None:
        if self.path is not None:
            old, self._file = self._file, open(self.path, "a", encoding="utf-8")
            if old is not None:
                old.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, entry: dict[str, Any]) -> None:
        out = self._file or self._stream or sys.stderr
        out.write(json.dumps(entry, separators=(",", ":")) + "\n")
        out.flush()

    def decision(self, identity: Identity, q: Query, d: Decision) -> None:
        entry: dict[str, Any] = {"time": _now(), "identity": identity.to_wire(), "verb": q.verb.name, "on": q.on,
                                 "target": q.target, "rule": d.rule, "action": d.action}
        if d.action != "allow":
            entry["reason"] = d.reason
        if d.rewrites:
            entry["rewrites"] = d.rewrites
        self._write(entry)

    def reload(self, rules: str, error: str | None = None) -> None:
        entry: dict[str, Any] = {"time": _now(), "event": "reload", "rules": rules, "ok": error is None}
        if error is not None:
            entry["error"] = error
        self._write(entry)
