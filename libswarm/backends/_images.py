"""The simulator's image store: synthetic images with Docker's names, ids and errors.

An image has an id (``sha256:`` + 64 hex digits), a creation time, a size and a set of
tags (``repo:tag``). References are resolved as Docker does: ``repo`` means
``repo:latest``; ``docker.io/library/x`` and ``docker.io/x`` are ``x``; a full id
(with or without ``sha256:``) or a unique id prefix names the image itself. Pure data, no I/O: the simulator calls it from its verb handlers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .._container import now
from .._errors import RemoteError
from ._docker.formats import parse_time

__all__ = ["ImageStore", "Image", "normalize", "BUILTIN"]

BUILTIN = ("busybox:latest", "alpine:latest", "local/busybox:latest")
"""The images every simulator starts with (``local/busybox`` is what the test dockerds import)."""


def normalize(ref: str) -> str:
    """``busybox`` -> ``busybox:latest``; ``docker.io/library/x:1`` -> ``x:1``; a digest is kept."""
    name = ref.strip()
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if "@" in name:
        return name
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


def _valid(ref: str) -> bool:
    name = normalize(ref)
    repo = name.split("@", 1)[0].rsplit(":", 1)[0] if "@" not in name else name.split("@", 1)[0]
    return bool(repo) and repo == repo.lower() and all(
        part and all(ch.isalnum() or ch in "._-" for ch in part) for part in repo.split("/")
    )


class Image:
    """One synthetic image."""

    def __init__(self, ref: str, size: int = 1_234_567) -> None:
        self.id = "sha256:" + hashlib.sha256(("libswarm simulator image " + ref).encode()).hexdigest()
        self.tags: list[str] = [ref]
        self.created = now()
        self.size = size

    @property
    def short(self) -> str:
        return self.id[len("sha256:"):][:12]

    def digests(self) -> list[str]:
        """``repo@sha256:...`` for each repository it is tagged in."""
        digest = "sha256:" + hashlib.sha256(self.id.encode()).hexdigest()
        repos = sorted({t.rsplit(":", 1)[0] for t in self.tags})
        return [f"{r}@{digest}" for r in repos]

    def summary(self) -> dict[str, Any]:
        """The ``GET /images/json`` entry."""
        return {
            "Containers": -1, "Created": int(parse_time(self.created)), "Id": self.id, "Labels": None,
            "ParentId": "", "RepoDigests": self.digests(), "RepoTags": list(self.tags), "SharedSize": -1,
            "Size": self.size, "VirtualSize": self.size,
        }

    def inspect(self) -> dict[str, Any]:
        """The ``GET /images/R/json`` body."""
        config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                  "Cmd": ["sh"], "Image": "", "Labels": None, "Entrypoint": None, "WorkingDir": "", "User": ""}
        return {
            "Id": self.id, "RepoTags": list(self.tags), "RepoDigests": self.digests(), "Parent": "",
            "Comment": "libswarm simulator image", "Created": self.created, "Container": "",
            "ContainerConfig": {}, "DockerVersion": "", "Author": "", "Config": config,
            "Architecture": "amd64", "Os": "linux", "Size": self.size, "VirtualSize": self.size,
            "GraphDriver": {"Data": None, "Name": "simulator"},
            "RootFS": {"Type": "layers", "Layers": ["sha256:" + hashlib.sha256(self.id.encode()).hexdigest()]},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }


class ImageStore:
    """The images of one simulator, by id, in creation order."""

    def __init__(self, refs: tuple[str, ...] = BUILTIN) -> None:
        self.images: dict[str, Image] = {}
        for r in refs:
            self.add(normalize(r))

    def add(self, ref: str) -> Image:
        img = Image(ref)
        self.images[img.id] = img
        return img

    def find(self, ref: str) -> Image | None:
        """The image ``ref`` names (tag, id, ``sha256:`` id, unique id prefix), or None."""
        wanted = normalize(ref)
        for img in self.images.values():
            if wanted in img.tags or ref in img.digests():
                return img
        hexid = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
        if hexid and all(c in "0123456789abcdef" for c in hexid):
            matches = [i for i in self.images.values() if i.id[len("sha256:"):].startswith(hexid)]
            if len(matches) == 1:
                return matches[0]
        return None

    def get(self, ref: str) -> Image:
        """The image ``ref`` names; ``Error("No such image: ...")`` (Docker's words) if none."""
        img = self.find(ref)
        if img is None:
            raise RemoteError(f"No such image: {normalize(ref)}")
        return img

    def pull(self, ref: str) -> Image:
        """Any name "exists" in the simulator's registry: add it (or keep the one there)."""
        if not _valid(ref):
            raise RemoteError(f"invalid reference format: repository name must be lowercase: {ref}"
                              if ref != ref.lower() else f"invalid reference format: {ref}")
        name = normalize(ref)
        img = self.find(name)
        if img is not None and name in img.tags:
            return img
        self._untag_everywhere(name)
        return self.add(name)

    def tag(self, source: str, target: str) -> None:
        img = self.get(source)
        if not _valid(target):
            raise RemoteError(f"invalid reference format: {target}")
        name = normalize(target)
        self._untag_everywhere(name)
        img.tags.append(name)

    def _untag_everywhere(self, name: str) -> None:
        """A tag names one image: moving it leaves the old image untagged (kept, as ``<none>``)."""
        for other in self.images.values():
            if name in other.tags:
                other.tags.remove(name)

    def remove(self, ref: str, force: bool, users: list[str]) -> list[dict[str, str]]:
        """``docker rmi``: untag ``ref``; delete the image when no tag is left. ``users`` are the
        ids of the containers created from this image (a conflict unless ``force``).
        Returns Docker's ``[{"Untagged": ...}, {"Deleted": ...}]``."""
        img = self.get(ref)
        name = normalize(ref)
        by_tag = name in img.tags
        if users and not force and (not by_tag or len(img.tags) == 1):
            if by_tag:
                raise RemoteError(f'conflict: unable to remove repository reference "{ref}" (must force) - '
                                  f"container {users[0][:12]} is using its referenced image {img.short}")
            raise RemoteError(f"conflict: unable to delete {img.short} (must be forced) - image is being "
                              f"used by stopped container {users[0][:12]}")
        if by_tag and len(img.tags) > 1:
            img.tags.remove(name)
            return [{"Untagged": name}]
        if not by_tag and len(img.tags) > 1 and not force:
            raise RemoteError(f"conflict: unable to delete {img.short} (must be forced) - image is referenced "
                              "in multiple repositories")
        done = [{"Untagged": t} for t in img.tags] + [{"Deleted": img.id}]
        del self.images[img.id]
        return done
