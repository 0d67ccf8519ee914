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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["BURST_SECONDS", "FloodGuard", "FloodLimits", "TokenBucket", "PING", "RESET", "STREAM", "EMPTY"]

#: A bucket holds this many seconds' worth of its rate (the burst allowed at once).
BURST_SECONDS = 10

#: The kinds of frames counted.
PING = "ping"  # PING and SETTINGS that ask for an answer (not ACKs)
RESET = "reset"  # RST_STREAM received
STREAM = "stream"  # streams the peer opens
EMPTY = "empty"  # DATA without data or END_STREAM, WINDOW_UPDATE, PRIORITY, unknown frames


class TokenBucket:
    """``capacity`` tokens at most, refilled at ``rate`` per second of ``now``."""

    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float, now: float = 0.0) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens at time ``now``; False (nothing taken) if there are fewer."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def give(self, n: float) -> None:
        """Add ``n`` tokens (up to the capacity), whatever the time."""
        self.tokens = min(self.capacity, self.tokens + n)


@dataclass(frozen=True)
class FloodLimits:
    """Sustained rates per second of one connection (bursts: ``BURST_SECONDS`` times them)."""

    pings: int = 10
    resets: int = 1000
    streams: int = 5000
    empty: int = 1000

    @classmethod
    def of(cls, config: Config) -> FloodLimits:
        """The flood limits of one connection (spec 14.2) from ``config``."""
        return cls(
            pings=config.max_ping_rate,
            resets=config.max_reset_rate,
            streams=config.max_stream_rate,
            empty=config.max_empty_frame_rate,
        )


class FloodGuard:
    """The buckets of one connection. :meth:`allow` says whether one more frame of a
    kind is within its rate; once one is not, :attr:`tripped` names the flood."""

    __slots__ = ("_buckets", "tripped", "_limits")

    def __init__(self, limits: FloodLimits, now: float = 0.0) -> None:
        self._limits = limits
        self._buckets = {
            kind: TokenBucket(rate, rate * BURST_SECONDS, now)
            for kind, rate in ((PING, limits.pings), (RESET, limits.resets), (STREAM, limits.streams), (EMPTY, limits.empty))
        }
        #: Why the guard tripped (None while it has not).
        self.tripped: str | None = None

    def allow(self, kind: str, now: float) -> bool:
        if self._buckets[kind].take(now):
            return True
        rate = getattr(self._limits, {PING: "pings", RESET: "resets", STREAM: "streams", EMPTY: "empty"}[kind])
        self.tripped = (
            f"{_NAMES[kind]} flood: more than {rate * BURST_SECONDS} at once or {rate} per second"
        )
        return False

    def data_sent(self, frames: int = 1) -> None:
        """We sent ``frames`` DATA frames: a peer may acknowledge each with a
        WINDOW_UPDATE on the stream and one on the connection."""
        self._buckets[EMPTY].give(2 * frames)


_NAMES = {
    PING: "PING/SETTINGS",
    RESET: "RST_STREAM",
    STREAM: "new stream",
    EMPTY: "empty frame (empty DATA, WINDOW_UPDATE, PRIORITY, unknown type)",
}
