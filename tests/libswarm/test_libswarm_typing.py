"""libswarm's public callbacks accept what users naturally write, under ``mypy --strict``.

A small user program registers every kind of handler the natural way (async functions
returning ``list[str]``, ``dict[str, Any]``, a ``Server``...) and must type-check clean; a
program with typical mistakes (a plain function, a handler returning nothing or the wrong
object) must be rejected on each marked line, so this test can fail.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ci import require as need

pytestmark = pytest.mark.slow  # runs mypy (several seconds)

ROOT = Path(__file__).resolve().parents[2]

NATURAL = '''
from __future__ import annotations

import json
from typing import Any

import trio

import libchan
import libswarm
from libswarm import backends


async def ls() -> list[str]:
    return ["web", "db"]


async def ls_words(*args: str | bytes) -> tuple[str, ...]:
    return tuple(str(a) for a in args)


async def info() -> dict[str, Any]:
    return {"Driver": "mine", "Containers": 0}


async def state(*args: str | bytes) -> str:
    return "running"


async def names() -> list[str]:
    return ["a"]


async def spawn(*args: str | bytes) -> libswarm.Server:
    return libswarm.Server("child")


async def spawn_pipe(config: str) -> libchan.PipeSender:
    sender, _ = libchan.pipe()
    return sender


async def start() -> None:
    pass


async def stop(*words: str | bytes) -> bool:
    return True


async def attach(name: str, req: libswarm.Request) -> None:
    stdin, _ = libchan.pipe()
    await req.ack(stdin)
    await req.log("stdout", b"hi\\n")


async def watch(req: libswarm.Request) -> None:
    await req.ack()
    await req.set("state", json.dumps({"Running": False}))


async def connect(*args: str | bytes) -> libchan.PipeStream:
    ours, theirs = libchan.stream_pipe()
    return theirs


async def log(tag: str, chunk: bytes) -> None:
    pass


async def error(text: str) -> None:
    pass


async def values(*values: str | bytes) -> None:
    pass


async def raw(req: libswarm.Request) -> None:
    await req.error("no")


server = (
    libswarm.Server("mine")
    .on_ls(ls).on_get(info).on_spawn(spawn).on_start(start).on_stop(stop).on_attach(attach)
    .on_watch(watch).on_connect(connect).on_log(log).on_error(error).on_set(values)
    .on(libswarm.Verb.File, raw).on("file", raw).catchall(raw)
)
libswarm.Server().on_ls(ls_words).on_get(state).on_get(names).on_spawn(spawn_pipe)
tree = libswarm.Tree("t").bind("mine", server).bind("pipe", libchan.pipe()[0])


async def task(input: trio.abc.ReceiveChannel[Any], output: trio.abc.SendChannel[Any]) -> None:
    async for _ in input:
        await output.send({"Verb": 6, "Args": ["tick"], "Ret": None, "Att": None})


class Echo(libswarm.Service):
    async def run(self, input: trio.abc.ReceiveChannel[Any], output: trio.abc.SendChannel[Any]) -> None:
        await libchan.copy_channel(input, output)


libswarm.Task(task)
libswarm.Task(Echo())
backends.register("echo", Echo)


async def main() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        client = libswarm.Client(server.sender(), timeout=5)
        listed: list[str | bytes] = await client.ls()
        child = await client.spawn(json.dumps({"name": "web"}))
        async with libswarm.Client(child) as again:
            handle, output = await again.attach("")
            async for msg in output:
                print(msg.verb, msg.args)
        print(listed)
        nursery.cancel_scope.cancel()
    async with libswarm.open_service(backends.get("simulator")()) as (engine, _):
        await engine.start()
    await libswarm.chain([Echo(), Echo()], None, libchan.pipe()[0])


trio.run(main)
'''

WRONG = '''
from __future__ import annotations

import libswarm


def ls_not_async() -> list[str]:
    return []


async def get_nothing() -> None:
    pass


async def spawn_client(*args: str | bytes) -> libswarm.Client:
    raise NotImplementedError


async def attach_no_name(req: libswarm.Request) -> None:
    pass


async def connect_bytes() -> bytes:
    return b""


server = libswarm.Server()
server.on_ls(ls_not_async)  # wrong
server.on_get(get_nothing)  # wrong
server.on_spawn(spawn_client)  # wrong
server.on_attach(attach_no_name)  # wrong
server.on_connect(connect_bytes)  # wrong
server.on_ls(lambda: ["x"])  # wrong
'''


def _mypy(tmp_path: Path, name: str, source: str) -> tuple[int, list[str]]:
    """Run ``mypy --strict`` on ``source`` (as the project configures it); return its status and error lines."""
    need(importlib.util.find_spec("mypy") is not None, "mypy is not installed (pip install -e '.[test]')")
    program = tmp_path / name
    program.write_text(source)
    p = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path.parent / "mypy-cache"), "--no-color-output", str(program)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    errors = [line for line in p.stdout.splitlines() if ": error:" in line]
    assert p.returncode in (0, 1), (p.returncode, p.stdout, p.stderr)  # 2: mypy itself failed
    return p.returncode, errors


def test_natural_callbacks_type_check(tmp_path: Path) -> None:
    status, errors = _mypy(tmp_path, "natural_user.py", NATURAL)
    assert errors == [] and status == 0, "\n".join(errors)


def test_wrong_callbacks_are_rejected(tmp_path: Path) -> None:
    status, errors = _mypy(tmp_path, "wrong_user.py", WRONG)
    assert status == 1
    flagged = {int(m.group(1)) for e in errors if (m := re.match(r"^[^:]*wrong_user\.py:(\d+):", e))}
    wrong_lines = {n for n, line in enumerate(WRONG.splitlines(), 1) if line.endswith("# wrong")}
    assert len(wrong_lines) == 6
    assert flagged == wrong_lines, "\n".join(errors)


@pytest.mark.parametrize("package", ["libswarm"])
def test_package_is_marked_typed(package: str) -> None:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    assert (Path(spec.origin).parent / "py.typed").is_file()
