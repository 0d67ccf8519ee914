"""A real HTTP/2 client nobody here wrote (curl) opens a channel to a libchan server.

curl sends one POST without a ``libchan-session`` header; its body is framed
CBOR messages (a CBOR byte string around each encoded message). The server
application must get that request as a top-level channel from
``accept_receiver()`` carrying exactly those messages, and curl must see 200.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio

import libchan
from libchan.messages.framing import encode_frame

from proxies import require_binary


async def _run_curl_post(tmp_path: Path, body: bytes) -> tuple[subprocess.CompletedProcess[bytes], list[Any], list[str]]:
    require_binary("curl")
    received: list[Any] = []
    events: list[str] = []
    got_all = trio.Event()

    async def handler(session: libchan.Session) -> None:
        events.append("session")
        receiver = await session.accept_receiver()
        events.append("receiver")
        async for msg in receiver:
            received.append(msg)
        events.append("end of channel")
        got_all.set()

    path = tmp_path / "body.cbor"
    path.write_bytes(body)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(libchan.serve, "tcp://127.0.0.1:0", handler)
        port = int(urls[0].rsplit(":", 1)[1])
        result = await trio.run_process(
            [
                "curl",
                "--http2-prior-knowledge",
                "-sS",
                "--max-time",
                "10",
                "-X",
                "POST",
                "--data-binary",
                f"@{path}",
                "-o",
                str(tmp_path / "response.bin"),
                "-w",
                "%{http_code} %{http_version}",
                f"http://127.0.0.1:{port}/anything",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        with trio.move_on_after(5):
            await got_all.wait()
        nursery.cancel_scope.cancel()
    return result, received, events


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([{"hello": "world", "n": 1, "list": [1, 2.5, None, True], "bin": b"\x00\xff"}], id="one-message"),
        pytest.param([{"seq": 1, "text": "first"}, ["second", {"nested": {"x": -7}}, b"\x01" * 300]], id="two-messages"),
    ],
)
async def test_curl_opens_a_channel(tmp_path: Path, messages: list[Any]) -> None:
    body = b"".join(encode_frame(cbor2.dumps(m)) for m in messages)
    with trio.fail_after(20):
        result, received, events = await _run_curl_post(tmp_path, body)
    stdout = result.stdout.decode(errors="replace")
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"curl exited {result.returncode}: stderr={stderr!r} stdout={stdout!r}"
    status, _, version = stdout.partition(" ")
    assert status == "200", f"curl saw HTTP status {status!r} (stderr={stderr!r})"
    assert version == "2", f"curl did not speak HTTP/2 (http_version {version!r})"
    assert events == ["session", "receiver", "end of channel"], events
    assert received == messages
