"""The trio driver of one connection: a multiplexer fed from a trio stream.

A :class:`Link` owns two tasks in its own nursery: a reader (bytes from the
transport into the multiplexer, events out to the streams) and a writer (queued
stream data into the multiplexer as DATA frames -- many messages per frame --
and the multiplexer's output onto the transport); the task running it
(:meth:`Link.run`) is the keepalive ticker meanwhile. It knows nothing about messages or references: streams it cannot place are handed
to ``on_stream_opened``.
"""

from __future__ import annotations

import logging
import math
import weakref
from functools import partial
import ssl
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, cast

import trio

from ..config import Config
from ..diagnosis import describe as _describe
from ..errors import SessionClosedError
from ..peerlog import peer_log
from ..messages.framing import END_MARKER, KEEPALIVE
from ..spdy_like.mux import (
    ENHANCE_YOUR_CALM,
    ConnectionEnded,
    DataReceived,
    Multiplexer,
    StreamAnswered,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowOpened,
)
from ..compat.trio_alarm import Alarm, make_alarm
from .sockio import TransportIO
from .waiters import NO_WAITERS, FifoLock, Flag, Lot, own_lot

if TYPE_CHECKING:
    from .budget import Account
    from .seams import StreamPort as NetStream

__all__ = ["Link"]

log = logging.getLogger("libchan")


_READ_SIZE = 256 * 1024
#: What _read_input returns when _interrupt_read interrupted it (compared by identity).
_INTERRUPTED = "(interrupted)"
_WRITE_BUDGET = 4 * 1024 * 1024
#: Largest DATA frame we send, whatever the peer allows: the receiver parses a
#: frame only once all of it arrived, so frames well below the window keep
#: data flowing while earlier frames are processed and acknowledged.
_FRAME_CAP = 128 * 1024
#: Answers to the peer's frames (PING/SETTINGS ACKs, RST_STREAMs, response headers)
#: that may wait unsent while our writes are blocked (the peer does not read); beyond,
#: the connection ends (spec 14.2), as Go and nghttp2 do with queued control frames.
_MAX_PENDING_ANSWERS = 1024 * 1024


