"""Everything libchan does with ``h2``'s internals, each behind a probe.

``h2`` 4.x is what this was written for (pyproject bounds it). The public h2 API is
used everywhere else; what follows reads or writes h2's private state:

* :class:`DataFastPath`: DATA frames beside ``h2``, the per-frame bookkeeping
  without h2's per-frame objects (probe: :meth:`DataFastPath.usable`);
* :func:`limit_closed_streams`: a shorter memory of closed streams;
* :func:`raise_stream_limit`: h2's own MAX_CONCURRENT_STREAMS check moved above
  the advertised value (the multiplexer answers the excess with REFUSED_STREAM,
  counting with :class:`StreamCounter`);
* :class:`PeerCountedH2Connection`: h2's connection whose counts of open streams
  (a pass over all streams for every stream opened: quadratic in the streams of a
  connection) come from a :class:`StreamCounter`, which keeps the ids of the open
  streams (dicts used as sets) and prunes closed streams from h2's table as h2's count
  does;
* :class:`SharedDispatchH2Connection`: that connection without a dict of bound
  methods of its own for dispatching received frames (probe:
  :meth:`SharedDispatchH2Connection.usable`);
* :class:`CompactSettings`: h2's settings, each settled value kept as an int and a
  changing one's values in a short list, instead of a ``deque`` each (probe:
  :meth:`CompactSettings.usable`).

DATA frames beside ``h2``:

``h2`` builds a frame object, runs two state machines, logs (with an eager
``repr``) and copies the payload twice for every DATA frame, in both
directions: for a latency-bound exchange of small messages that is a third of
the work. :class:`DataFastPath` does, for the plain DATA frames that make up
nearly all traffic (no padding, no END_STREAM, on a stream in a state that
allows them, within both flow-control windows), exactly the accounting h2
would do -- the same window counters and content-length counter, in h2's own
objects -- and the caller writes or reads the 9-byte frame header itself.
It knows h2's objects only, not the frame layout (``spdy_like/h2frames.py``).
Every other frame, and any DATA frame that does not qualify (which includes
every error case: unknown or closed stream, window exceeded, DATA before
HEADERS, a declared content-length), goes through h2 unchanged, so h2 still
enforces the whole protocol.

It relies on h2 internals (stream and window-manager attributes of h2 4.x);
:meth:`DataFastPath.usable` checks them once and the multiplexer falls back to
plain h2 when they are missing.
"""

from __future__ import annotations

import collections
from typing import Any, cast

import h2.connection
import h2.settings
import h2.stream
import h2.windows

__all__ = [
    "CompactSettings", "DataFastPath", "PeerCountedH2Connection", "SharedDispatchH2Connection", "StreamCounter",
    "limit_closed_streams",
    "make_settings", "raise_stream_limit",
]

_CONN_OPEN = (h2.connection.ConnectionState.CLIENT_OPEN, h2.connection.ConnectionState.SERVER_OPEN)
_SEND_STATES = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE)
_RECV_STATES = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_LOCAL)


#: What h2's stream objects must set for the fast path to read them directly.
_STREAM_ATTRIBUTES = {"state_machine", "outbound_flow_control_window", "_inbound_window_manager",
                      "_expected_content_length", "_actual_content_length"}


