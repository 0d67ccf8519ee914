"""Helpers for the docker tests: run ``dockerserver -> ...`` in-process, call the real docker CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import asynccontextmanager
from typing import AsyncIterator, Sequence

import pytest
import trio

import libchan
import libswarm
from libswarm.backends.dockerserver import DockerServer

IN_CI = os.environ.get("CI", "") not in ("", "0", "false")
DOCKER_CLI = shutil.which("docker")


def need(condition: bool, why: str) -> None:
    """Skip unless ``condition``; under CI=1 a missing requirement fails instead."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=1 and {why}")
        pytest.skip(why)


class Docker:
    """The docker CLI pointed at one daemon address."""

    def __init__(self, host: str, tls_args: Sequence[str] = ()) -> None:
        self.host = host
        self.tls_args = list(tls_args)
        self.env = dict(os.environ, DOCKER_CONFIG=os.environ.get("DOCKER_CONFIG_TEST", "/nonexistent-docker-config"))
        for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            self.env.pop(k, None)

    async def __call__(self, *args: str, stdin: bytes = b"", timeout: float = 20) -> subprocess.CompletedProcess:
        assert DOCKER_CLI
        argv = [DOCKER_CLI, "-H", self.host, *self.tls_args, *args]
        with trio.fail_after(timeout):
            return await trio.run_process(argv, stdin=stdin, capture_stdout=True, capture_stderr=True,
                                          check=False, env=self.env)

    async def ok(self, *args: str, stdin: bytes = b"", timeout: float = 20) -> str:
        """Run; assert exit 0; return stdout as text."""
        p = await self(*args, stdin=stdin, timeout=timeout)
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p.stdout.decode()


async def _drain(receiver: trio.abc.ReceiveChannel) -> None:
    try:
        async for _ in receiver:
            pass
    except trio.BrokenResourceError:
        pass


@asynccontextmanager
async def docker_front(url: str, *backend: libswarm.Service, server_args: Sequence[str] = ()) -> AsyncIterator[DockerServer]:
    """Run ``dockerserver URL -> backend...`` as a chain; yield the DockerServer once it listens."""
    front = DockerServer(url, *server_args)
    out_s, out_r = libchan.pipe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(libswarm.chain, [front, *backend], None, out_s)
        nursery.start_soon(_drain, out_r)
        with trio.fail_after(10):
            await front.ready.wait()
        yield front
        nursery.cancel_scope.cancel()


async def raw_http(path_sock: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw HTTP/1.1 request over a unix socket; return (status, headers, body)."""
    stream = await trio.open_unix_socket(path_sock)
    async with stream:
        await stream.send_all(request)
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body
