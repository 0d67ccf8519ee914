"""Docker JSON made from libswarm data: pure functions, no I/O.

``ps`` entries from inspect data (:func:`container_summary`), the bodies of ``/version``
and ``/info``, the defaults ``inspect`` adds, and Docker's ways of writing times and
durations.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import time
from typing import Any

from ..._errors import RemoteError
from .versions import API_VERSION, MIN_API_VERSION, VERSION

__all__ = [
    "parse_time", "human_duration", "truthy", "go_arch", "container_summary", "version_data", "info_data",
    "add_inspect_defaults", "has_inspect_defaults", "port_summary",
]


def parse_time(text: str) -> float:
    """Docker's RFC 3339 (nanoseconds allowed) -> seconds since the epoch (0 for the zero time)."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", text)
    if not m:
        return 0.0
    base = datetime.datetime.fromisoformat(m.group(1) + (m.group(3) or "Z").replace("Z", "+00:00"))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``, as ``docker ps`` prints it."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def truthy(value: str | None) -> bool:
    """A Docker boolean query parameter (``1``, ``true``...; absent, empty, ``0``, ``false``, ``no``: false)."""
    return value is not None and value.lower() not in ("", "0", "false", "no")


def go_arch() -> str:
    """This machine's architecture in Go's words (``amd64``, ``arm64``...)."""
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def container_summary(data: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The ``GET /containers/json`` entry for inspect ``data``, listed as ``name``."""
    state = data.get("State") or {}
    config = data.get("Config") or {}
    status = state.get("Status") or ("running" if state.get("Running") else "exited")
    now = time.time()
    if status in ("running", "paused"):
        text = "Up " + human_duration(now - parse_time(state.get("StartedAt", "")))
        text += " (Paused)" if status == "paused" else ""
    elif status == "exited" and parse_time(state.get("FinishedAt", "")):
        text = f"Exited ({state.get('ExitCode', 0)}) {human_duration(now - parse_time(state['FinishedAt']))} ago"
    elif status == "exited":
        text = f"Exited ({state.get('ExitCode', 0)})"
    else:
        text = status.capitalize()
    command = " ".join([data.get("Path") or ""] + list(data.get("Args") or [])).strip()
    return {
        "Id": data.get("Id", ""),
        "Names": ["/" + name.lstrip("/") if name else data.get("Name") or ""],
        "Image": config.get("Image") or data.get("Image", ""),
        "ImageID": data.get("Image", ""),
        "Command": command,
        "Created": int(parse_time(data.get("Created", ""))),
        "Ports": port_summary((data.get("NetworkSettings") or {}).get("Ports") or {}),
        "Labels": config.get("Labels") or {},
        "State": status,
        "Status": text,
        "HostConfig": {"NetworkMode": (data.get("HostConfig") or {}).get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": (data.get("NetworkSettings") or {}).get("Networks") or {}},
        "Mounts": data.get("Mounts") or [],
    }


def port_summary(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """Inspect's ``NetworkSettings.Ports`` -> the ``Ports`` of a ``docker ps`` entry."""
    out: list[dict[str, Any]] = []
    for key, bindings in ports.items() if isinstance(ports, dict) else ():
        number, _, kind = str(key).partition("/")
        if not number.isdigit():
            continue
        if not bindings:
            out.append({"PrivatePort": int(number), "Type": kind or "tcp"})
        for b in bindings or ():
            host_port = str(b.get("HostPort") or "0")
            out.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(number),
                        "PublicPort": int(host_port) if host_port.isdigit() else 0, "Type": kind or "tcp"})
    return out


def has_inspect_defaults(data: dict[str, Any]) -> bool:
    """Whether :func:`add_inspect_defaults` would leave ``data`` as it is."""
    ns, state = data.get("NetworkSettings"), data.get("State")
    return (all(k in data for k in ("Mounts", "RestartCount", "Platform", "HostConfig")) and isinstance(ns, dict)
            and "Ports" in ns and "Networks" in ns
            and (not isinstance(state, dict) or ("OOMKilled" in state and "Dead" in state)))