class DataFastPath:
    """Send/receive accounting of plain DATA frames on an ``h2.connection.H2Connection``."""

    def __init__(self, conn: h2.connection.H2Connection) -> None:
        self._conn = conn
        # (None only when usable() is False, and then the fast path is never used)
        self._conn_window = cast(
            h2.windows.WindowManager, getattr(conn, "_inbound_flow_control_window_manager", None)
        )

    @classmethod
    def usable(cls, conn: h2.connection.H2Connection) -> bool:
        """True if this h2 has the internals the fast path keeps in step."""
        stream_init = getattr(getattr(h2.stream.H2Stream, "__init__", None), "__code__", None)
        machine_init = getattr(getattr(h2.stream.H2StreamStateMachine, "__init__", None), "__code__", None)
        return (
            stream_init is not None
            and machine_init is not None
            and _STREAM_ATTRIBUTES <= set(stream_init.co_names)
            and "headers_received" in machine_init.co_names
            and isinstance(getattr(conn, "streams", None), dict)
            and hasattr(getattr(conn, "_inbound_flow_control_window_manager", None), "current_window_size")
            and hasattr(conn, "outbound_flow_control_window")
            and hasattr(getattr(conn, "state_machine", None), "state")
            and isinstance(getattr(conn, "_data_to_send", None), (bytearray, bytes))
        )

    def h2_output_queued(self) -> bool:
        """True if h2 has output of its own queued (its buffer, read directly)."""
        return bool(self._conn._data_to_send)

    def sendable(self, stream_id: int) -> int | None:
        """Bytes of DATA the windows and the frame size allow now (None: ask h2)."""
        conn = self._conn
        stream = conn.streams.get(stream_id)
        if stream is None:
            return None
        return max(0, min(stream.outbound_flow_control_window, conn.outbound_flow_control_window, conn.max_outbound_frame_size))

    def send(self, stream_id: int, length: int) -> bool:
        """Account for sending ``length`` bytes of DATA on ``stream_id`` (the caller
        writes the frame, header and all); False if h2 must send this frame."""
        conn = self._conn
        stream = conn.streams.get(stream_id)
        if (
            stream is None
            or length <= 0
            or conn.state_machine.state not in _CONN_OPEN
            or stream.state_machine.state not in _SEND_STATES
            or length > stream.outbound_flow_control_window
            or length > conn.outbound_flow_control_window
            or length > conn.max_outbound_frame_size
        ):
            return False
        stream.outbound_flow_control_window -= length
        conn.outbound_flow_control_window -= length
        return True

    def receive(self, stream_id: int, length: int) -> bool:
        """Account for a received DATA frame (no flags) of ``length`` bytes if it
        qualifies; False means h2 must process it."""
        conn = self._conn
        stream = conn.streams.get(stream_id)
        if stream is None or conn.state_machine.state not in _CONN_OPEN:
            return False
        machine = stream.state_machine
        window = stream._inbound_window_manager
        conn_window = self._conn_window
        if (
            machine.state not in _RECV_STATES
            or not machine.headers_received
            or stream._expected_content_length is not None
            or length > window.current_window_size
            or length > conn_window.current_window_size
        ):
            return False
        window.current_window_size -= length
        conn_window.current_window_size -= length
        stream._actual_content_length += length
        return True


def limit_closed_streams(conn: h2.connection.H2Connection, size: int) -> None:
    """Make ``conn`` remember only the last ``size`` closed streams (h2 keeps 2**16, to
    tell late frames from errors: megabytes per connection when streams churn)."""
    closed = getattr(conn, "_closed_streams", None)
    if closed is not None and hasattr(closed, "_size_limit"):
        closed._size_limit = size


def raise_stream_limit(conn: h2.connection.H2Connection, limit: int) -> None:
    """Let h2 accept up to ``limit`` concurrent peer streams whatever our SETTINGS
    advertised (already serialized): RFC 9113 5.1.2 makes exceeding the advertised
    limit a *stream* error, which the session answers with REFUSED_STREAM, where
    h2's own check would make it a connection error."""
    store = getattr(conn.local_settings, "_settings", None)
    code = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
    if isinstance(store, dict) and code in store:
        store[code] = limit if isinstance(conn.local_settings, CompactSettings) else collections.deque([limit])


class _Values(list):  # type: ignore[type-arg]
    """A changing setting's values (current first, then those sent but not acknowledged
    yet): the part of ``deque`` h2's :class:`~h2.settings.Settings` uses, in a list of
    two or three items (an empty deque is 760 bytes; this, about 70)."""

    __slots__ = ()

    def popleft(self) -> object:
        return self.pop(0)


_MISSING = object()


