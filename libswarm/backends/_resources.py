"""The simulator's ports, mounts, volumes and networks: Docker's shapes, no I/O.

* Ports: a create body's ``HostConfig.PortBindings`` (``docker run -p``), ``ExposedPorts``
  and ``PublishAllPorts`` (``-P``) become, while the container runs, inspect's
  ``NetworkSettings.Ports`` (``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}``; an
  empty host port is given one from 49153 up, as Docker's ephemeral range does) and the
  ``Ports`` of its ``docker ps`` entry.
* Mounts: ``HostConfig.Binds`` (``-v /src:/dst[:ro]``, ``-v NAME:/dst``), ``HostConfig.Mounts``
  (``--mount``) and ``Config.Volumes`` (``-v /dst``: an anonymous volume) become inspect's
  ``Mounts``; named and anonymous volumes are kept in :class:`Volumes` (``docker volume ls``).
* Networks: ``bridge``, ``host`` and ``none``, as a fresh dockerd has them.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from typing import Any

from .._container import now

__all__ = ["Ports", "Volumes", "mounts_for", "NETWORKS", "network_list"]

VOLUME_ROOT = "/var/lib/docker/volumes"


class Ports:
    """Host ports handed out for ``-p CONTAINER`` and ``-P`` (one engine's)."""

    def __init__(self) -> None:
        self._next = itertools.count(49153)

    def bind(self, config: dict[str, Any]) -> dict[str, Any]:
        """``NetworkSettings.Ports`` for a container starting with create body ``config``."""
        host = config.get("HostConfig") or {}
        exposed = set((config.get("ExposedPorts") or {}).keys())
        bindings = host.get("PortBindings") or {}
        ports: dict[str, Any] = {}
        for port in sorted(exposed | set(bindings)):
            key = port if "/" in port else port + "/tcp"
            wanted = bindings.get(port) or ([{}] if host.get("PublishAllPorts") else None)
            if not wanted:
                ports[key] = None
                continue
            ports[key] = [{"HostIp": b.get("HostIp") or "0.0.0.0",
                           "HostPort": str(b.get("HostPort") or next(self._next))} for b in wanted]
        return ports


class Volumes:
    """The engine's volumes (``docker volume ls``): made by the containers that name them."""

    def __init__(self) -> None:
        self.volumes: dict[str, dict[str, Any]] = {}

    def get(self, name: str | None = None) -> dict[str, Any]:
        """The volume ``name`` (created if new); no name: a new anonymous one."""
        name = name or hashlib.sha256(secrets.token_bytes(16)).hexdigest()
        if name not in self.volumes:
            self.volumes[name] = {"Name": name, "Driver": "local", "Mountpoint": f"{VOLUME_ROOT}/{name}/_data",
                                  "CreatedAt": now(), "Labels": None, "Scope": "local", "Options": None}
        return self.volumes[name]

    def listing(self) -> dict[str, Any]:
        """The body of ``GET /volumes``."""
        return {"Volumes": [dict(v) for v in self.volumes.values()], "Warnings": None}


def _volume_mount(volumes: Volumes, name: str | None, dst: str, rw: bool) -> dict[str, Any]:
    v = volumes.get(name)
    return {"Type": "volume", "Name": v["Name"], "Source": v["Mountpoint"], "Destination": dst,
            "Driver": "local", "Mode": "z" if name else "", "RW": rw, "Propagation": ""}


def mounts_for(config: dict[str, Any], volumes: Volumes) -> list[dict[str, Any]]:
    """Inspect's ``Mounts`` for create body ``config`` (registering the volumes it uses)."""
    host = config.get("HostConfig") or {}
    mounts: list[dict[str, Any]] = []
    for bind in host.get("Binds") or ():
        parts = str(bind).split(":")
        if len(parts) < 2:
            continue
        src, dst, mode = parts[0], parts[1], ":".join(parts[2:])
        rw = "ro" not in mode.split(",")
        if src.startswith("/"):
            mounts.append({"Type": "bind", "Source": src, "Destination": dst, "Mode": mode, "RW": rw,
                           "Propagation": "rprivate"})
        else:
            mounts.append(_volume_mount(volumes, src, dst, rw))
    for m in host.get("Mounts") or ():
        if not isinstance(m, dict):
            continue
        rw = not m.get("ReadOnly")
        if m.get("Type") == "volume":
            mounts.append(_volume_mount(volumes, m.get("Source") or None, str(m.get("Target") or ""), rw))
        else:
            mounts.append({"Type": m.get("Type") or "bind", "Source": m.get("Source") or "",
                           "Destination": m.get("Target") or "", "Mode": "", "RW": rw, "Propagation": "rprivate"})
    taken = {m["Destination"] for m in mounts}
    for dst in (config.get("Volumes") or {}):
        if dst not in taken:
            mounts.append(_volume_mount(volumes, None, dst, True))
    return mounts


def _network(name: str, driver: str, subnet: str | None) -> dict[str, Any]:
    ipam = {"Driver": "default", "Options": None, "Config": [{"Subnet": subnet}] if subnet else []}
    return {"Name": name, "Id": hashlib.sha256(b"libswarm simulator network " + name.encode()).hexdigest(),
            "Created": "2014-08-01T00:00:00.000000000Z", "Scope": "local", "Driver": driver,
            "EnableIPv6": False, "IPAM": ipam, "Internal": False, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {}}


NETWORKS = (("bridge", "bridge", "172.17.0.0/16"), ("host", "host", None), ("none", "null", None))
"""The networks a fresh dockerd has: ``(name, driver, subnet)``."""


def network_list() -> list[dict[str, Any]]:
    """The body of ``GET /networks`` for the simulator."""
    return [_network(*n) for n in NETWORKS]