class Link:
    # (slots: one per connection, thousands of idle ones; its __dict__ was 1.6 KB)
    __slots__ = ("account", "_capacity_lot", "closed_reason", "config", "_conn_ack_at", "done_holding",
        "_conn_unacked", "_consumers_read", "_drain_lot", "_ended", "first_input", "_first_lot",
        "_flow_controlled", "flushed", "handoff", "_handshake_deadline", "_handshake_scope", "hold_limit", "_idle",
        "_input_charged", "_input_over", "input_owner", "io", "reading_for", "keepalive_data", "_last_rx", "mux", "_next_tick", "_nursery",
        "on_closed", "on_stream_opened", "peer", "peer_goaway", "_pending", "_pending_answers",
        "_alarm", "_clock", "read_error", "_read_interrupted", "_read_lot", "_read_scope", "_reading_here", "_reader_done", "_reader_lot", "_reading_paused", "ready",
        "_send_lock", "releasing", "streams", "streams_over", "transport", "unread", "_write_lot", "writer_due",
        "_writer_passes", "_writer_passes_seen", "_writer_retiring", "_writer_running", "_writer_wanted")

    def __init__(
        self,
        transport: trio.abc.Stream,
        mux: Multiplexer,
        config: Config,
        *,
        on_stream_opened: Callable[[Link, StreamOpened], None],
        on_closed: Callable[[Link, str], None],
        keepalive_data: bool = True,
        account: Account | None = None,
        peer: str = "the peer",
    ) -> None:
        self.transport = transport
        #: A server's connection: the budget account its streams charge (spec 14.1).
        self.account = account
        #: Unread bytes its streams hold, and how many hold more than ``hold_limit`` (a
        #: Go-profile connection stops reading then): kept by the streams (seams.LinkPort).
        self.unread = 0
        self.streams_over = 0
        #: Streams whose ``unread`` (and account) still count bytes their reader took
        #: (NetStream._take accounts for a run of takes at once): accounted for before
        #: the connection's limits are judged (:meth:`account_releases`).
        self.releasing: dict[NetStream, None] = {}
        #: Streams that finished (left ``streams``) still holding items the application
        #: has not read: the budget may need those bytes back too.
        self.done_holding: weakref.WeakSet[NetStream] | None = None
        self.hold_limit = config.stream_window
        self._input_charged = 0  # the multiplexer's buffered input, as charged to the account
        self.peer = peer
        if account is not None:
            account.on_over = self._over_budget
            account.on_relief = self._relief
            account.exact = self.account_releases
        self.io: TransportIO | None = None  # made by run(), closed when it returns
        #: Bytes taken from the multiplexer for the writer's next pass (sent first).
        self._pending: list[bytes | memoryview] = []
        #: A sending task wrote to the socket itself since the reader or the writer
        #: last ran: until then, further sends queue for the writer (one frame).
        #: (NetSender reads it: no send_now call while it is set.)
        self.flushed = False
        self.mux = mux
        self.config = config
        self.on_stream_opened = on_stream_opened
        self.on_closed = on_closed
        self.streams: dict[int, NetStream] = {}
        #: Streams with something to send, for the writer's next pass.
        self.ready: dict[NetStream, None] = {}
        #: The writer task is due to run (woken): a stream in ``ready`` needs no
        #: further schedule() until then (NetStream.try_queue relies on it).
        self.writer_due = False
        self._write_lot = Lot()
        #: The writer task runs (it retires when idle for a keepalive tick, see _keepalive,
        #: and is started again when there is something to write: a task is 2-3 KB of
        #: every idle connection).
        self._writer_running = False
        self._writer_retiring = False
        self._writer_passes = 0  # (the writer's passes, and their count at the last tick)
        self._writer_passes_seen = 0
        # (lots made when first waited in: waiters.py)
        self._capacity_lot = NO_WAITERS
        self._drain_lot = NO_WAITERS
        self._conn_unacked = 0
        #: Bytes of answers to the peer's input taken from the multiplexer since the
        #: writer last finished a write (_MAX_PENDING_ANSWERS bounds them).
        self._pending_answers = 0
        #: The connection window is acknowledged in steps of an eighth.
        self._conn_ack_at = config.connection_window // 8
        self.closed_reason: str | None = None
        #: The peer ended the connection with GOAWAY(NO_ERROR).
        self.peer_goaway = False
        self.keepalive_data = keepalive_data
        # Without flow control (Go profile) a slow reader pauses reading the
        # whole connection (TCP backpressure) instead of growing buffers.
        self._flow_controlled = mux.flow_controlled
        self._read_lot = NO_WAITERS
        self._reader_done = Flag()
        #: The scope of the reads between two keepalive ticks, when run()'s own task reads
        #: (see _read_and_tick): _end cancels it.
        self._read_scope: trio.CancelScope | None = None
        #: The tick's deadline where trio allows it without a cancel scope (compat/trio_alarm):
        #: when it passes, :meth:`_interrupt_read` (the read returns for the tick).
        self._alarm: Alarm | None = None
        #: _read_and_tick is in _read_input (with the alarm: an interrupt sets the flag below)
        self._reading_here = False
        self._read_interrupted = False
        #: When the task reading here ticks next (set when it starts reading).
        self._next_tick = 0.0
        #: The task reading here has no nursery (an idle connection): a wake() sets
        #: ``_writer_wanted`` and interrupts the read, and that task starts the writer.
        self._idle = False
        self._writer_wanted = False
        # Who waits for input now: None, this link (its reader task) or the
        # NetStream whose consumer reads for everyone (see read_for).
        self.input_owner: object | None = None
        #: The stream whose consumer processes the input it read for it (read_for):
        #: a message for that stream goes straight to it (NetStream._on_data).
        self.reading_for: NetStream | None = None
        # Where the reader task waits while a consumer reads (a lot of its own once it
        # did: waking it is on every message's path, between a read and the reply).
        self._reader_lot: Lot = NO_WAITERS
        self._consumers_read = False  # a socket read here, and flow control: see run()
        #: A consumer waiting in read_item was woken by the last input.
        self.handoff = False
        #: trio's clock (its current_time is trio.current_time() less two calls: read and
        #: write paths ask for the time on every message).
        self._clock = trio.lowlevel.current_clock()
        self._last_rx = self._clock.current_time()
        self._reading_paused = False
        #: The peer's input ended (its end of stream, or a read failed).
        self._input_over = False
        # Only one task may be inside transport.send_all (the writer, or aclose's GOAWAY).
        self._send_lock = FifoLock()
        self._nursery: trio.Nursery | None = None
        self._ended = Flag()
        #: The first bytes the peer sent (up to 16), once it sent any: connect()
        #: tells a peer of the wrong protocol by them.
        self.first_input: bytes | None = None
        #: The exception that ended reading, if one did (a TLS alert, say).
        self.read_error: BaseException | None = None
        self._first_lot = NO_WAITERS
        #: The handshake watchdog's scope while it waits (cancelled once the handshake is done).
        self._handshake_scope: trio.CancelScope | None = None
        #: With the alarm, the watchdog is a deadline of the task reading here (inf: none).
        self._handshake_deadline = math.inf

    # -- lifetime ------------------------------------------------------------------
    def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> Coroutine[Any, Any, None]:
        """``await link.run()``: drive the connection until it ends; returns after
        closing the transport. (A plain function returning the coroutine that does it,
        :meth:`_run_reading_here` on a socket read directly: the task running an idle
        link keeps one frame less.)"""
        self.io = TransportIO(self.transport, fast_paths=self.config.fast_paths)
        # A task waiting for its stream may read the connection itself (one task
        # switch less per message); only on a socket read here (plain or TLS: see
        # sockio), whose reads are cancel-safe. Without flow control (Go profile) not
        # while reading is paused for what the streams hold (see can_read_for).
        self._consumers_read = self.io.direct
        if self.io.direct:
            return self._run_reading_here(task_status)
        return self._run_with_tasks(task_status)

    async def _run_with_tasks(self, task_status: trio.TaskStatus[None]) -> None:
        """:meth:`run` on a transport not read directly: a reader and a writer task,
        and this task ticks the keepalive."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._reader)
                self._writer_running = True
                nursery.start_soon(self._writer)
                if not self.mux.handshake_done:
                    nursery.start_soon(self._handshake_watchdog)
                self.wake()
                task_status.started()
                await self._keepalive()  # (until the link ends)
                await self._last_words()
                nursery.cancel_scope.cancel()
        finally:
            await self._finish(linger=False)

    async def _finish(self, *, linger: bool) -> None:
        """The link's end, whatever ended it: fail what it carried, linger if asked
        (:meth:`_linger`; not when cancelled), close the transport."""
        self._die(self.closed_reason or "connection closed")
        try:
            if linger:
                await self._linger()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1):
                    try:
                        await self.transport.aclose()
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass

    async def _run_reading_here(self, task_status: trio.TaskStatus[None]) -> None:
        """:meth:`run` on a socket read directly: this task reads (its reads are
        cancel-safe) and ticks the keepalive, with a nursery for the writer and the
        handshake watchdog only while one of them runs. An idle connection keeps this
        one task and no nursery (2 KB less per idle connection than a reader task and
        a nursery of its own); whatever needs the writer again interrupts the read
        (:meth:`_kick_writer`) and this task opens a nursery and starts it.

        With the alarm (compat/trio_alarm.py), the link starts idle: the handshake
        watchdog is a deadline of this task, and what the link has to say first (the
        preface, SETTINGS, a client's first requests, a server's answers) is written by
        whoever says it while the socket takes it at once (:meth:`wake`): a connection
        that never carries a message never runs a writer or opens a nursery."""
        task_status.started()
        del task_status  # (it holds the nursery trio started this task in, for good)
        linger = False
        try:
            started = False
            now = trio.current_time()
            self._next_tick = now + self.config.tick_interval
            if self.config.fast_paths:
                self._alarm = make_alarm(self._interrupt_read)
            if self._alarm is not None:
                if not self.mux.handshake_done:
                    self._handshake_deadline = now + self.config.handshake_timeout
                self._idle = True
                started = True
                self.wake()  # (written from here, or the writer is wanted)
            said = False
            while not self._ended.is_set():
                if self._idle:
                    await self._read_and_tick()  # (until the link ends, or the writer is wanted)
                    if self._ended.is_set():
                        break
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._idle = False
                    self._writer_running = True
                    nursery.start_soon(self._writer)
                    if not started:
                        if not self.mux.handshake_done:
                            nursery.start_soon(self._handshake_watchdog)
                        self.wake()
                        started = True
                    await self._read_and_tick()  # (until the link ends, or its tasks did)
                    if self._ended.is_set():
                        self._reader_done.set()
                        await self._last_words()
                        said = True
                        nursery.cancel_scope.cancel()
                        break
                    # (no task left: from now on a wake() interrupts the read instead)
                    self._nursery = None
                    self._idle = True
                    self._writer_wanted = False
                del nursery  # (nothing keeps a nursery that ended)
            self._reader_done.set()
            if not said:
                await self._last_words()
            linger = True  # (not when cancelled)
        finally:
            self._nursery = None
            self._idle = False
            self._reader_done.set()
            if self._alarm is not None:
                self._alarm.close()
            await self._finish(linger=linger)

    async def _last_words(self) -> None:
        """Best effort, before the tasks stop: send what is queued (a GOAWAY after a
        protocol error, say), which the writer task might not get to."""
        if self.io is None:
            return
        try:
            if self.io.direct and not self._send_lock.locked():
                self.io.try_send(self._take_output())  # (with the backlog first)
            else:  # (after the writer's write, if it is in one: a GOAWAY goes last)
                with trio.move_on_after(0.2):
                    await self._send_out()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError):
            pass

    async def _linger(self) -> None:
        """After our GOAWAY, while the peer's input goes on (the link ended on this side:
        a budget, a flood, a protocol error...): read and drop what it sends until it
        closes, for at most a second, before the socket is closed. A socket closed with
        unread input resets the connection, and the reset can destroy the GOAWAY before
        the peer reads it (the server's refusals linger the same way). After _die: what
        the link held is released and its streams have failed already."""
        io = self.io
        if io is None or not io.direct or self._input_over or not self.mux.closed:
            return
        io.shutdown_write()  # (a plain socket: the peer sees the end after our GOAWAY)
        with trio.move_on_after(min(1.0, self.config.close_timeout)):
            try:
                while await io.receive_some(_READ_SIZE) != b"":
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError):
                pass

    async def aclose(
        self, reason: str = "connection closed", *, graceful: bool = True, linger: bool = True
    ) -> None:
        """Send GOAWAY (if graceful), flush, and close the connection.

        With ``linger`` it first waits (at most ``close_timeout``) for the peer
        to close its side or answer with GOAWAY."""
        if self.closed_reason is not None:
            return
        if graceful:
            self.mux.close(0, "")
            self._read_lot.unpark_all()
            with trio.move_on_after(self.config.close_timeout) as scope:
                scope.shield = True
                try:
                    await self._send_out()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError):
                    pass
                # Lingering close: wait for the peer to close its side (it does on
                # GOAWAY) before closing ours. Closing a socket with unread input
                # makes the kernel send RST, and a RST makes the peer's kernel drop
                # data the peer has received but not read yet: our last messages.
                if linger:
                    await self._reader_done.wait()
        self._end(reason)

    def _end(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self._ended.set()
        self._interrupt_read()
        if self._alarm is not None:
            self._alarm.close()
        self._first_lot.unpark_all()

    def abort(self, reason: str) -> None:
        """End the connection now, without a GOAWAY (the peer is not what we expected)."""
        self._end(reason)

    async def wait_first_input(self) -> None:
        """Wait until the peer sent its first bytes (:attr:`first_input`) or the link ended."""
        while self.first_input is None and self.closed_reason is None:
            lot = self._first_lot = own_lot(self._first_lot)
            await lot.park()

    def _die(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self._ended.set()
        # Tell the sessions first (a session whose control stream ran here
        # ends, and fails its streams with the session's reason).
        callback, self.on_closed = self.on_closed, lambda link, reason: None
        callback(self, reason)
        if self._input_charged and self.account is not None:
            self.account.charge(-self._input_charged)  # the partial frame goes with the link
            self._input_charged = 0
        streams = list(self.streams.values())
        self.streams.clear()
        account = self.account
        over = account is not None and account.over
        for ns in streams:
            ns.link = None
            if not ns.done:
                ns.fail(SessionClosedError(reason) if ns.session.closed_reason else trio.BrokenResourceError(f"connection lost: {reason}"))
            if over:
                ns.drop_inbox()  # ended for what it held: let go of it now
        if account is not None and not over:
            # What its streams still hold (unread items) stays for the application to
            # read, unless the server's budget needs it back (Budget.check).
            holding = weakref.WeakSet(ns for ns in streams if ns.charged)
            holding.update(self.done_holding or ())
            if holding:
                account.drop = partial(_drop_unread, holding)
        self._capacity_lot.unpark_all()
        self._drain_lot.unpark_all()

    @property
    def alive(self) -> bool:
        return self.closed_reason is None

    # -- the budget (a server's connection) ----------------------------------------------
    def _near_limit(self, coming: int = 0) -> bool:
        """The connection holds (with ``coming`` bytes more) at least its account's soft
        limit, and some of it is complete items the application has not read: reading
        them is what lowers it (partial items alone do not), so the peer waits."""
        account = self.account
        if account is None or account.used + coming < account.soft or self.unread <= 0:
            return False
        if self.releasing:
            self.account_releases()  # (judged on exact figures)
            return account.used + coming >= account.soft and self.unread > 0
        return True

    def account_releases(self) -> None:
        """Every stream accounts now for the bytes its reader took that it did not
        account for yet (NetStream.account_release): ``unread``, ``streams_over`` and
        the account are exact."""
        releasing = self.releasing
        while releasing:
            ns, _ = releasing.popitem()
            ns.account_release()  # (re-entrant: a relief it brings about may come back here)

    def _withhold_input(self) -> bool:
        """Go profile (no flow control): stop reading while the connection holds more
        than its account's soft limit, unread by the application."""
        if self._near_limit():
            cast("Account", self.account).withholding = True
            return True
        return False

    def _relief(self) -> None:
        """The account is back under its soft limit, or a stream's reader took all it
        held: grant the peer its connection window again (HTTP/2), read again (Go)."""
        account = self.account
        if account is None or not account.withholding:
            return
        if self._near_limit(self._conn_unacked):
            return  # still too much, and reading it is what will help
        account.withholding = False
        if self._conn_unacked and self.closed_reason is None:
            self.mux.acknowledge(None, self._conn_unacked)
            self._conn_unacked = 0
            self.wake()
        self._read_lot.unpark_all()

    def _over_budget(self, why: str) -> None:
        """The budget ends this connection: GOAWAY(ENHANCE_YOUR_CALM), then close."""
        if self.closed_reason is not None:
            return
        peer_log(log, logging.WARNING, "ending the connection from %s (GOAWAY ENHANCE_YOUR_CALM): %s", self.peer, why)
        self.mux.close(ENHANCE_YOUR_CALM, "memory budget exceeded")
        self._read_lot.unpark_all()
        self._end(f"ended by the server's memory budget: {why}")
        # Let go of what it holds now, not once the link's tasks wound down: meanwhile
        # other connections' bytes keep coming, and these would count against them.
        for ns in list(self.streams.values()):
            ns.drop_inbox()
            ns.outbox.clear()
        for ns in list(self.done_holding or ()):
            ns.drop_inbox()

    # -- stream bookkeeping ------------------------------------------------------------
    def register(self, ns: NetStream) -> None:
        assert ns.stream_id is not None
        self.streams[ns.stream_id] = ns

    def stream_done(self, ns: NetStream) -> None:
        if ns.stream_id is not None and self.streams.get(ns.stream_id) is ns:
            del self.streams[ns.stream_id]
            self.releasing.pop(ns, None)
            # what it still holds no longer counts here (a done stream reports no more)
            self.unread -= ns.held
            if ns.held > self.hold_limit:
                self.streams_over -= 1
                if not self.streams_over:
                    self.resume_reading()
            if ns.charged and self.account is not None:
                if self.done_holding is None:
                    self.done_holding = weakref.WeakSet()
                self.done_holding.add(ns)
        self.ready.pop(ns, None)
        self._capacity_lot.unpark_all()

    def schedule(self, ns: NetStream) -> None:
        """``ns`` has something to send: put it on the wire now if the socket allows
        it (the first time since the writer's last pass), else wake the writer."""
        self.ready[ns] = None
        io = self.io
        if not self.flushed and not self._pending and io is not None and io.direct and not io.backlog:
            if not self._send_lock.locked() and self.closed_reason is None:
                self._flush_now(ns)
                return
        self.wake()

    def send_now(self, ns: NetStream, wire: bytes) -> bool:
        """Write ``wire`` (one message's bytes) on ``ns`` as one DATA frame from the
        calling task, if nothing has to go before it: what :meth:`schedule` would do
        for it, without the queue. False: nothing was done (queue it)."""
        io = self.io
        # (io._tsock: io.direct; outbox._len: len(outbox); _send_lock._held: its locked()
        # -- read without the calls, on every message's path)
        if self.flushed or self._pending or io is None or io._tsock is None or io.backlog:
            return False
        sid = ns.stream_id
        if (
            sid is None
            or ns.outbox._len
            or ns.error is not None
            or not ns.can_send
            or ns.out_end_requested
            or ns.out_ended
            or len(wire) > _FRAME_CAP
            or self.closed_reason is not None
            or self._send_lock._held
        ):
            return False
        lane = self.mux.lane
        header = lane.data_header_now(sid, len(wire)) if lane is not None else None
        if header is None:
            return False
        self.flushed = True
        ns.last_sent = self._clock.current_time()
        try:
            io.try_send([header + wire])
        except (OSError, trio.BrokenResourceError) as exc:
            self._write_failed(exc)
            return True
        if io.backlog:
            self.wake()  # the writer sends the rest when the socket allows
        return True

    def _flush_now(self, ns: NetStream) -> None:
        """Synchronous write from the calling task (a socket written directly only).
        Later sends until the writer's next pass only queue: they share its frame."""
        self.flushed = True
        if len(self.ready) != 1 or not self._frame_one(ns):
            self._pump()
        chunks = self._take_output()
        if chunks:
            assert self.io is not None
            try:
                self.io.try_send(chunks)
            except (OSError, trio.BrokenResourceError) as exc:
                self._write_failed(exc)
                return
            if self.io.backlog:
                self.wake()  # the writer sends the rest when the socket allows
            if self._drain_lot:
                self._drain_lot.unpark_all()
        if self.writer_due:
            self._kick_writer()  # _pump ran out of budget

    async def _send_out(self) -> None:
        """Send what is pending and what the multiplexer has (under the send lock)."""
        async with self._send_lock:
            if self.io is None:
                return  # never ran
            chunks = self._take_output()
            if chunks or self.io.backlog:
                await self.io.send_all(chunks)
            self._pending_answers = 0  # (the peer read what was pending)

    def _take_output(self) -> list[bytes | memoryview]:
        """What is to be written now, in order: the pending rest, then the multiplexer's output."""
        chunks = self.mux.data_chunks()
        if self._pending:
            chunks = self._pending + chunks
            self._pending = []
        return chunks

    def acknowledge(self, ns: NetStream, size: int) -> None:
        """``ns``'s consumer took ``size`` received bytes: open its window again."""
        assert ns.stream_id is not None
        self.mux.acknowledge(ns.stream_id, size)
        self.wake()
        self.resume_reading()

    def unschedule(self, ns: NetStream) -> None:
        """``ns`` has nothing more to send here (it handed its wire stream on)."""
        self.ready.pop(ns, None)

    def reset_id(self, stream_id: int, code: int) -> None:
        """Reset a stream no NetStream stands for (refused as it arrived)."""
        self.mux.reset_stream(stream_id, code)

    def ping(self) -> None:
        self.mux.ping()
        self.wake()

    def resume_reading(self) -> None:
        """Go profile (no flow control): a reader paused for what the streams hold (or
        for the account) looks again whether it may read; nothing with flow control."""
        if not self._flow_controlled:
            self._read_lot.unpark_all()

    def wake(self) -> None:
        if not self.writer_due:
            if self._idle and not self._writer_wanted and self.closed_reason is None and self._write_now():
                return  # (an idle link: written from here, no writer task)
            self.writer_due = True
            self._kick_writer()

    def _write_failed(self, exc: BaseException) -> None:
        """A write from the calling task failed: the peer went away. Why may be waiting
        unread (a TLS alert; its first bytes, if it never spoke HTTP/2): one read without
        waiting looks, so that the link ends with the error reading gives and connect()
        can tell, say, a refused client certificate. (What is read is not processed:
        this may run in the middle of processing input.)"""
        reason = f"connection lost ({_describe(exc)})"
        io = self.io
        if io is not None and io.direct and not self._input_over and self.closed_reason is None:
            try:
                data = io.read_nowait(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError) as rexc:
                self.read_error = rexc
                self._input_over = True
                reason = f"connection lost ({_describe(rexc)})"
            else:
                if data and self.first_input is None:
                    self.first_input = bytes(data[:16])
                    self._first_lot.unpark_all()
        self._end(reason)

    def _writes_here(self) -> bool:
        """The calling task may write the socket now: it is written directly, nothing
        is left over from an earlier write, and no task is inside ``send_all``."""
        io = self.io
        return io is not None and io.direct and not io.backlog and not self._send_lock.locked()

    def _write_now(self) -> bool:
        """Write what is pending and what the multiplexer has (HEADERS, SETTINGS,
        PINGs, WINDOW_UPDATEs, answers...) from the calling task, when no stream has
        data ready (a burst of messages is the writer's, which puts them in one frame
        and one write) and the socket takes it all at once. True: it did (or the link
        ended in the attempt); False: the writer is needed."""
        if self.ready or not self._writes_here():
            return False
        io = cast(TransportIO, self.io)
        try:
            io.try_send(self._take_output())
        except (OSError, trio.BrokenResourceError) as exc:
            self._write_failed(exc)
            return True
        if io.backlog:
            return False  # (the writer sends the rest when the socket allows)
        self._pending_answers = 0  # (the peer took them)
        if self._drain_lot:
            self._drain_lot.unpark_all()
        return True

    def _kick_writer(self) -> None:
        """The writer is due: wake it, or start it again if it retired."""
        if self._writer_running:
            self._write_lot.unpark_all()
        elif self._idle:  # (the task reading here opens a nursery for it)
            if not self._writer_wanted:
                self._writer_wanted = True
                self._interrupt_read()
        elif self._nursery is not None and self.closed_reason is None:
            try:
                self._nursery.start_soon(self._writer)
            except RuntimeError:  # (the link's nursery closed: the link is ending)
                return
            self._writer_running = True

    def _write_here(self) -> None:
        """Put what the multiplexer has (a PING...) on the wire from the calling task if
        the socket takes it at once, without the writer; else wake the writer."""
        if not self._write_now():
            self.wake()

    async def open_stream(self, ns: NetStream, headers: list[tuple[str, str]]) -> None:
        """Open a stream (client side), waiting while the peer's stream limit is reached."""
        while True:
            if self.closed_reason is not None:
                raise trio.BrokenResourceError(f"connection lost: {self.closed_reason}")
            if self.mux.can_open_stream():
                break
            lot = self._capacity_lot = own_lot(self._capacity_lot)
            await lot.park()
        stream_id = self.mux.open_stream(headers)
        ns.bind(self, stream_id, can_send=True)
        self.wake()

    def answer(self, ns: NetStream, headers: list[tuple[str, str]], *, end_stream: bool = False) -> None:
        assert ns.stream_id is not None
        try:
            self.mux.answer_stream(ns.stream_id, headers, end_stream=end_stream)
        except Exception:  # the peer reset the stream in the same read as it opened it
            ns.on_reset(5, remote=False)
            return
        ns.can_send = True
        if end_stream:
            ns.out_ended = True
        self.wake()

    def refuse(self, stream_id: int, headers: list[tuple[str, str]], *, reset: int | None = None) -> None:
        """Answer a request we refuse with ``headers`` and END_STREAM (or, with ``reset``,
        answer and then reset it). Like :meth:`answer`, it tolerates a stream the peer
        already reset in the same read."""
        try:
            if reset is None:
                self.mux.answer_stream(stream_id, headers, end_stream=True)
            else:
                self.mux.answer_stream(stream_id, headers)
                self.mux.reset_stream(stream_id, reset)
        except Exception:  # noqa: BLE001 - the stream is gone: nothing to answer
            pass
        self.wake()

    def reset_stream(self, ns: NetStream, code: int) -> None:
        if ns.stream_id is not None and self.closed_reason is None:
            self.mux.reset_stream(ns.stream_id, code)
            self.wake()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until every queued byte was handed to the transport."""
        with trio.move_on_after(timeout):
            while self.closed_reason is None and (
                self._pending
                or (self.io is not None and self.io.backlog)
                or any(
                    ns.outbox or (ns.out_end_requested and not (ns.out_ended or ns.marker_sent))
                    for ns in self.streams.values()
                )
            ):
                lot = self._drain_lot = own_lot(self._drain_lot)
                await lot.park()

    # -- tasks ----------------------------------------------------------------------------
    async def _handshake_watchdog(self) -> None:
        """A server's connection whose client does not finish its preface (HTTP/2: the
        24 octets and its SETTINGS) within ``handshake_timeout`` is closed."""
        timeout = self.config.handshake_timeout
        with trio.CancelScope() as self._handshake_scope:  # (cancelled by _process_input when done)
            await trio.sleep(timeout)
        self._handshake_scope = None
        self._handshake_late()

    def _handshake_late(self) -> None:
        """``handshake_timeout`` passed: a connection whose preface is not done is closed."""
        timeout = self.config.handshake_timeout
        if not self.mux.handshake_done and self.closed_reason is None:
            peer_log(log, logging.INFO, "dropping the connection from %s: its HTTP/2 preface did not come within %g s", self.peer, timeout)
            self._end(f"the peer did not finish its connection preface within {timeout:g} s")

    async def _reader(self) -> None:
        """The reader task (a transport not read directly): reads until the input ends."""
        try:
            reason = await self._read_input()
        finally:
            self._reader_done.set()
        if reason is not None:
            self._end(reason)

    async def _read_and_tick(self) -> None:
        """:meth:`_run_reading_here`'s reading: :meth:`_read_input`, interrupted for
        :meth:`_tick` when one is due. Returns when the link ended; with a nursery
        (not ``_idle``), also once none of the link's tasks runs; without one, when
        the writer is wanted (:meth:`_kick_writer`)."""
        tick = self.config.tick_interval
        while not self._ended.is_set():
            if self._idle:
                if self._writer_wanted:
                    return
            elif not self._writer_running and self._nursery is not None and not self._nursery.child_tasks:
                return
            reason: str | None = None
            alarm = self._alarm
            if alarm is not None:
                alarm.set(min(self._next_tick, self._handshake_deadline))  # (armed once per tick)
                self._reading_here = True
                self._read_interrupted = False
                try:
                    reason = await self._read_input()
                finally:
                    self._reading_here = False
                interrupted = reason is _INTERRUPTED
            else:
                with trio.CancelScope(deadline=self._next_tick) as scope:
                    self._read_scope = scope
                    try:
                        reason = await self._read_input()
                    finally:
                        self._read_scope = None
                interrupted = scope.cancelled_caught
            if not interrupted:  # the input ended, or the link did
                if reason is not None:
                    self._end(reason)
                return
            now = trio.current_time()
            if self._handshake_deadline <= now:
                self._handshake_deadline = math.inf
                self._handshake_late()
            if not self._ended.is_set() and now >= self._next_tick:
                self._next_tick = now + tick
                self._tick()

    async def _read_input(self) -> str | None:
        """Read the connection and process what comes until the input ends (returns
        why) or the link ended (returns None), or :meth:`_interrupt_read` interrupted
        :meth:`_read_and_tick`'s read (returns _INTERRUPTED). Cancel-safe between reads
        on a socket read directly (without an alarm, a cancel scope interrupts it)."""
        io = cast(TransportIO, self.io)  # (run() sets it before it starts reading)
        try:
            while True:
                if self._read_interrupted:
                    return _INTERRUPTED
                if not self._flow_controlled:
                    while not self.mux.closed and (self.streams_over or self._withhold_input()):
                        self._reading_paused = True
                        lot = self._read_lot = own_lot(self._read_lot)
                        await lot.park()
                        if self._read_interrupted:  # (still paused: _tick knows why input stopped)
                            return _INTERRUPTED
                    self._reading_paused = False
                    self._last_rx = max(self._last_rx, trio.current_time() - 1.0)
                if self.mux.input_pending:
                    # The last read held more frames than one pass takes: let other
                    # connections and tasks run, then take the next slice (before any
                    # new input, which the multiplexer queues after it anyway).
                    await trio.lowlevel.checkpoint()
                    if self.mux.input_pending:
                        self._process_input(b"")
                        if self.closed_reason is not None:
                            return None
                    continue
                if self.input_owner is not None:
                    while self.input_owner is not None and not self._read_interrupted:
                        await self._reader_park()
                    continue  # (what the consumer read may call for a pause: look again)
                self.input_owner = self
                try:
                    data = await io.receive_some(_READ_SIZE)
                finally:
                    if self.input_owner is self:
                        self.input_owner = None
                if data is None:
                    continue  # _interrupt_read, or one meant for a consumer (a race): look again
                if not data:
                    self._input_over = True
                    return "connection closed by the peer"
                self._process_input(data)
                data = None  # (a read of up to 256 KiB, not kept while the next one is awaited)
                if self.closed_reason is not None:
                    return None
                if self.handoff:
                    # A consumer was woken: it runs before we look again, and if it
                    # comes back for more it reads the connection itself.
                    self.handoff = False
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    await trio.lowlevel.cancel_shielded_checkpoint()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError) as exc:
            self.read_error = exc
            self._input_over = True
            return f"connection lost ({_describe(exc)})"

    def _interrupt_read(self) -> None:
        """:meth:`_read_and_tick`'s read returns (for a tick, the writer wanted, the
        link's end): its cancel scope is cancelled, or, with the alarm, wherever
        :meth:`_read_input` waits it is woken and returns _INTERRUPTED. (Also the
        alarm's callback, from trio's run loop.)"""
        if self._read_scope is not None:
            self._read_scope.cancel()
            return
        if not self._reading_here or self._read_interrupted:
            return
        self._read_interrupted = True
        if self.input_owner is self:
            cast(TransportIO, self.io).interrupt_reader()
        elif self._reading_paused:
            self._read_lot.unpark_all()
        else:
            self._resume_reader()

    def _process_input(self, data: bytes) -> None:
        """Bytes from the transport into the multiplexer, events out to the streams."""
        if self.first_input is None and data:
            self.first_input = bytes(data[:16])
            self._first_lot.unpark_all()
        self._last_rx = self._clock.current_time()
        self.flushed = False
        mux = self.mux
        if mux.has_output():
            # our own output (DATA...), queued before this input: not an answer to it
            self._pending += mux.data_chunks()
        lane = mux.lane
        sole = lane.receive_sole_data(data) if lane is not None else None
        if sole is not None:  # one DATA frame: no event objects
            self._data_arrived(sole[0], sole[1], len(sole[1]))
        else:
            for ev in mux.receive_data(data, self._last_rx):
                self._dispatch(ev)
            if mux.handshake_done:
                if self._handshake_scope is not None:
                    self._handshake_scope.cancel()  # (its task ends: 2 KB less per connection)
                self._handshake_deadline = math.inf
            account = self.account
            if account is not None and self.closed_reason is None:
                # a partial frame (up to max_frame_size; SPDY: a whole DATA frame) counts too
                held = mux.buffered_input - self._input_charged
                if held:
                    self._input_charged += held
                    account.charge(held)
        # What the input made the multiplexer say (SETTINGS and PING
        # acknowledgements...) goes out with the writer's next pass.
        if mux.has_output():
            out = mux.data_chunks()
            if out:
                self._pending += out
                self._pending_answers += sum(map(len, out))
                if self._pending_answers > _MAX_PENDING_ANSWERS:
                    self._answers_unread()
                    return
                self._write_here()  # (no pass of the writer for a PING's answer)
                return
        # (input comes only while run() has io set)
        if self.ready or cast(TransportIO, self.io).backlog:  # (a TLS read can leave an answer to send)
            self.wake()

    def _answers_unread(self) -> None:
        """What the peer's input made us answer (PING and SETTINGS acknowledgements,
        resets, response headers...) piled up unsent beyond _MAX_PENDING_ANSWERS while
        our writes wait for the peer to read: it sends and does not read (spec 14.2).
        Without this limit our output would grow with its input."""
        self.mux.close(ENHANCE_YOUR_CALM, "answers not read")  # (best effort: it does not read)
        self._end(
            f"the peer does not read: more than {_MAX_PENDING_ANSWERS} bytes of answers to "
            "its frames wait unsent (ENHANCE_YOUR_CALM)"
        )

    # -- reading in a consumer's task ------------------------------------------------
    def can_read_for(self, ns: NetStream) -> bool:
        """True if the task waiting for ``ns`` may read the connection itself now.
        Without flow control, not while the connection's streams hold too much unread
        (the rule the reader task pauses by: then the reader reads, once relieved)."""
        return (
            self._consumers_read
            and self.input_owner is None
            and self.closed_reason is None
            and (self._flow_controlled or not (self.streams_over or self._near_limit()))
        )

    async def read_for(self, ns: NetStream) -> None:
        """Read the connection once in the calling task (``ns``'s consumer) and
        process what came, for every stream. Returns early, having read nothing,
        when ``ns`` changes otherwise (:meth:`stop_reading_for`). Connection
        errors end the link (the stream then fails); they are not raised here."""
        assert self.io is not None
        if self.mux.input_pending:
            # frames of an earlier read come first (one slice per call: see _reader)
            await trio.lowlevel.checkpoint()
            if self.mux.input_pending:
                self._process_input(b"")
            return
        self.input_owner = ns
        try:
            data = await self.io.receive_some(_READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._release_input(ns)
            self.read_error = exc
            self._input_ended(f"connection lost ({_describe(exc)})")
            return
        finally:
            self._release_input(ns)
        if data is None:
            return
        if not data:
            self._input_ended("connection closed by the peer")
            return
        self.reading_for = ns
        try:
            self._process_input(data)
        finally:
            self.reading_for = None

    def _release_input(self, ns: NetStream) -> None:
        if self.input_owner is ns:
            self.input_owner = None

    def stop_reading_for(self, ns: NetStream) -> None:
        """``ns`` changed (ended, failed...): its consumer stops waiting for input."""
        if self.input_owner is ns and self.io is not None:
            self.io.interrupt_reader()

    def input_released(self) -> None:
        """A consumer that read for the link is leaving: the reader task resumes."""
        if self.input_owner is None:
            self._resume_reader()

    def _resume_reader(self) -> None:
        """The task in :meth:`_reader_park`, if one waits there, goes on."""
        self._reader_lot.unpark_all()

    def _reader_park(self) -> Awaitable[None]:
        lot = self._reader_lot = own_lot(self._reader_lot)
        return lot.park()

    def _input_ended(self, reason: str) -> None:
        self._input_over = True
        self._reader_done.set()
        self._end(reason)

    def _dispatch(self, ev: object) -> None:
        if isinstance(ev, DataReceived):
            self._data_arrived(ev.stream_id, ev.data, ev.flow_length)
        elif isinstance(ev, StreamOpened):
            self.on_stream_opened(self, ev)
        elif isinstance(ev, StreamAnswered):
            ns = self.streams.get(ev.stream_id)
            if ns is not None:
                ns.session.on_answered(ns, ev.headers)
        elif isinstance(ev, StreamEnded):
            ns = self.streams.get(ev.stream_id)
            if ns is not None:
                ns.on_end()
        elif isinstance(ev, StreamReset):
            ns = self.streams.get(ev.stream_id)
            if ns is not None:
                ns.session.on_reset(ns, ev.error_code, ev.remote)
        elif isinstance(ev, WindowOpened):
            self._capacity_lot.unpark_all()
            self.wake()
        elif isinstance(ev, ConnectionEnded):
            if ev.remote and ev.error_code == 0:
                self.peer_goaway = True
            self._end(ev.reason)

    def _data_arrived(self, stream_id: int, data: bytes | memoryview, flow_length: int) -> None:
        """A DATA frame's payload (``flow_length`` counts its padding too)."""
        self._conn_unacked += flow_length
        if self._conn_unacked >= self._conn_ack_at:
            # (the bytes just acknowledged may be charged yet: counted once more here)
            if self._near_limit(self._conn_unacked):
                cast("Account", self.account).withholding = True  # (spec 12.2: until the application reads)
            else:
                self.mux.acknowledge(None, self._conn_unacked)
                self._conn_unacked = 0
        ns = self.streams.get(stream_id)
        if ns is None:
            self.mux.acknowledge(stream_id, flow_length)
            self.mux.reset_stream(stream_id, 5)  # STREAM_CLOSED
            return
        if flow_length != len(data):
            ns.owed += flow_length - len(data)  # padding
        ns.on_data(data)

    async def _writer(self) -> None:
        try:
            while True:
                while not self.writer_due:
                    if self._writer_retiring:  # idle for a whole keepalive tick
                        self._writer_retiring = self._writer_running = False
                        self._interrupt_read()  # (it may leave its nursery now)
                        return
                    await self._write_lot.park()
                self._writer_retiring = False
                self._writer_passes += 1
                self.writer_due = False
                self.flushed = False
                # No explicit cork: senders yield only every few hundred
                # messages (netstream._YIELD_EVERY), so whatever queued up
                # meanwhile shares one DATA frame and one write.
                self._pump()
                await self._send_out()
                self._drain_lot.unpark_all()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError) as exc:
            self._end(f"connection lost ({_describe(exc)})")

    def _frame_one(self, ns: NetStream) -> bool:
        """:meth:`_pump`'s common case, quicker: ``ns`` alone has data, all of it
        fits one frame, and its direction is not ending. False: use _pump."""
        sid = ns.stream_id
        outbox = ns.outbox
        if sid is None or ns.done or not ns.can_send or ns.out_end_requested or ns.out_ended or not outbox:
            return False
        n = len(outbox)
        if n > _FRAME_CAP or self.mux.sendable(sid) < n:
            return False
        try:
            self._send_frame(ns, sid, n, False, self._clock.current_time())
        except Exception:  # the stream closed under us (e.g. peer reset)
            self._drop_broken(ns)
        self.ready.pop(ns, None)
        return True

    def _send_frame(self, ns: NetStream, sid: int, n: int, end_stream: bool, now: float) -> None:
        """One DATA frame of the first ``n`` queued bytes of ``ns``."""
        self.mux.send_data_parts(sid, ns.outbox.take_parts(n), end_stream=end_stream)
        ns.last_sent = now
        if ns.send_lot:
            ns.send_lot.unpark_all()

    def _drop_broken(self, ns: NetStream) -> None:
        """``ns`` closed under us (e.g. the peer reset it): drop what it had queued."""
        ns.outbox.clear()
        if not ns.done:
            ns.on_reset(5, remote=False)
        self.ready.pop(ns, None)

    def _pump(self) -> None:
        budget = _WRITE_BUDGET
        now = trio.current_time()
        mux = self.mux
        progress = True
        while progress and budget > 0 and self.ready:
            progress = False
            for ns in list(self.ready):
                if ns.done or ns.stream_id is None or not ns.can_send:
                    if ns.done or ns.stream_id is None:
                        self.ready.pop(ns, None)
                    continue
                sid = ns.stream_id
                # An HTTP/2 server must not complete its response while the
                # request is still open (proxies may then cancel the request):
                # it ends its direction with the end marker instead, and sends
                # END_STREAM once the client's END_STREAM arrived.
                marker = mux.needs_end_marker and not ns.in_ended and ns.role != "park"
                try:
                    if ns.outbox and not ns.out_ended:
                        n = min(len(ns.outbox), mux.sendable(sid), budget, _FRAME_CAP)
                        if n > 0:
                            end = n == len(ns.outbox) and ns.out_end_requested and not marker
                            self._send_frame(ns, sid, n, end, now)
                            budget -= n
                            progress = True
                            if end:
                                ns.on_out_ended()
                    if not ns.outbox and ns.out_end_requested and not ns.out_ended:
                        if not marker:
                            mux.end_stream(sid)
                            ns.on_out_ended()
                            progress = True
                        elif not ns.marker_sent and mux.sendable(sid) >= 1:
                            mux.send_data(sid, END_MARKER)
                            ns.on_marker_sent()
                            progress = True
                except Exception:  # the stream closed under us (e.g. peer reset)
                    self._drop_broken(ns)
                    continue
                if not ns.outbox and (ns.out_ended or not ns.out_end_requested or ns.marker_sent):
                    self.ready.pop(ns, None)
        if budget <= 0:
            self.writer_due = True

    async def _keepalive(self) -> None:
        """:meth:`_tick` every third of the shorter of ``keepalive_interval`` and
        ``peer_timeout`` until the link ends, in :meth:`run`'s own task, which has
        nothing else to do meanwhile when a reader task reads (a transport not read
        directly; otherwise :meth:`_read_and_tick` ticks)."""
        tick = self.config.tick_interval
        ended = self._ended
        while not ended.is_set():
            with trio.move_on_after(tick):
                await ended.wait()
            if ended.is_set():
                return
            self._tick()

    def _tick(self) -> None:
        """The keepalive tick: ``peer_timeout``, keepalive items on idle streams, a PING,
        and the retiring of a writer that had nothing to do since the last tick."""
        interval = self.config.keepalive_interval
        now = trio.current_time()
        silent = now - self._last_rx
        if silent > self.config.peer_timeout and not self._reading_paused:
            self._end(f"the peer sent nothing for {silent:.1f}s (peer_timeout {self.config.peer_timeout}s)")
            return
        queued = False
        for ns in list(self.streams.values()) if self.keepalive_data else ():
            if (
                ns.can_send
                and not ns.out_ended
                and not ns.out_end_requested
                and not ns.outbox
                and now - ns.last_sent >= interval
            ):
                ns.outbox += KEEPALIVE
                self.ready[ns] = None
                queued = True
        self.mux.ping()
        if queued and self._writes_here():
            self._pump()  # (the keepalive items framed here, as the writer would: no writer for them)
            if self.writer_due:
                self._kick_writer()  # (_pump ran out of budget on what other streams queued)
        self._write_here()  # (the writer is woken if the socket did not take it all)
        # A writer that made no pass since the last tick retires (it is started
        # again when something is to be written): an idle connection keeps no task
        # for it. (On a transport not written directly, the PINGs need the writer:
        # it does not retire there.)
        if self._writer_running and self._writer_passes == self._writer_passes_seen and not self.writer_due:
            self._writer_retiring = True
            self._write_lot.unpark_all()
        self._writer_passes_seen = self._writer_passes


def _drop_unread(streams: weakref.WeakSet[NetStream], why: str) -> None:
    """The budget takes back what the streams of an ended connection still hold: their
    readers get the error instead of the items they had not read."""
    peer_log(log, logging.WARNING, "dropping the unread items of an ended connection: %s", why)
    for ns in list(streams):
        ns.drop_inbox(trio.BrokenResourceError(f"connection lost; its {ns.held - ns.released} unread bytes were dropped: {why}"))