class CompactSettings(h2.settings.Settings):
    """h2's ``Settings`` with each settled setting's value kept as a plain int, and the
    values of one that is changing (current first, then those sent but not acknowledged
    yet) in a :class:`_Values` list, instead of a ``deque`` for every setting: an
    HTTP/2 connection has two of these with five to eight settings each, which as
    deques were about 9 KB, the largest part of an idle connection's ``H2Connection``
    (as one-item lists, 1.2 KB). h2 keeps them in ``_settings`` (a dict of deques) and
    reads that dict only in the methods overridden here; :meth:`usable` checks that
    dict is there."""

    def __init__(self, client: bool = True, initial_values: dict[h2.settings.SettingCodes, int] | None = None) -> None:
        super().__init__(client=client, initial_values=initial_values)
        store: dict[Any, Any] = self._settings
        for key, values in store.items():
            store[key] = values[0]

    def __getitem__(self, key: h2.settings.SettingCodes | int) -> int:
        value: Any = self._settings[key]
        if type(value) is _Values:
            value = value[0]
        if value is None:  # (created when a setting came: KeyError until acknowledged)
            raise KeyError(key)
        return cast(int, value)

    def __setitem__(self, key: h2.settings.SettingCodes | int, value: int) -> None:
        store: dict[Any, Any] = self._settings
        current = store.get(key, _MISSING)
        if current is _MISSING:  # (a setting the peer sent first: h2 would make a deque)
            store[key] = _Values([None])
        elif type(current) is not _Values:
            store[key] = _Values([current])
        super().__setitem__(key, value)  # (validates, then appends to the list)

    def acknowledge(self) -> dict[h2.settings.SettingCodes | int, h2.settings.ChangedSetting]:
        changed: dict[h2.settings.SettingCodes | int, h2.settings.ChangedSetting] = {}
        store: dict[Any, Any] = self._settings
        for key, values in list(store.items()):
            if type(values) is _Values:
                if len(values) > 1:
                    old = values.popleft()
                    changed[key] = h2.settings.ChangedSetting(key, cast("int | None", old), values[0])
                if len(values) == 1:
                    store[key] = values[0]
        return changed

    @classmethod
    def usable(cls) -> bool:
        """True if this h2 keeps settings where :class:`CompactSettings` expects them."""
        store = getattr(h2.settings.Settings(), "_settings", None)
        return (
            isinstance(store, dict)
            and bool(store)
            and all(type(v) is collections.deque for v in store.values())
            and callable(getattr(h2.settings, "ChangedSetting", None))
        )


_compact_usable: bool | None = None


def make_settings(client: bool, initial_values: dict[h2.settings.SettingCodes, int] | None = None) -> h2.settings.Settings:
    """A ``Settings`` for a connection: compact if this h2 allows it."""
    global _compact_usable
    if _compact_usable is None:
        _compact_usable = CompactSettings.usable()
    factory = CompactSettings if _compact_usable else h2.settings.Settings
    return factory(client=client, initial_values=initial_values)


class PeerCountedH2Connection(h2.connection.H2Connection):
    """An ``H2Connection`` whose counts of open streams come from a
    :class:`StreamCounter` instead of a pass over every stream: h2 reads
    ``open_inbound_streams`` for every HEADERS frame that opens a stream and
    ``open_outbound_streams`` for every stream we open, and each walks the whole
    stream table (9,000 requests in one read cost 9 seconds of CPU; one connection
    opening 10,000 streams one read at a time, 35). ``open_inbound_streams`` is 0:
    h2's own MAX_CONCURRENT_STREAMS check on the peer's streams is disarmed anyway
    (:func:`raise_stream_limit`); the multiplexer refuses the excess itself."""

    counter: StreamCounter

    @property
    def open_inbound_streams(self) -> int:
        return 0

    @property
    def open_outbound_streams(self) -> int:
        counter = getattr(self, "counter", None)
        if counter is None:  # (during h2's own __init__)
            return 0
        counter.settle()
        return len(counter.ours)

    @classmethod
    def usable(cls) -> bool:
        """True if this h2 counts and prunes its streams where we expect it to."""
        return (
            callable(getattr(h2.connection.H2Connection, "_open_streams", None))
            and isinstance(getattr(h2.connection.H2Connection, "open_inbound_streams", None), property)
            and isinstance(getattr(h2.connection.H2Connection, "open_outbound_streams", None), property)
        )


class SharedDispatchH2Connection(PeerCountedH2Connection):
    """A :class:`PeerCountedH2Connection` without a frame dispatch table of its own:
    h2 makes, for every connection, a dict from frame class to a bound method of the
    connection (``_frame_dispatch_table``, about 0.7 KB of every idle connection) and
    reads it only to dispatch a received frame (``_receive_frame``: the frames the DATA
    fast path leaves to h2). Here the table h2's ``__init__`` assigns is turned into
    method names once, for all connections, and each lookup binds the method then."""

    #: frame class -> name of the H2Connection method that receives it (from h2's own table)
    _dispatch_names: dict[type, str] = {}

    @property  # type: ignore[override]  # (a mapping for h2's one lookup, not a dict)
    def _frame_dispatch_table(self) -> _BoundDispatch:
        return _BoundDispatch(self)

    @_frame_dispatch_table.setter
    def _frame_dispatch_table(self, table: dict[type, Any]) -> None:
        names = SharedDispatchH2Connection._dispatch_names
        if not names:
            names.update((frame_class, method.__name__) for frame_class, method in table.items())

    @classmethod
    def usable(cls) -> bool:
        """True if this h2 keeps its dispatch table where expected: a dict of bound
        methods of the connection itself, assigned in ``__init__``."""
        global _dispatch_usable
        if _dispatch_usable is None:
            conn = h2.connection.H2Connection()
            table = conn.__dict__.get("_frame_dispatch_table")
            _dispatch_usable = (
                PeerCountedH2Connection.usable()
                and isinstance(table, dict)
                and bool(table)
                and all(
                    getattr(method, "__self__", None) is conn and getattr(conn, method.__name__, None) == method
                    for method in table.values()
                )
            )
        return _dispatch_usable


