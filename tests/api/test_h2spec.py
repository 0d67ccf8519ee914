"""h2spec 2.0.0, the HTTP/2 conformance suite, against a real ``libchan.serve`` server.

The binary is ``../shared/tools/h2spec/h2spec`` relative to the repository root
(``LIBCHAN_H2SPEC`` names another); without it the test skips, or fails under CI
(``tests/ci.py``). Each run checks h2spec's JUnit report (``-j``): every case passes,
except the ones listed below by their h2spec id, which test HTTP semantics (a response
body to a GET) rather than RFC 9113 framing; an unexpected failure, or a listed case
that now passes, fails the test. While h2spec runs, a well-behaved libchan client does
round trips on the same server and must never be starved (the latency goal, 100 ms, is a
benchmark figure: ``bench/soak.py``). The server runs in a process of its own
(``tests/echo_server.py``), the client in the test's.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trio

import libchan
from ci import require
from helpers import server_process

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
H2SPEC = Path(os.environ.get("LIBCHAN_H2SPEC") or REPO_ROOT / ".." / "shared" / "tools" / "h2spec" / "h2spec").resolve()

#: Seconds h2spec waits for an expected frame (``-o``).
TIMEOUT = 3
#: The well-behaved client must keep being served while h2spec runs: no round trip may take
#: longer than this. It is a starvation bound, not the latency goal: the 100 ms goal is a
#: speed figure, measured and printed by ``bench/soak.py`` (figures in the README), because a
#: timed assertion at that scale fails on a loaded 2-core CI machine (146 ms seen once over
#: plaintext, from gen-2 garbage collections and scheduling, not from the server's fairness).
MAX_STALL = 1.0

_NO_BODY = (
    "HTTP semantics: expects a DATA frame in the response to a GET; libchan answers a GET with a"
    " bodyless 405 (HEADERS with END_STREAM, spec 5.1)"
)
_NEEDS_BODY = (
    "HTTP semantics: skipped by h2spec because the response to its GET has no body (it needs"
    " DATA to test flow control against); libchan answers a GET with a bodyless 405"
)

#: Cases that fail against libchan by design, by h2spec id (section/number), with why.
EXPECTED_FAILURES = {
    "generic/2/2": _NO_BODY + " (WINDOW_UPDATE on a half-closed (remote) stream)",
    "generic/2/3": _NO_BODY + " (PRIORITY on a half-closed (remote) stream)",
    "http2/4.2/3": (
        "not applicable to our settings: h2spec sends a ~20 KB HEADERS frame as if the server"
        " allowed 16384 octets, but libchan advertises MAX_FRAME_SIZE = Config.max_frame_size"
        " (1 MiB), so the frame is legal and answered (405); test_h2spec_frame_size runs"
        " http2/4.2 against a server that advertises 16384, where it passes"
    ),
    "http2/5.1.2/1": (
        "HTTP semantics: h2spec opens max_streams + 1 GET streams and relies on a zero stream"
        " window to keep each response (its DATA) from completing; libchan's bodyless 405 ends"
        " each stream as soon as the read that carried it is processed, so no more than one"
        " read's worth (256 KiB, about 9,000 of its 29-byte HEADERS frames) is ever open at once,"
        " below max_streams (10,000); the per-connection limit itself is tested in"
        " tests/engine/test_limits.py with streams that stay open"
    ),
}
#: Cases h2spec skips against libchan, by id, with why.
EXPECTED_SKIPS = {
    "http2/6.5.3/1": _NEEDS_BODY,
    "http2/6.9.1/1": _NEEDS_BODY,
    "http2/6.9.2/1": _NEEDS_BODY,
    "http2/6.9.2/2": _NEEDS_BODY,
}


def h2spec_binary() -> Path:
    require(H2SPEC.is_file() and os.access(H2SPEC, os.X_OK), f"h2spec not found at {H2SPEC} (set LIBCHAN_H2SPEC)")
    return H2SPEC


def parse_report(path: Path) -> dict[str, tuple[str, str]]:
    """h2spec's JUnit report as ``{id: (outcome, text)}``; the id is the section's
    package and the case's number in it (``http2/5.1.2/1``), as h2spec numbers them;
    the outcome is ``passed``, ``failed`` or ``skipped``."""
    results: dict[str, tuple[str, str]] = {}
    for suite in ET.parse(path).getroot().iter("testsuite"):
        package = suite.get("package")
        for number, case in enumerate(suite.iter("testcase"), 1):
            outcome, text = "passed", case.get("classname") or ""
            for child in case:
                if child.tag in ("error", "failure"):
                    outcome, text = "failed", f"{text}: {' / '.join((child.text or '').splitlines())}"
                elif child.tag == "skipped":
                    outcome = "skipped"
            results[f"{package}/{number}"] = (outcome, text)
    return results


async def _round_trips(url: str, ssl, stop: trio.Event, latencies: list[float]) -> None:
    """A well-behaved client: one round trip after another until ``stop``."""
    async with libchan.connect(url, ssl=ssl) as session:
        sender = await session.open_sender()
        n = 0
        while not stop.is_set():
            reply, replies = libchan.pipe()
            start = trio.current_time()
            await sender.send({"n": n, "reply": reply})
            assert await replies.receive() == n
            latencies.append(trio.current_time() - start)
            n += 1
            await trio.sleep(0.005)
        await sender.aclose()


async def run_h2spec(url: str, report: Path, *sections: str) -> tuple[int, str]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    argv = [str(h2spec_binary()), *sections, "-h", host, "-p", port, "-o", str(TIMEOUT), "-j", str(report)]
    if url.startswith("tls://"):
        argv += ["-t", "-k"]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_h2spec(transport, tmp_path):
    report = tmp_path / "h2spec.xml"
    latencies: list[float] = []
    with trio.fail_after(180):
        async with server_process(transport, tmp_path) as (url, client_ssl):
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_round_trips, url, client_ssl, stop, latencies)
                status, output = await run_h2spec(url, report)
                stop.set()
    results = parse_report(report)
    failed = {cid: text for cid, (outcome, text) in results.items() if outcome == "failed"}
    skipped = {cid for cid, (outcome, _) in results.items() if outcome == "skipped"}
    passed = len(results) - len(failed) - len(skipped)
    worst = max(latencies)
    print(
        f"\nh2spec over {transport}: {len(results)} cases, {passed} passed, {len(failed)} failed,"
        f" {len(skipped)} skipped; the other client: {len(latencies)} round trips, worst {worst * 1000:.1f} ms"
    )
    assert len(results) >= 140, output  # the report was read
    unexpected = {cid: text for cid, text in failed.items() if cid not in EXPECTED_FAILURES}
    assert not unexpected, f"unexpected h2spec failures: {unexpected}"
    now_passing = set(EXPECTED_FAILURES) - set(failed)
    assert not now_passing, f"listed as failing but passed (or missing): {sorted(now_passing)}"
    assert skipped == set(EXPECTED_SKIPS), f"skipped: {sorted(skipped)}"
    assert status == (1 if failed else 0), output
    assert len(latencies) > 100
    assert worst < MAX_STALL, f"the other client starved: worst round trip {worst * 1000:.1f} ms while h2spec ran"


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_h2spec_frame_size(transport, tmp_path):
    """http2/4.2 against a server that advertises MAX_FRAME_SIZE 16384 (the default h2spec
    assumes in 4.2/3): a too-large HEADERS frame is a connection error (FRAME_SIZE_ERROR)."""
    report = tmp_path / "h2spec.xml"
    with trio.fail_after(60):
        async with server_process(transport, tmp_path, "--max-frame-size", "16384") as (url, _):
            status, output = await run_h2spec(url, report, "http2/4.2")
    results = parse_report(report)
    assert sorted(results) == ["http2/4.2/1", "http2/4.2/2", "http2/4.2/3"], output
    assert all(outcome == "passed" for outcome, _ in results.values()), results
    assert status == 0, output
