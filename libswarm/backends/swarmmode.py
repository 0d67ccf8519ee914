"""``swarmmode``: a Docker Swarm mode manager (swarmkit inside dockerd) as a libswarm engine.

Args: ``URL [--tlsverify] [--tlscacert=F] [--tlscert=F] [--tlskey=F]``, as ``dockerclient``
(whose HTTP, TLS and unix plumbing it uses): the Engine API of a swarm *manager*. Every
container is a service with one task; the swarm decides the node.

The engine answers:

* ``Spawn(create_json)`` -> ``Ack(ret=container)``: ``POST /services/create`` from Docker's
  create body: ``Image``; ``Entrypoint`` -> ``ContainerSpec.Command``, ``Cmd`` -> ``Args``;
  ``Env``, ``Labels`` (container and service labels), ``WorkingDir`` -> ``Dir``, ``User``,
  ``Hostname``; ``HostConfig.NanoCpus``/``Memory`` -> ``Resources.Limits``,
  ``MemoryReservation`` -> ``Resources.Reservations``; placement constraints from ``Env``
  ``constraint:EXPR`` (removed from the env) and the label ``com.docker.swarm.constraints``
  (classic Swarm's; ``node==X`` becomes ``node.hostname==X``, a key without a dot
  ``node.labels.KEY``, ``node.*``/``engine.labels.*`` are kept); ``HostConfig.RestartPolicy``
  (``docker run --restart``) -> the task's ``RestartPolicy``: none by default (``no``),
  ``any`` for ``always``/``unless-stopped``, ``on-failure`` (``MaxAttempts`` from ``:N``).
  Only a task with a restart condition is rescheduled when its node goes down: the swarm
  shuts a ``none`` task down with its node and starts no other.
  A detached run (no ``AttachStdout``/``AttachStderr``) is a replicated service with one
  replica; a foreground one a replicated job (one completion). ``OpenStdin`` or ``Tty``
  (``-i``/``-t``) is refused: services have no stdin nor terminal. The name is the
  service's name. Then the first task is awaited (up to 10 s): a task the swarm cannot place
  (``no suitable node ...``) removes the service and fails the spawn with the swarm's words;
* ``Ls()`` -> the services' names; ``Get("containers")`` -> one ``docker ps`` entry per
  service (its task's state; ``Labels`` carry ``com.docker.swarm.node``, the task's node);
* ``Attach(ref)`` -> the container of the service named ``ref``, or with that service id,
  task id or container id (or a unique prefix of one); else ``No such container: ref``;
* ``Get()`` -> the manager's ``/info``; ``Get("version")``; ``Start``/``Stop`` -> ``Ack``;
* ``Watch("events", ...)`` -> the manager's ``GET /events`` (``Set(json)`` each).

A container (one service) answers:

* ``Get()`` -> an inspect made from the service and its task: ``Id`` (the service id),
  ``Name``, ``Config``, ``State`` (from the task: ``running``, ``exited`` with the task's
  container exit code...), ``HostConfig``, ``Node`` (``ID``, ``Name``: hostname, ``Addr``,
  ``State``: ``ready``, ``down``...), ``Swarm`` (``ServiceID``, ``TaskID``, ``ContainerID``,
  ``State``, ``Err``). A task last known running on a node the swarm has lost (node state
  ``down`` or ``disconnected``) keeps ``running`` (nothing newer is known: its container may
  still run) with ``State.Error`` ``Host Down: node B is down``, and its ``docker ps`` status
  is ``Host Down``, as classic Swarm showed it, until the swarm replaces the task;
* ``Start()`` -> ``Ack`` (a service runs from its creation; a finished one is
  ``Error("swarmmode: ... cannot be started again")``);
* ``Stop(words)`` -> a replicated service is scaled to 0 (its task shuts down: a
  ``docker stop``/``kill``); ``rm`` -> ``DELETE /services/ID`` (refused while running,
  unless ``force``); a job is removed on any stop;
* ``Attach("", words...)`` -> ``Ack``, then the service logs (``GET /services/ID/logs``,
  ``follow`` unless ``nostream``, ``tail``, ``since``, ``timestamps``) as
  ``Log("stdout"|"stderr", chunk)``, ending when the task has ended (what the follow stream
  had not yet given is read once more without follow);
* ``Watch()`` -> ``Set("state", inspect)``, then ``Set("start"|"die", inspect)`` as the
  task changes (polled every 0.25 s), then, for an ``AutoRemove`` (``--rm``) container, the
  service is removed and ``Set("destroy", inspect)`` ends the stream.

Errors are the manager's words (``service X not found`` becomes ``No such container: X``);
``This node is not a swarm manager...`` reaches the docker CLI with HTTP 503.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import trio

from .._container import now
from .._errors import RemoteError, UsageError
from .._server import Request, Server
from .._service import Service
from .._verbs import Verb
from ._docker.address import parse_tls_options
from ._placement import take_expressions
from .dockerclient import _HTTP, EngineError, _client_ssl_context, _message, _quote, demux, relay_events

log = logging.getLogger("libswarm")

__all__ = ["SwarmMode"]

POLL = 0.25
SPAWN_WAIT = 10.0
_ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")
_BEFORE = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting")
#: A stopped service's label: how its task ended ({"ExitCode": n, "FinishedAt": stamp}), kept
#: because the swarm removes the task of a slot scaled away soon after it stopped.
STOPPED_LABEL = "com.docker.libswarm.stopped"
_NODE_GONE = ("down", "disconnected")  # a node's Status.State when the manager has lost it


def stopped_label(state: dict[str, Any]) -> str:
    """The STOPPED_LABEL value for a service that _stop saw exited, from its inspect
    ``State``. If the swarm removed the task before a poll saw how it ended (it does so
    within a second or so of the stop; seen in CI), inspect knows no end time
    (``0001-01-01...``): it ended by the time the task was gone, i.e. now, give or take
    a poll, and that is what is kept (not the zero time, which reads as never started)."""
    finished = str(state.get("FinishedAt") or "")
    if not finished or finished.startswith("0001"):
        finished = now()
    return json.dumps({"ExitCode": state.get("ExitCode", 0), "FinishedAt": finished})


def _words(args: tuple[Any, ...]) -> list[str]:
    return [a.decode() if isinstance(a, bytes) else str(a) for a in args]


def swarm_constraint(expr: str) -> str:
    """Classic Swarm's ``KEY==VALUE`` as a Swarm mode placement constraint."""
    for op in ("==", "!="):
        if op in expr:
            key, value = expr.split(op, 1)
            key, value = key.strip(), value.strip().lstrip("~")
            if key == "node":
                key = "node.hostname"
            elif "." not in key:
                key = f"node.labels.{key}"
            return f"{key}{op}{value}"
    raise RemoteError(f"invalid constraint expression: {expr!r}")


