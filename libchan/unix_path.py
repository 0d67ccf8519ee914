"""The file of a listening unix socket: made stale-free at start, removed at the end only
if it is still ours (another server may have taken the path over meanwhile)."""

from __future__ import annotations

import os
import stat

__all__ = ["clear_stale_socket", "path_identity", "remove_if_ours"]


def clear_stale_socket(path: str) -> None:
    """Remove a socket file left at ``path`` by an earlier run (anything else is kept:
    binding then fails with a clear error)."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def path_identity(path: str) -> tuple[int, int] | None:
    """``(device, inode)`` of the file at ``path`` (None if there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def remove_if_ours(path: str, ours: tuple[int, int] | None) -> None:
    """Remove ``path`` if it is still the file we bound (``ours``, from :func:`path_identity`
    right after the bind), not one another process bound there since."""
    if ours is not None and path_identity(path) == ours:
        try:
            os.unlink(path)
        except OSError:
            pass
