"""spec/DOCKER.md §5 (the docker CLI commands) agrees with the router: a row marked ``501``
is answered by ``not_implemented``, every other row by a real endpoint."""

from __future__ import annotations

import re
from pathlib import Path

from libswarm.backends._docker import endpoints
from libswarm.backends._docker.routes import route

SPEC = Path(__file__).resolve().parents[2] / "spec" / "DOCKER.md"
_ROW = re.compile(r"^\| (.+?) \| `(GET|POST|PUT|DELETE|HEAD) ([^`]+)` \| (.+?) \| (.+?) \| (.+?) \|$")


def _rows() -> list[tuple[str, str, str, list[str]]]:
    text = SPEC.read_text()
    section = text[text.index("## 5. The docker CLI"):]
    rows = []
    for line in section.splitlines():
        m = _ROW.match(line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3), [m.group(4), m.group(5), m.group(6)]))
    return rows


def test_cli_table_matches_the_router():
    rows = _rows()
    assert len(rows) > 40
    for command, method, path, cells in rows:
        concrete = path.replace("/R/", "/web/").replace("/X/", "/busybox/").replace("/ID/", "/0123abcd/")
        concrete = concrete[:-2] + "/web" if concrete.endswith("/R") else concrete
        concrete = concrete[:-2] + "/busybox" if concrete.endswith("/X") else concrete
        handler, _ = route(method, concrete)
        unimplemented = [c == "501" for c in cells]
        assert len(set(unimplemented)) == 1, (command, cells)  # the front end decides, for every engine
        if unimplemented[0]:
            assert handler is endpoints.not_implemented, (command, method, concrete)
        else:
            assert handler not in (endpoints.not_implemented, endpoints.not_found), (command, method, concrete)
            assert all(c.startswith("yes") for c in cells), (command, cells)