def add_inspect_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Add (in place) the inspect fields the docker CLI expects and an engine may lack; return ``data``."""
    data.setdefault("Mounts", [])
    data.setdefault("RestartCount", 0)
    data.setdefault("Platform", "linux")
    data.setdefault("HostConfig", {})
    ns = data.setdefault("NetworkSettings", {})
    if isinstance(ns, dict):
        ns.setdefault("Ports", {})
        ns.setdefault("Networks", {})
    state = data.get("State")
    if isinstance(state, dict):
        state.setdefault("OOMKilled", False)
        state.setdefault("Dead", False)
    return data


def version_data() -> dict[str, Any]:
    """The body of ``GET /version``."""
    details = {
        "ApiVersion": API_VERSION, "Arch": go_arch(), "BuildTime": "2014-08-01T00:00:00.000000000+00:00",
        "Experimental": "false", "GitCommit": "libswarm", "GoVersion": "python" + platform.python_version(),
        "KernelVersion": platform.release(), "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
    }
    return {
        "Platform": {"Name": "libswarm dockerserver"},
        "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
        "Version": VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "libswarm", "GoVersion": details["GoVersion"], "Os": "linux", "Arch": go_arch(),
        "KernelVersion": platform.release(), "BuildTime": details["BuildTime"],
    }


def info_data(engine: dict[str, Any]) -> dict[str, Any]:
    """The body of ``GET /info`` for an engine whose ``Get()`` data (with the counts) is ``engine``."""
    driver = str(engine.get("Driver", "libswarm"))
    status = [["Backend", driver]]
    for child in engine.get("Children") or ():  # an aggregate: each child's state
        if isinstance(child, dict):
            status.append([f"child {child.get('Label')} ({child.get('Spec')})", str(child.get("State", "up"))])
    return {
        "ID": "libswarm", "Containers": engine["Containers"], "ContainersRunning": engine["ContainersRunning"],
        "ContainersPaused": 0, "ContainersStopped": engine.get("ContainersStopped",
                                                               engine["Containers"] - engine["ContainersRunning"]),
        "Images": int(engine.get("Images") or 0), "Driver": driver, "DriverStatus": status,
        "Plugins": {"Volume": [], "Network": [], "Authorization": None, "Log": []},
        "MemoryLimit": False, "SwapLimit": False, "KernelMemory": False, "CpuCfsPeriod": False,
        "CpuCfsQuota": False, "CPUShares": False, "CPUSet": False, "PidsLimit": False,
        "IPv4Forwarding": False, "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": False,
        "NFd": 0, "OomKillDisable": False, "NGoroutines": 0,
        "SystemTime": datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
        "LoggingDriver": "libswarm", "CgroupDriver": "none", "CgroupVersion": "1", "NEventsListener": 0,
        "KernelVersion": platform.release(), "OperatingSystem": "libswarm", "OSVersion": "",
        "OSType": "linux", "Architecture": platform.machine(), "IndexServerAddress": "",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": [], "IndexConfigs": {}, "Mirrors": None},
        "NCPU": os.cpu_count() or 1, "MemTotal": 0, "GenericResources": None, "DockerRootDir": "",
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": platform.node(), "Labels": [],
        "ExperimentalBuild": False, "ServerVersion": VERSION, "Runtimes": {}, "DefaultRuntime": "libswarm",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": [], "Warnings": None,
    }


def exec_config(args: tuple[Any, ...]) -> Any:
    """The exec create body of a container's ``Spawn(exec_config_json)`` (spec/LIBSWARM.md
    6.3), parsed; ``RemoteError`` for another number of arguments or JSON that does not parse."""
    if len(args) != 1:
        raise RemoteError("exec: Spawn takes exactly 1 argument (Docker's exec create body)")
    try:
        return json.loads(args[0])
    except (TypeError, ValueError) as exc:
        raise RemoteError(f"invalid exec config: {exc}") from None
