"""What a container would be allowed to do: the facts the rules look at, from Docker JSON.

:func:`facts_of_create` reads a create body (``POST /containers/create``: ``Config`` fields at
the top, ``HostConfig`` inside, plus the libswarm ``"name"``); :func:`facts_of_inspect` reads
an inspect answer (``Config``, ``HostConfig``, ``Name``). Both give the same :class:`Facts`,
so one rule applies to the creation of a container and to every later request on it.
Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import Any

__all__ = ["Facts", "facts_of_create", "facts_of_inspect", "is_root_user", "normalize_cap"]

_NS_KEYS = {"pid_mode": "PidMode", "ipc_mode": "IpcMode", "network_mode": "NetworkMode",
            "uts_mode": "UTSMode", "userns_mode": "UsernsMode", "cgroupns_mode": "CgroupnsMode"}


@dataclasses.dataclass(frozen=True)
class Facts:
    """A container's settings that matter to a policy (see the module docstring)."""

    name: str = ""
    image: str = ""
    user: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()
    host_paths: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    volumes_from: tuple[str, ...] = ()
    readonly_rootfs: bool = False
    security_opt: tuple[str, ...] = ()
    modes: dict[str, str] = dataclasses.field(default_factory=dict)
    """``pid_mode``, ``ipc_mode``, ``network_mode``, ``uts_mode``, ``userns_mode``,
    ``cgroupns_mode``: the HostConfig value ("" when unset)."""

    @property
    def host_namespace(self) -> bool:
        return any(v == "host" for v in self.modes.values())

    @property
    def user_root(self) -> bool:
        return is_root_user(self.user)


def is_root_user(user: str) -> bool:
    """Whether a Docker ``User`` runs as root: empty (the image's default, taken as root: a
    policy cannot see inside the image), ``root``, ``0``, with any group."""
    who = user.split(":", 1)[0].strip()
    return who in ("", "root", "0")


def normalize_cap(cap: str) -> str:
    """``sys_admin``, ``CAP_SYS_ADMIN`` -> ``SYS_ADMIN`` (Docker accepts all three)."""
    c = cap.strip().upper()
    return c[4:] if c.startswith("CAP_") else c


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v is not None)
    return ()


def _mounts(host: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(host paths, named volumes)`` of ``Binds`` and ``Mounts``.

    A ``Binds`` source that is an absolute path is a host path, anything else a named volume.
    A ``Mounts`` entry of type ``bind`` is a host path; of type ``volume`` a named volume, and
    also a host path when its driver options bind a ``device`` (the local driver's
    ``type=none,o=bind,device=/path``, a bind mount in disguise). Host paths are normalized
    (``/srv/../etc`` is ``/etc``); they are compared as text, not resolved on the host.
    """
    paths: list[str] = []
    vols: list[str] = []
    for bind in _strs(host.get("Binds")):
        src = bind.split(":", 1)[0]
        if src.startswith("/"):
            paths.append(_host_path(src))
        elif src:
            vols.append(src)
    for m in host.get("Mounts") or ():
        if not isinstance(m, dict):
            continue
        kind = str(m.get("Type") or "volume").lower()
        src = str(m.get("Source") or "")
        if kind == "bind":
            paths.append(_host_path(src) if src.startswith("/") else src or "/")
        elif kind == "volume":
            if src:
                vols.append(src)
            opts = ((m.get("VolumeOptions") or {}).get("DriverConfig") or {}).get("Options") or {}
            device = opts.get("device") if isinstance(opts, dict) else None
            if isinstance(device, str) and device:
                paths.append(_host_path(device) if device.startswith("/") else device)
    return tuple(paths), tuple(vols)


def _host_path(path: str) -> str:
    """An absolute host path in the one form the engine resolves it to: ``..`` and
    ``.`` taken out, and one leading slash (``//etc`` is ``/etc`` to the engine, while
    ``posixpath.normpath`` keeps POSIX's two)."""
    return "/" + posixpath.normpath(path).lstrip("/")


def _facts(config: dict[str, Any], host: dict[str, Any], name: str) -> Facts:
    paths, vols = _mounts(host)
    devices = tuple(str(d.get("PathOnHost") or "") for d in host.get("Devices") or () if isinstance(d, dict))
    if host.get("DeviceRequests"):
        devices += tuple(f"request:{(d or {}).get('Driver') or 'gpu'}" for d in host["DeviceRequests"] if isinstance(d, dict))
    labels = config.get("Labels") or {}
    return Facts(
        name=name.lstrip("/"),
        image=str(config.get("Image") or ""),
        user=str(config.get("User") or ""),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        privileged=bool(host.get("Privileged")),
        cap_add=tuple(normalize_cap(c) for c in _strs(host.get("CapAdd"))),
        devices=devices,
        device_cgroup_rules=_strs(host.get("DeviceCgroupRules")),
        host_paths=paths,
        volumes=vols,
        volumes_from=_strs(host.get("VolumesFrom")),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        security_opt=_strs(host.get("SecurityOpt")),
        modes={k: str(host.get(v) or "") for k, v in _NS_KEYS.items()},
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def facts_of_create(body: dict[str, Any]) -> Facts:
    """The facts of a create body (with the libswarm ``"name"`` key, if any)."""
    return _facts(body, _dict(body.get("HostConfig")), str(body.get("name") or body.get("Name") or ""))


def facts_of_inspect(data: dict[str, Any]) -> Facts:
    """The facts of a container's inspect JSON."""
    return _facts(_dict(data.get("Config")), _dict(data.get("HostConfig")), str(data.get("Name") or ""))
