"""Sans-IO flood detection: token buckets per kind of frame a peer can repeat at no cost.

A peer can make an endpoint work without sending anything useful: PINGs and SETTINGS
that must be answered (CVE-2019-9512, CVE-2019-9515), streams opened and reset at once
(rapid reset, CVE-2023-44487), streams opened and closed as fast as the link allows
(churn), RST_STREAMs (CVE-2019-9514), and frames that carry nothing -- empty DATA,
WINDOW_UPDATE, PRIORITY, unknown frame types (CVE-2019-9518). Each kind has a token
bucket of ``10 * rate`` tokens refilled at ``rate`` per second; a frame of that kind takes
one token, and a frame that finds its bucket empty is a flood: the multiplexer ends the
connection with GOAWAY(ENHANCE_YOUR_CALM), as nghttp2, Go and nginx do since 2023.

Nothing here reads a clock: the caller passes ``now`` (seconds, any origin, not
decreasing). The rates are ``Config`` fields (spec/PROTOCOL.md section 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["BURST_SECONDS", "FloodGuard", "FloodLimits", "PING", "RESET", "STREAM", "EMPTY"]

#: A bucket holds this many seconds' worth of its rate (the burst allowed at once).
BURST_SECONDS = 10

#: The kinds of frames counted.
PING = "ping"  # PING and SETTINGS that ask for an answer (not ACKs)
RESET = "reset"  # RST_STREAM received
STREAM = "stream"  # streams the peer opens
EMPTY = "empty"  # DATA without data or END_STREAM, WINDOW_UPDATE, PRIORITY, unknown frames


@dataclass(frozen=True)
class FloodLimits:
    """Sustained rates per second of one connection (bursts: ``BURST_SECONDS`` times them)."""

    pings: int = 10
    resets: int = 1000
    streams: int = 5000
    empty: int = 1000

    @classmethod
    def of(cls, config: Config) -> FloodLimits:
        """The flood limits of one connection (spec 14.2) from ``config`` (one object
        for all the connections with the same limits)."""
        return _limits(config.max_ping_rate, config.max_reset_rate, config.max_stream_rate, config.max_empty_frame_rate)


@lru_cache(maxsize=64)
def _limits(pings: int, resets: int, streams: int, empty: int) -> FloodLimits:
    return FloodLimits(pings=pings, resets=resets, streams=streams, empty=empty)


#: Each kind's bucket (an attribute of FloodGuard) and rate (a field of FloodLimits).
_KINDS = {PING: ("_ping", "pings"), RESET: ("_reset", "resets"), STREAM: ("_stream", "streams"), EMPTY: ("_empty", "empty")}
#: (The rounding of many small steps: at most a millionth of a second's worth of frames more.)
_SLACK = 1e-6


class FloodGuard:
    """The token buckets of one connection, one per kind of frame. :meth:`allow` says
    whether one more frame of a kind is within its rate; once one is not,
    :attr:`tripped` names the flood.

    A bucket of ``rate * BURST_SECONDS`` tokens refilled at ``rate`` per second is kept
    as one number, the time at which it is full again (the generic cell rate algorithm:
    at ``now`` it holds ``(BURST_SECONDS - max(0, full_at - now)) * rate`` tokens, and a
    frame moves ``full_at`` a ``1 / rate`` later), so that the guard of an idle
    connection is one small object."""

    __slots__ = ("_limits", "tripped", "_ping", "_reset", "_stream", "_empty")

    def __init__(self, limits: FloodLimits, now: float = 0.0) -> None:
        self._limits = limits
        self._ping = self._reset = self._stream = self._empty = now  # (full from the start)
        #: Why the guard tripped (None while it has not).
        self.tripped: str | None = None

    def allow(self, kind: str, now: float) -> bool:
        slot, field = _KINDS[kind]
        rate: int = getattr(self._limits, field)
        full_at: float = getattr(self, slot)
        if full_at < now:
            full_at = now
        full_at += 1.0 / rate
        if full_at - now <= BURST_SECONDS + _SLACK:
            setattr(self, slot, full_at)
            return True
        self.tripped = (
            f"{_NAMES[kind]} flood: more than {rate * BURST_SECONDS} at once or {rate} per second"
        )
        return False

    def data_sent(self, frames: int = 1) -> None:
        """We sent ``frames`` DATA frames: a peer may acknowledge each with a
        WINDOW_UPDATE on the stream and one on the connection (that many tokens back,
        up to a full bucket: ``allow`` never counts a bucket fuller than full)."""
        self._empty -= 2 * frames / self._limits.empty


_NAMES = {
    PING: "PING/SETTINGS",
    RESET: "RST_STREAM",
    STREAM: "new stream",
    EMPTY: "empty frame (empty DATA, WINDOW_UPDATE, PRIORITY, unknown type)",
}