def restart_policy(host_config: dict[str, Any]) -> dict[str, Any]:
    """``docker run --restart`` (``HostConfig.RestartPolicy``) as a Swarm mode task restart policy."""
    policy = host_config.get("RestartPolicy") if isinstance(host_config.get("RestartPolicy"), dict) else {}
    name = str((policy or {}).get("Name") or "no")
    if name in ("always", "unless-stopped"):
        return {"Condition": "any"}
    if name == "on-failure":
        retries = int((policy or {}).get("MaximumRetryCount") or 0)
        return {"Condition": "on-failure", **({"MaxAttempts": retries} if retries > 0 else {})}
    if name == "no":
        return {"Condition": "none"}
    raise RemoteError(f"invalid restart policy: {name!r}")


def service_spec(config: dict[str, Any]) -> dict[str, Any]:
    """Docker's create body -> a ``POST /services/create`` body."""
    if config.get("OpenStdin") or config.get("Tty"):
        raise RemoteError("invalid option: swarmmode: a Swarm mode service has no stdin and no terminal: "
                          "docker run -i/-t cannot run as a service (run it detached, or without -i/-t)")
    exprs = take_expressions(config)
    hc = config.get("HostConfig") if isinstance(config.get("HostConfig"), dict) else {}
    hc = hc or {}
    image = config.get("Image")
    if not isinstance(image, str) or not image:
        raise RemoteError("invalid reference format: no image")
    cs: dict[str, Any] = {"Image": image, "Labels": dict(config.get("Labels") or {})}
    if config.get("Entrypoint"):
        ep = config["Entrypoint"]
        cs["Command"] = ep if isinstance(ep, list) else [ep]
    if config.get("Cmd"):
        cmd = config["Cmd"]
        cs["Args"] = cmd if isinstance(cmd, list) else [cmd]
    for src, dst in (("Env", "Env"), ("WorkingDir", "Dir"), ("User", "User"), ("Hostname", "Hostname")):
        if config.get(src):
            cs[dst] = config[src]
    if hc.get("Init"):
        cs["Init"] = True
    limits = {k: v for k, v in (("NanoCPUs", hc.get("NanoCpus")), ("MemoryBytes", hc.get("Memory"))) if v}
    reserve = {"MemoryBytes": hc["MemoryReservation"]} if hc.get("MemoryReservation") else {}
    detached = not (config.get("AttachStdout") or config.get("AttachStderr"))
    spec: dict[str, Any] = {
        "Labels": dict(config.get("Labels") or {}),
        "TaskTemplate": {
            "ContainerSpec": cs,
            "Resources": {"Limits": limits, "Reservations": reserve},
            "RestartPolicy": restart_policy(hc),
            "Placement": {"Constraints": [swarm_constraint(e.text) for e in exprs if e.kind == "constraint"]},
        },
        "Mode": {"Replicated": {"Replicas": 1}} if detached else
                {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
    }
    spec["Labels"]["com.docker.libswarm.autoremove"] = "1" if hc.get("AutoRemove") else "0"
    if isinstance(config.get("name"), str) and config["name"]:
        spec["Name"] = config["name"].lstrip("/")
    return spec


class SwarmMode(Service):
    """A Swarm mode manager as a libswarm engine (see the module docstring)."""

    driver = "swarmmode"

    def __init__(self, *args: str) -> None:
        opts = parse_tls_options(list(args), "swarmmode")
        if len(opts.args) != 1:
            raise UsageError(f"swarmmode: usage: swarmmode URL [--tlsverify --tlscacert=F --tlscert=F --tlskey=F], "
                             f"got {len(opts.args)} arguments")
        self.url = opts.args[0]
        self.http = _HTTP(self.url, _client_ssl_context(opts, self.url), client_cert=bool(opts.tlscert))
        self.server = Server(self.driver)
        self.server.on_ls(self._ls).on_spawn(self._spawn).on_attach(self._attach)
        self.server.on_get(self._get).on_start(self._noop).on_stop(self._noop).on_watch(self._watch)
        self._objects: dict[str, _Container] = {}

    async def container(self, sid: str) -> Server:
        obj = self._objects.get(sid)  # one object per service, as long as this engine runs
        if obj is None:
            obj = self._objects[sid] = _Container(self, sid)
            await self.server.nursery.start(obj.server.run)
        return obj.server

    async def run(self, input: Any, output: Any) -> None:
        async with self.server:
            await self.server.serve(input)

    async def _noop(self, *args: Any) -> None:
        pass

    async def json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        _, data = await self.http.call(method, path, query, body)
        return json.loads(data) if data.strip() else None

    async def _services(self) -> list[dict[str, Any]]:
        services = await self.json("GET", "/services")
        return sorted(services or [], key=lambda s: str(s.get("CreatedAt", "")))

    async def tasks(self, service_id: str | None = None) -> list[dict[str, Any]]:
        query = {"filters": json.dumps({"service": [service_id]})} if service_id else None
        tasks = await self.json("GET", "/tasks", query)
        return sorted(tasks or [], key=lambda t: str(t.get("CreatedAt", "")))

    async def _ls(self, *args: Any) -> list[str]:
        return [str(s["Spec"].get("Name") or s["ID"]) for s in await self._services()]

    async def _get(self, *args: Any) -> Any:
        words = _words(args)
        if words == ["version"]:
            return (await self.http.call("GET", "/version"))[1].decode()
        if words == ["containers"]:
            services, tasks = await self._services(), await self.tasks()
            nodes = await self._nodes()
            entries = [_Container(self, s["ID"]).ps_entry(s, _task_of(s["ID"], tasks), nodes) for s in services]
            entries.sort(key=lambda e: int(e["Created"]), reverse=True)
            return json.dumps(entries)
        if words:
            raise RemoteError(f"unknown field: {' '.join(words)!r}")
        return (await self.http.call("GET", "/info"))[1].decode()

    async def _nodes(self) -> dict[str, dict[str, Any]]:
        try:
            return {n["ID"]: n for n in await self.json("GET", "/nodes") or []}
        except RemoteError:
            return {}

    async def _watch(self, req: Request) -> None:
        await relay_events(self.http, req)

    async def _spawn(self, *args: Any) -> Server:
        if len(args) != 1 or not _words(args)[0].lstrip().startswith("{"):
            raise RemoteError("swarmmode: Spawn takes Docker's create body (JSON)")
        try:
            config = json.loads(_words(args)[0])
        except ValueError as exc:
            raise RemoteError(f"invalid container config: {exc}") from None
        spec = service_spec(config)
        try:
            created = await self.json("POST", "/services/create", body=spec)
        except EngineError as exc:
            if exc.status == 409 or "already exists" in exc.text:
                raise RemoteError(f'Conflict. The container name "/{spec.get("Name")}" is already in use '
                                  f"(swarmmode: {exc.text})") from None
            raise
        sid = created["ID"]
        with trio.move_on_after(SPAWN_WAIT):
            while True:
                tasks = await self.tasks(sid)
                task = tasks[-1] if tasks else None
                err = str(((task or {}).get("Status") or {}).get("Err") or "")
                if "no suitable node" in err:
                    await self.http.request("DELETE", f"/services/{sid}")
                    raise RemoteError(f"swarmmode: {err}")
                if task is not None and str(task["Status"].get("State")) not in ("new", "allocated", "pending"):
                    break
                await trio.sleep(POLL)
        return await self.container(sid)

    async def resolve(self, ref: str) -> str:
        """The service id for a service name or id, task id or container id (or prefix)."""
        status, _, data = await self.http.request("GET", f"/services/{_quote(ref)}")
        if status == 200:
            return str((json.loads(data) or {}).get("ID"))
        if status not in (404,):
            raise EngineError(status, _message(data, status))
        hits = {t["ServiceID"] for t in await self.tasks()
                if len(ref) >= 4 and (str(t["ID"]).startswith(ref)
                                      or str(((t.get("Status") or {}).get("ContainerStatus") or {})
                                             .get("ContainerID") or "").startswith(ref))}
        if len(hits) == 1:
            return str(hits.pop())
        raise RemoteError(f"No such container: {ref}")

    async def _attach(self, name: str, req: Request) -> None:
        if not name:
            await req.ack(self.server)
            return
        sid = await self.resolve(name.lstrip("/"))
        await req.ack(await self.container(sid))


def _task_of(sid: str, tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    mine = [t for t in tasks if t.get("ServiceID") == sid]
    return mine[-1] if mine else None


def _epoch(stamp: str) -> float:
    if not stamp or stamp.startswith("0001"):
        return 0.0
    try:
        head, _, frac = stamp.rstrip("Z").partition(".")
        return time.mktime(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0." + (frac or "0"))
    except ValueError:
        return 0.0


class _Container:
    """One service (with its single task) as a container object."""

    def __init__(self, engine: SwarmMode, sid: str) -> None:
        self.engine = engine
        self.sid = sid
        self.server = Server(f"service {sid[:12]}")
        self.server.on_get(self._get).on_start(self._start).on_stop(self._stop)
        self.server.on_attach(self._attach).on_watch(self._watch).on_ls(self._ls)

    async def _ls(self, *args: Any) -> list[str]:
        return []

    async def _service(self) -> dict[str, Any]:
        status, _, data = await self.engine.http.request("GET", f"/services/{self.sid}")
        if status == 404:
            raise RemoteError(f"No such container: {self.sid}")
        if status != 200:
            raise EngineError(status, _message(data, status))
        service: dict[str, Any] = json.loads(data)
        return service

    async def inspect(self) -> dict[str, Any]:
        service = await self._service()
        task = _task_of(self.sid, await self.engine.tasks(self.sid))
        node = None
        if task and task.get("NodeID"):
            try:
                node = await self.engine.json("GET", f"/nodes/{task['NodeID']}")
            except RemoteError:
                node = None
        return self.inspect_of(service, task, node)

    def inspect_of(self, service: dict[str, Any], task: dict[str, Any] | None, node: dict[str, Any] | None) -> dict[str, Any]:
        spec = service.get("Spec") or {}
        tt = spec.get("TaskTemplate") or {}
        cs = tt.get("ContainerSpec") or {}
        st = (task or {}).get("Status") or {}
        cst = st.get("ContainerStatus") or {}
        labels = spec.get("Labels") or {}
        # Stopped (scaled to 0 by _stop) and its task already removed by the swarm: it
        # ended as the label _stop left says (it would look never started otherwise).
        stopped = task is None and ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") == 0
        ended: dict[str, Any] = {}
        if stopped:
            try:
                ended = dict(json.loads(labels.get(STOPPED_LABEL) or "{}"))
            except (ValueError, TypeError):
                ended = {}
            st = {"State": "shutdown", "Timestamp": ended.get("FinishedAt")}
            cst = {"ExitCode": ended.get("ExitCode")} if isinstance(ended.get("ExitCode"), int) else {}
        state = str(st.get("State") or "new")
        running = state == "running"
        if state in _ENDED:
            status = "exited"
        elif running:
            status = "running"
        else:
            status = "created"
        code = cst.get("ExitCode")
        if status == "exited" and code is None:
            code = 0 if state == "complete" else 137
        limits = (tt.get("Resources") or {}).get("Limits") or {}
        reserve = (tt.get("Resources") or {}).get("Reservations") or {}
        cmd = list(cs.get("Command") or []) + list(cs.get("Args") or [])
        stamp = str(st.get("Timestamp") or "0001-01-01T00:00:00Z")
        hostname = str(((node or {}).get("Description") or {}).get("Hostname") or "")
        node_state = str(((node or {}).get("Status") or {}).get("State") or "")
        host_down = running and node_state in _NODE_GONE  # last known running, on a node the swarm lost
        error = f"Host Down: node {hostname or (task or {}).get('NodeID', '')} is {node_state}" if host_down \
            else str(st.get("Err") or "")
        return {
            "Id": self.sid, "Name": "/" + str(spec.get("Name") or self.sid), "Created": service.get("CreatedAt"),
            "Path": cmd[0] if cmd else "", "Args": cmd[1:], "Image": cs.get("Image"),
            "Config": {"Image": cs.get("Image"), "Cmd": cs.get("Args"), "Entrypoint": cs.get("Command"),
                       "Env": cs.get("Env") or [], "Labels": cs.get("Labels") or {}, "WorkingDir": cs.get("Dir", ""),
                       "User": cs.get("User", ""), "Tty": False, "OpenStdin": False, "StdinOnce": False,
                       "AttachStdout": False, "AttachStderr": False},
            "State": {"Status": status, "Running": running, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": cst.get("PID") or 0, "ExitCode": code or 0,
                      "Error": error,
                      "StartedAt": stamp if running else "0001-01-01T00:00:00Z",
                      "FinishedAt": stamp if status == "exited" else "0001-01-01T00:00:00Z"},
            "HostConfig": {"AutoRemove": labels.get("com.docker.libswarm.autoremove") == "1",
                           "NanoCpus": limits.get("NanoCPUs", 0), "Memory": limits.get("MemoryBytes", 0),
                           "MemoryReservation": reserve.get("MemoryBytes", 0), "NetworkMode": "default"},
            "Node": {"ID": (task or {}).get("NodeID", ""), "Name": hostname,
                     "Addr": str(((node or {}).get("Status") or {}).get("Addr") or ""), "State": node_state},
            "Swarm": {"ServiceID": self.sid, "TaskID": (task or {}).get("ID", ""),
                      "ContainerID": cst.get("ContainerID", ""), "State": state, "Err": str(st.get("Err") or ""),
                      "Job": "ReplicatedJob" in (spec.get("Mode") or {})},
            "Driver": "swarmmode",
        }

    def ps_entry(self, service: dict[str, Any], task: dict[str, Any] | None,
                 nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
        node = nodes.get(str((task or {}).get("NodeID")))
        i = self.inspect_of(service, task, node)
        state = i["State"]
        if state["Status"] == "running" and i["Node"]["State"] in _NODE_GONE:
            text = "Host Down"  # as classic Swarm showed a container of an engine it had lost
        elif state["Status"] == "running":
            text = "Up"
        elif state["Status"] == "exited":
            text = f"Exited ({state['ExitCode']})"
        else:
            text = "Created"
        return {"Id": i["Id"], "Names": [i["Name"]], "Image": i["Image"], "ImageID": "",
                "Command": " ".join([i["Path"], *i["Args"]]), "Created": int(_epoch(str(i["Created"] or ""))),
                "Ports": [], "Labels": {**(i["Config"]["Labels"] or {}), "com.docker.swarm.node": i["Node"]["Name"],
                                        "com.docker.swarm.task.id": i["Swarm"]["TaskID"]},
                "State": state["Status"], "Status": text, "HostConfig": {"NetworkMode": "default"},
                "NetworkSettings": {"Networks": {}}, "Mounts": []}

    async def _get(self, *args: Any) -> Any:
        if args:
            raise RemoteError(f"swarmmode: unknown field: {' '.join(_words(args))!r}")
        return json.dumps(await self.inspect())

    async def _start(self, *args: Any) -> None:
        state = (await self.inspect())["State"]
        if state["Status"] == "exited":
            raise RemoteError(f"swarmmode: service {self.sid} has finished: a Swarm mode task cannot be started again")

    async def _stop(self, *args: Any) -> None:
        words = _words(args)
        service = await self._service()
        mode = (service.get("Spec") or {}).get("Mode") or {}
        if "rm" in words:
            if (await self.inspect())["State"]["Running"] and "force" not in words:
                raise RemoteError(f"You cannot remove a running container {self.sid}. Stop the container "
                                  "before attempting removal or force remove")
            await self.engine.http.call("DELETE", f"/services/{self.sid}")
            return
        if "Replicated" not in mode:  # a job: nothing to scale, it goes
            await self.engine.http.call("DELETE", f"/services/{self.sid}")
            return
        spec = dict(service["Spec"], Mode={"Replicated": {"Replicas": 0}})
        await self.engine.http.call("POST", f"/services/{self.sid}/update",
                                    {"version": service["Version"]["Index"]}, spec)
        info: dict[str, Any] = {}
        with trio.move_on_after(30):  # until the task is down (docker stop returns then)
            while (info := await self.inspect())["State"]["Running"]:
                await trio.sleep(POLL)
        state = info.get("State") or {}
        if state.get("Status") == "exited":
            # The swarm removes the task of a slot scaled away soon after it stopped: how
            # it ended stays on the service (STOPPED_LABEL), for inspect and ps.
            ended = stopped_label(state)
            try:
                service = await self._service()
                spec = dict(service["Spec"])
                spec["Labels"] = {**(spec.get("Labels") or {}), STOPPED_LABEL: ended}
                await self.engine.http.call("POST", f"/services/{self.sid}/update",
                                            {"version": service["Version"]["Index"]}, spec)
            except (RemoteError, EngineError) as exc:  # (best effort: it stopped all the same)
                log.info("swarmmode: could not record how service %s ended: %s", self.sid[:12], exc)

    async def _ended(self) -> None:
        while (await self.inspect())["State"]["Status"] != "exited":
            await trio.sleep(POLL)

    async def _attach(self, name: str, req: Request) -> None:
        if name:
            raise RemoteError("swarmmode: a service has no children")
        words = _words(req.args[1:])
        opts = {k: v for k, _, v in (w.partition("=") for w in words)}
        stream = "nostream" not in words and "logs" in words or "logs" not in words
        query: dict[str, Any] = {"stdout": 1, "stderr": 1, "tail": opts.get("tail"), "since": opts.get("since"),
                                 "timestamps": 1 if "timestamps" in words else None}
        await req.ack()
        sent = {"stdout": 0, "stderr": 0}

        async def relay(follow: bool) -> None:
            seen = {"stdout": 0, "stderr": 0}
            q = dict(query, follow=1 if follow else None)
            async with self.engine.http.open("GET", f"/services/{self.sid}/logs", q) as (status, _, chunks):
                if status != 200:
                    raise EngineError(status, _message(b"".join([c async for c in chunks]), status))
                async for tag, chunk in demux(chunks, tty=False):
                    new = chunk[max(0, sent[tag] - seen[tag]):] if seen[tag] < sent[tag] else chunk
                    seen[tag] += len(chunk)
                    if new:
                        await req.send(Verb.Log, tag, new)
                        sent[tag] += len(new)

        if stream:
            async with trio.open_nursery() as nursery:
                async def follow() -> None:
                    await relay(True)
                    nursery.cancel_scope.cancel()

                async def until_ended() -> None:
                    await self._ended()
                    await trio.sleep(0.5)  # the last lines on their way
                    nursery.cancel_scope.cancel()

                nursery.start_soon(follow)
                nursery.start_soon(until_ended)
        await relay(False)  # what the follow stream had not given yet (or all of it)

    async def _watch(self, req: Request) -> None:
        last = await self.inspect()
        await req.ack()
        await req.set("state", json.dumps(last))
        deadline = math.inf
        while True:
            await trio.sleep(POLL)
            try:
                now = await self.inspect()
            except RemoteError:
                await req.set("destroy", json.dumps(last))
                return
            if now["State"]["Status"] != last["State"]["Status"]:
                if now["State"]["Status"] == "running":
                    await req.set("start", json.dumps(now))
                elif now["State"]["Status"] == "exited":
                    await req.set("die", json.dumps(now))
                    if now["HostConfig"]["AutoRemove"]:
                        await self.engine.http.request("DELETE", f"/services/{self.sid}")
                        await req.set("destroy", json.dumps(now))
                        return
                    deadline = trio.current_time() + 1
            if trio.current_time() > deadline:
                return
            last = now
