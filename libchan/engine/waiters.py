"""Parking lots made on first use.

A trio ``ParkingLot`` is about 250 bytes; a connection, a session and every stream keep
several for waits that most of them never do (room to send, a drain, the first input...).
Until a task waits, such a field holds :data:`NO_WAITERS`, one empty lot shared by all:
waking it (``unpark_all``) does nothing and it is false, like an empty lot of one's own. A
task that waits parks in :func:`own_lot` of it instead, never in the shared lot.
"""

from __future__ import annotations

import trio

__all__ = ["NO_WAITERS", "own_lot"]

#: The shared empty lot (nobody ever parks in it).
NO_WAITERS = trio.lowlevel.ParkingLot()


def own_lot(lot: trio.lowlevel.ParkingLot) -> trio.lowlevel.ParkingLot:
    """``lot`` itself, or a new lot of one's own if ``lot`` is :data:`NO_WAITERS`:
    ``lot = self._x_lot = own_lot(self._x_lot); await lot.park()``."""
    return trio.lowlevel.ParkingLot() if lot is NO_WAITERS else lot
