"""bench/soak.py runs end to end: a row per attack and exit status 0 (no timing assertions:
the soak benchmark prints figures, it does not judge them without --check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
def test_soak_smoke_refused_and_rapid_reset():
    attacks = ["refused", "rapid-reset"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", "1", "--attacks", ",".join(attacks),
         "--drain", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    for attack in attacks:
        rows = [line for line in lines if line.startswith(f"| {attack} |")]
        assert len(rows) == 1, (attack, proc.stdout)
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert len(cells) == 12, cells
        assert "attacker failed" not in rows[0] and "attacker crashed" not in rows[0], rows[0]
    assert lines[-1].startswith("soak: 2 attacks"), proc.stdout
