"""The endpoints that stream: ``wait``, ``logs`` and ``attach`` (the hijacked connection).

Container stdio is ``Log("stdout"|"stderr", chunk)`` on an Attach output; to the docker CLI
it goes as Docker's multiplexed stream (:func:`frame`, raw for a TTY container). Attach
gives the connection up to Docker's raw stream: client bytes become ``Log("stdin", chunk)``
on the container's handle, its half-close ends stdin.
"""

from __future__ import annotations

import json
import ssl
import struct
from typing import Any, Callable

import trio

from ..._client import Client, Output
from ..._errors import LibswarmError
from ..._message import Arg
from ..._verbs import Verb
from .engine import Engine
from .formats import truthy
from .http import json_line, RAW_STREAM, APIRequest, HTTPError, Response

__all__ = ["wait", "logs", "attach", "relay", "frame", "STREAM_IDS"]

STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}
"""The stream byte of a multiplexed frame."""


def frame(stream: str, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream: ``[id, 0, 0, 0, len BE32] + data``."""
    return struct.pack(">BxxxL", STREAM_IDS[stream], len(data)) + data


def _raw(tag: str, data: bytes) -> bytes:
    """A TTY container's output: no framing."""
    return data


def _as_bytes(chunk: Arg) -> bytes:
    return chunk if isinstance(chunk, bytes) else chunk.encode()


async def wait(engine: Engine, req: APIRequest, resp: Response) -> None:
    condition = req.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise HTTPError(400, f"invalid condition: {condition!r}")
    async with engine.container(req.ref) as c:
        events = await c.watch()
        result: dict[str, Any] | None = None
        await resp.start_stream(200, "application/json")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(resp.until_client_gone, nursery.cancel_scope)
            code: int | None = None
            error: str | None = None
            try:
                async for msg in events:
                    if msg.verb == Verb.Error:
                        error = msg.text
                        break
                    if msg.verb != Verb.Set or len(msg.args) < 2:
                        continue
                    event = str(msg.args[0])
                    try:
                        state = (json.loads(msg.args[1]).get("State") or {})
                    except (ValueError, AttributeError):
                        state = {}
                    if event == "state":
                        if condition == "not-running" and not state.get("Running"):
                            code = int(state.get("ExitCode", 0))
                            break
                    elif event == "die":
                        code = int(state.get("ExitCode", 0))
                        if condition != "removed":
                            break
                    elif event == "destroy":
                        if code is None:
                            code = int(state.get("ExitCode", 0))
                        break
            except LibswarmError as exc:
                error = str(exc)
            finally:
                await events.aclose()
            if code is not None and (error is None):
                result = {"StatusCode": code, "Error": None}
            elif error is None and condition == "removed":
                result = {"StatusCode": code or 0, "Error": None}
            else:
                result = {"StatusCode": -1, "Error": {"Message": error or "container watch ended"}}
            nursery.cancel_scope.cancel()
        await resp.write(json_line(result))
        await resp.end()


async def logs(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``C.Attach("", "logs", "nostdin", <log words>)`` (spec/LIBSWARM.md 6.4): the engine
    selects and shapes the output (tail, since, until, timestamps); ``follow`` streams it
    live until the container's output ends or the client goes."""
    query = req.query
    want = {t for t in ("stdout", "stderr") if truthy(query.get(t))}
    if not want:
        raise HTTPError(400, "Bad parameters: you must choose at least one stream")
    follow = truthy(query.get("follow"))
    words = ["logs", "nostdin"] + ([] if follow else ["nostream"])
    tail = query.get("tail", "all")
    if tail.isdigit():
        words.append(f"tail={int(tail)}")
    if truthy(query.get("timestamps")):
        words.append("timestamps")
    for key in ("since", "until"):
        value = query.get(key) or ""
        if value and value not in ("0", "0.000000000"):
            try:
                float(value)
            except ValueError:
                raise HTTPError(400, f"invalid value for {key}: {value!r}") from None
            words.append(f"{key}={value}")
    if want == {"stdout", "stderr"}:
        words.append("raw")  # the engine's own framing, if it can: no Tty to know here
    async with engine.container(req.ref) as c:
        shape = _Shaper(engine, c, want)
        handle, output = await c.attach("", *words)
        try:
            if not follow:
                await _replay(output, shape, resp)
                return
            await resp.start_stream(200, RAW_STREAM)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(resp.until_client_gone, nursery.cancel_scope)
                async for msg in output:
                    data = await shape(msg)
                    if data:
                        await resp.write(data)
                nursery.cancel_scope.cancel()
        finally:
            await output.aclose()
            if handle is not None:
                await handle.aclose()
        await resp.end()


class _Shaper:
    """An attach output's ``Log`` messages as the bytes of Docker's logs stream.

    ``Log("raw", bytes)`` (an engine that answered the log word ``raw``) is the engine's own
    stream, written as it is; ``Log("stdout"|"stderr", chunk)`` of a wanted stream is framed,
    or raw for a Tty container: the container's inspect says which, asked at the first such
    message (not before: an engine that frames needs no inspect)."""

    def __init__(self, engine: Engine, c: Client, want: set[str]) -> None:
        self.engine, self.c, self.want = engine, c, want
        self.pack: Callable[[str, bytes], bytes] | None = None

    async def __call__(self, msg: Any) -> bytes:
        if msg.verb != Verb.Log or len(msg.args) != 2:
            return b""
        tag, chunk = str(msg.args[0]), _as_bytes(msg.args[1])
        if tag == "raw":
            return chunk
        if tag not in self.want or not chunk:
            return b""
        if self.pack is None:
            tty = bool(((await self.engine.inspect(self.c)).get("Config") or {}).get("Tty"))
            self.pack = _raw if tty else frame
        return self.pack(tag, chunk)


#: A replay (``docker logs`` without ``-f``) up to this many bytes is answered as one body.
LOGS_HELD = 1 << 20
#: Seconds a replay is held for that one body before what came is sent and the rest streamed.
LOGS_HOLD_FOR = 10.0


async def _replay(output: Any, shape: _Shaper, resp: Response) -> None:
    """Answer a replay: one body when it ends within :data:`LOGS_HOLD_FOR` seconds and
    :data:`LOGS_HELD` bytes (dockerd sends it in chunks; one body is quicker for the CLI),
    else streamed as it comes: never held whole (a container's logs may be gigabytes)
    and never cut short."""
    held = bytearray()
    streaming = False

    async def flush() -> None:
        nonlocal streaming
        with trio.CancelScope(shield=True):  # (a write is not cut in the middle)
            if not streaming:
                await resp.start_stream(200, RAW_STREAM)
                streaming = True
            if held:
                await resp.write(bytes(held))
                held.clear()

    async def relay() -> None:
        async for msg in output:
            data = await shape(msg)
            if data:
                held.extend(data)
                if streaming or len(held) >= LOGS_HELD:
                    await flush()

    ended = False
    with trio.move_on_after(LOGS_HOLD_FOR):
        await relay()
        ended = True
    if ended and not streaming:
        await resp.send(200, bytes(held), RAW_STREAM)
        return
    await flush()
    if not ended:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(resp.until_client_gone, nursery.cancel_scope)
            await relay()
            nursery.cancel_scope.cancel()
        await flush()
    await resp.end()


DEFAULT_DETACH_KEYS = b"\x10\x11"
"""Ctrl-P Ctrl-Q, Docker's default detach keys."""


def detach_keys(spec: str | None) -> bytes:
    """Docker's ``detachKeys`` (``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``...) as bytes; 400 when invalid."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if len(k) == 1:
            out.append(ord(key.strip()))
        elif k.startswith("ctrl-") and len(k) == 6 and (k[5].isalpha() or k[5] in "@[\\]^_"):
            out.append(ord(k[5].upper()) - 64)
        else:
            raise HTTPError(400, f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class EscapeProxy:
    """dockerd's escape proxy: bytes that may begin the detach keys are held back until
    the keys are complete (:attr:`detached`) or broken (then passed on)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""
        self.detached = False

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        for byte in chunk:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    self.detached = True
                    self.held = b""
                    return bytes(out)
            else:
                out += candidate
                self.held = b""
        return bytes(out)


async def attach(engine: Engine, req: APIRequest, resp: Response) -> None:
    query = req.query
    want = {t for t in ("stdout", "stderr") if truthy(query.get(t))}
    use_stdin = truthy(query.get("stdin"))
    async with engine.container(req.ref) as c:
        data = await engine.inspect(c)
        tty = bool((data.get("Config") or {}).get("Tty"))
        words = (["logs"] if truthy(query.get("logs")) else []) + ([] if use_stdin else ["nostdin"]) + ["next"]
        keys = detach_keys(query.get("detachKeys"))
        handle, output = await c.attach("", *words)
        await relay(resp, handle, output, want, tty, use_stdin, keys)


async def relay(resp: Response, handle: Client | None, output: Output, want: set[str], tty: bool,
                use_stdin: bool, keys: bytes = DEFAULT_DETACH_KEYS) -> None:
    """Upgrade the connection to Docker's raw stream and relay: the client's bytes to ``handle``
    as ``Log("stdin", chunk)`` (its half-close closes the handle), ``output``'s ``Log(tag, chunk)``
    to the client (framed, raw for a TTY), until the output ends. Used by attach and exec start.
    With a TTY, the detach ``keys`` in the client's stdin end the relay as dockerd does
    (its ``copyEscapable``): the handle is closed (a TTY container's stdin stays open, spec/LIBSWARM.md 6.1) and so is the connection."""
    stream, leftover = await resp.upgrade()
    escape = EscapeProxy(keys)
    detach = trio.CancelScope()
    # an engine that gave no input handle has no stdin: the client's bytes are read and dropped
    stdin = handle if use_stdin else None
    client_done = trio.Event()

    async def read_client() -> None:
        # stdin, or (without stdin=1) whatever the client sends, such as its TLS
        # close_notify: read it all so closing never resets the connection
        try:
            chunk = leftover
            while True:
                if stdin is not None and chunk:
                    data = escape.feed(bytes(chunk)) if tty else bytes(chunk)
                    if data:
                        await stdin.log("stdin", data)
                    if escape.detached:
                        detach.cancel()
                        return
                try:
                    chunk = bytes(await stream.receive_some(65536))
                except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
                    chunk = b""
                if not chunk:
                    if stdin is not None and escape.held:  # the keys' beginning, never completed
                        await stdin.log("stdin", escape.held)
                    break
        except LibswarmError:
            pass
        finally:
            client_done.set()
            if stdin is not None:  # end of the client's stdin: the container's stdin ends
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await stdin.aclose()

    try:
        with detach:
            await _relay_output(stream, output, want, tty, read_client, client_done)
    finally:
        await output.aclose()
        if handle is not None and (not use_stdin or not client_done.is_set()):
            await handle.aclose()


async def _relay_output(stream: Any, output: Output, want: set[str], tty: bool,
                        read_client: Callable[[], Any], client_done: trio.Event) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_client)
        try:
            async for msg in output:
                if msg.verb != Verb.Log or len(msg.args) != 2:
                    continue
                tag, chunk = str(msg.args[0]), _as_bytes(msg.args[1])
                if tag in want and chunk:
                    await stream.send_all(chunk if tty else frame(tag, chunk))
        except LibswarmError:
            pass
        # the output ended: half-close where the transport can, then give the
        # client a moment to finish (a full close with unread input is a reset)
        if isinstance(stream, trio.SocketStream):
            try:
                await stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        with trio.move_on_after(2):
            await client_done.wait()
        nursery.cancel_scope.cancel()