_dispatch_usable: bool | None = None


class _BoundDispatch:
    """What h2 asks of its dispatch table: ``table[frame_class]`` gives the bound method."""

    __slots__ = ("_conn",)

    def __init__(self, conn: h2.connection.H2Connection) -> None:
        self._conn = conn

    def __getitem__(self, frame_class: type) -> Any:
        return getattr(self._conn, SharedDispatchH2Connection._dispatch_names[frame_class])


class StreamCounter:
    """The streams open on ``conn`` (RFC 9113 5.1.2: open or half-closed), ours and
    the peer's, their ids kept in dicts used as sets, instead of counted by a pass over
    h2's stream table each time.

    A stream is added when it opens (:meth:`opened`) and looked at again only when
    something may have closed it: the multiplexer :meth:`touch`-es a stream on every
    event or action that can end or reset it, and :meth:`settle` checks those alone,
    dropping the closed ones from those dicts and from h2's table into h2's memory of
    closed streams, as h2's own count does. So the work is a constant per stream and
    per event, however many streams are open. Should a stream close unseen, a full
    pass (:meth:`resync`) runs once per as many new streams as the table holds:
    linear overall too."""

    def __init__(self, conn: h2.connection.H2Connection) -> None:
        self._conn = conn
        self._ours_parity = 1 if conn.config.client_side else 0
        # (dicts used as sets: an empty or small set is 216 bytes, a dict 64 to 184;
        # a connection has three, idle ones mostly empty)
        self.ours: dict[int, None] = {}
        self.peers: dict[int, None] = {}
        self._touched: dict[int, None] = {}
        self._until_resync = 1024
        #: Streams looked at so far (what a test counts instead of timing).
        self.checks = 0

    def touch(self, stream_id: int) -> None:
        """``stream_id`` may have closed: look at it on the next :meth:`settle`."""
        self._touched[stream_id] = None

    def opened(self, stream_id: int) -> None:
        """``stream_id`` (ours or the peer's) opened and counts from now on."""
        (self.ours if stream_id % 2 == self._ours_parity else self.peers)[stream_id] = None
        self._until_resync -= 1
        if self._until_resync <= 0:
            self.resync()

    def is_open(self, stream_id: int) -> bool:
        """True if h2 has ``stream_id`` open or half-closed now."""
        self.checks += 1
        stream = self._conn.streams.get(stream_id)
        return stream is not None and bool(stream.open)

    def settle(self) -> None:
        """Forget the touched streams that closed (here and in h2's stream table)."""
        touched = self._touched
        if not touched:
            return
        streams = self._conn.streams
        memory = getattr(self._conn, "_closed_streams", None)
        for sid in touched:
            self.checks += 1
            stream = streams.get(sid)
            if stream is not None:
                if not stream.closed:
                    continue
                del streams[sid]
                if memory is not None:
                    memory[sid] = stream.closed_by  # (what h2's _open_streams does)
            self.ours.pop(sid, None)
            self.peers.pop(sid, None)
        touched.clear()

    def resync(self) -> None:
        """One pass over h2's stream table: the dicts of ids rebuilt, closed streams pruned."""
        self._touched.update((sid, None) for sid, stream in self._conn.streams.items() if stream.closed)
        self.settle()
        streams = self._conn.streams
        self.checks += len(streams)
        self.ours = {sid: None for sid in self.ours if sid in streams}
        self.peers = {sid: None for sid in self.peers if sid in streams}
        for sid, stream in streams.items():
            if stream.open:
                (self.ours if sid % 2 == self._ours_parity else self.peers)[sid] = None
        self._until_resync = max(1024, len(streams))
