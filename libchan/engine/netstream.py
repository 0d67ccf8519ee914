"""One multiplexed stream as seen by trio code, and the objects handed to the application.

:class:`NetStream` holds the state of one stream of a session: an inbox of
decoded items (messages or byte chunks) filled by the link's reader task, and
an outbox of framed bytes drained by the link's writer task. It may exist
before its wire stream does (a reference that arrived before its stream), in
which case it is *unbound* until the session binds it.

:class:`NetSender`, :class:`NetReceiver` and :class:`NetByteStream` are the
thin facades the application uses.
"""

from __future__ import annotations

from collections import deque
import types
from typing import TYPE_CHECKING, Any, Generator, cast

import trio

from ..channel import Receiver, Sender
from ..errors import SessionClosedError
from ..stream import ByteStream, Direction, checked_max_bytes, immutable_view
from ..messages.bodies import DecodeFailure, FramedMessages, GoMessages
from ..compat.trio_cancel import must_checkpoint
from .outbox import Outbox
from .waiters import NO_WAITERS, Lot, own_lot

if TYPE_CHECKING:
    from .budget import Account
    from .seams import LinkPort, SessionPort

__all__ = ["NetStream", "NetSender", "NetReceiver", "NetByteStream", "facade_for"]

CANCEL = 8
NO_ERROR = 0
_YIELD_EVERY = 256

#: Sends and receives since the last yield at one of them (see :func:`_yield_due`).
_ops = 0


def _yield_due() -> bool:
    """Count one send/receive; True every _YIELD_EVERY-th.

    Every call is a cancellation point; yielding to the scheduler on every message
    would cap throughput at one message per scheduler pass, so sends and receives
    yield every _YIELD_EVERY operations instead (a plain function, not a coroutine,
    to keep the per-message path cheap). The count is one for the thread, not one
    per stream: a task that sends (or receives) round-robin over many streams yields
    as often as one on a single stream, and so lets the link's writer put what it
    queued on the wire (with a count per stream, a task sending over 10,000 streams
    yielded once in 640,000 messages, queueing them all while the peer sat idle).
    256 rather than 64 (issue 17): each yield is a pass of trio's scheduler with its
    epoll poll, and a writer pass with its write; a one-way channel carried about 10 %
    more messages/s (bench.py, alternating runs); a task holds the thread at most a few
    hundred microseconds between yields.
    """
    global _ops
    _ops += 1
    if _ops >= _YIELD_EVERY:
        _ops = 0
        return True
    return False


#: For each kind (named by what the receiver of the message gets), the flags
#: (messages?, receiver_writes, receiver_reads).
_KIND_FLAGS: dict[str, tuple[bool, bool, bool]] = {
    "sender": (True, True, False),
    "receiver": (True, False, True),
    "stream": (False, True, True),
    "read-stream": (False, False, True),
    "write-stream": (False, True, False),
}

#: The bodies with a one-message lane (feed_one).
_ONE_ITEM_BODIES = (FramedMessages, GoMessages)


class _SpentBody:
    """The body decoder of a stream that ended with a partial item: the partial
    bytes are dropped (they can never complete), nothing more is decoded."""

    error: Exception | None = None
    ended = False
    buffered = 0
    footprint = 0

    def feed(self, data: bytes) -> tuple[list[tuple[Any, int]], int]:
        return [], len(data)

    def feed_one(self, data: bytes) -> None:
        return None

    def at_boundary(self) -> bool:
        return True


_SPENT = _SpentBody()


class _NoItems(deque):  # type: ignore[type-arg]
    """The inbox of every stream that holds no item: an empty deque is 760 bytes, and
    an idle channel, a parked request or a control stream holds none nearly all the
    time. Shared, so never appended to: a stream gets a deque of its own for its first
    item (:meth:`NetStream._queue`) and goes back to this one when it empties."""

    def append(self, item: object) -> None:
        raise RuntimeError("the shared empty inbox of NetStream")


_NO_ITEMS: deque[Any] = _NoItems()

#: Bytes of taken items that may wait to be accounted for together (NetStream._take):
#: what the account and the link's counts may overstate a stream by, between the
#: moments they judge (and account for them first).
_RELEASE_STEP = 16384


class NetStream:
    """State of one libchan stream (channel or byte stream) on a session.

    On a server's connection, the bytes it holds -- the partial item being
    assembled, complete items not read yet (``held``), its outbox -- are charged
    to the connection's budget account (``account``, set by :meth:`bind`;
    ``charged`` is what the received side has charged so far)."""

    # (slots: thousands of idle channels each cost one of these; a dict per stream was 1.6 KB)
    __slots__ = ("_one_item_lane", "_release_at", "_settle_at", "_settle_hold", "account", "body", "can_send",
        "charged", "clean_end", "done", "early_end", "error", "held", "in_ended", "inbox", "kind",
        "last_sent", "link", "marker_sent", "messages", "out_end_requested", "out_ended", "outbox", "owed",
        "pipe_reading", "prebuffer", "recv_lot", "ref", "released", "remote_finished", "reset_after_end", "role",
        "send_lot", "session", "splice", "stream_id", "we_read", "we_write", "__weakref__")

    def __init__(
        self,
        session: SessionPort,
        *,
        role: str,
        kind: str | None = None,
        opener: bool = False,
        ref: int | None = None,
    ) -> None:
        self.session = session
        self.role = role  # "stream", "park", "control"
        self.ref = ref
        self.link: LinkPort | None = None
        self.stream_id: int | None = None
        self.can_send = False  # HEADERS allow us to send DATA now
        self.body: Any = None  # the decoder of what the peer writes; None until the kind is known
        self.prebuffer = bytearray()  # data that arrived before the kind was known (Go profile)
        #: Complete items not read yet (_NO_ITEMS while there are none).
        self.inbox = _NO_ITEMS
        self.in_ended = False
        self.clean_end = False
        self.remote_finished = False  # end marker received
        self.marker_sent = False  # we (server) ended our direction with the marker
        self.out_end_requested = False
        self.out_ended = False
        self.reset_after_end = False
        self.error: BaseException | None = None
        self.done = False
        self.outbox = Outbox()
        #: Who waits to read, and to send (the shared NO_WAITERS until someone did: waiters.py).
        self.recv_lot = NO_WAITERS
        self.send_lot = NO_WAITERS
        self.last_sent = trio.current_time()
        self.early_end = False
        self.owed = 0  # received bytes not yet acknowledged
        self.held = 0  # wire bytes of complete items waiting in the inbox (and ``released``)
        #: Wire bytes of items taken from the inbox that ``held``, the link's counts and
        #: the account still count: a run of takes is accounted for at once (_take).
        self.released = 0
        #: ``released`` may grow below this before a take accounts for it (0: every take
        #: does; set by _plan_release, and to 0 when anything may have moved a limit).
        self._release_at = 0
        self.account: Account | None = None
        self.charged = 0  # held + partial item, as last charged to the account
        window = session.config.stream_window
        self._settle_at = max(1, window // 4)  # owed bytes worth a WINDOW_UPDATE (settle)
        self._settle_hold = window // 2  # ... unless the inbox holds more than this
        #: A local pipe's sending end that a forwarder copies this stream into.
        #: While that forwarder waits for input, messages are handed to the pipe
        #: directly (``send_nowait``), saving the task hop per message.
        self.splice: Any = None
        #: The pipe's receiving task is reading the connection for this stream
        #: (read_for_pipe): new messages wait in the inbox for it, the forwarder
        #: is not woken for them.
        self.pipe_reading = False
        self.kind = kind
        self.messages = True
        self.we_write = role != "park"
        self.we_read = True
        #: on_data may take the one-message lane (FramedMessages/GoMessages.feed_one): a
        #: message channel we read (set by set_kind).
        self._one_item_lane = False
        if kind is not None:
            self.set_kind(kind, opener=opener)
        elif role != "stream":
            self.body = session.profile.control_body(session)

    def set_kind(self, kind: str, *, opener: bool) -> None:
        """Set direction flags: ``kind`` is what the non-opener gets."""
        messages, recv_writes, recv_reads = _KIND_FLAGS[kind]
        self.kind = kind
        self.messages = messages
        if opener:
            self.we_write, self.we_read = recv_reads, recv_writes
        else:
            self.we_write, self.we_read = recv_writes, recv_reads
        profile = self.session.profile
        self.body = profile.message_body(self.session) if messages else profile.bytes_body(self.session)
        self._one_item_lane = (
            self.role == "stream" and self.we_read and type(self.body) in _ONE_ITEM_BODIES and self.session.config.fast_paths
        )
        if self.prebuffer:
            data = bytes(self.prebuffer)
            self.prebuffer.clear()
            self.owed -= len(data)  # counted when it arrived
            self.on_data(data)
            if self.early_end:
                self.on_end()

    def __repr__(self) -> str:
        return f"<NetStream {self.role} {self.kind} ref={self.ref} sid={self.stream_id}>"

    # -- budget ------------------------------------------------------------
    def _recharge(self) -> None:
        """Charge the account what the received side holds now (held + partial item)."""
        account = self.account
        if account is None:
            return
        body = self.body
        fp = self.held + (body.footprint if body is not None else len(self.prebuffer))
        d = fp - self.charged
        if d:
            self.charged = fp
            account.charge(d)

    def _hold(self, n: int) -> None:
        """``held`` changes by ``n``; the link keeps the sum over its streams and the
        number of its streams holding more than ``hold_limit`` (so that it never scans
        its streams to know either: work per connection stays linear)."""
        old = self.held
        new = self.held = old + n
        link = self.link
        if link is not None and not self.done:  # (a done stream left the link's counts)
            link.unread += n
            limit = link.hold_limit
            if (old > limit) != (new > limit):
                link.streams_over += 1 if new > limit else -1
                if not link.streams_over:
                    link.resume_reading()  # (a Go-profile connection paused for it)

    def _drop_partial(self) -> None:
        """No more data will come: free a partial item (it cannot complete)."""
        if self.prebuffer:
            self.prebuffer = bytearray()
        if self.body is not None and self.body.footprint:
            self.body = _SPENT
        self._recharge()

    def recv_waiters(self) -> Lot:
        """The lot a task parks in to wait for input (made on first use)."""
        lot = self.recv_lot = own_lot(self.recv_lot)
        return lot

    def send_waiters(self) -> Lot:
        """The lot a task parks in to wait for room to send or for the end (made on first use)."""
        lot = self.send_lot = own_lot(self.send_lot)
        return lot

    def _queue(self, item: tuple[Any, int]) -> None:
        """Put an item (its value and wire size) in the inbox, which holds them one
        after the other, not as a tuple: with many channels, what sits in inboxes
        until their readers run is what makes the cyclic collector run, and a tuple
        is one object more for it per message (ints and bytes are none)."""
        inbox = self.inbox
        if inbox is _NO_ITEMS:
            inbox = self.inbox = deque()
        inbox.append(item[0])
        inbox.append(item[1])

    def drop_inbox(self, error: BaseException | None = None) -> None:
        """The application closed its end, or the budget needs the bytes back: what it
        did not read goes (if there was some, a later receive raises ``error`` when
        given, instead of the stream's own)."""
        if error is not None and (self.held or self.inbox):
            self.error = error
            self.clean_end = False  # (what the peer sent did not all reach the reader)
        self.inbox = _NO_ITEMS
        self._forget_release()
        self.released = 0
        self._hold(-self.held)  # (``released`` included)
        self._drop_partial()

    def __del__(self) -> None:
        if self.account is not None and self.charged:
            self.account.charge(-self.charged)
            self.charged = 0

    # -- called by the link (reader task) ---------------------------------
    def on_data(self, data: bytes | memoryview) -> None:
        if self.released:
            self.account_release()  # (settle and the account judge by exact figures)
        self._release_at = 0  # (what arrives moves the limits _plan_release keeps below)
        if not self._on_data(data) and self.account is not None:
            self._recharge()

    def _on_data(self, data: bytes | memoryview) -> bool:
        """on_data's work past the bookkeeping of takes; True if the message went
        straight to the consumer that read it (nothing held: nothing to charge)."""
        # Flow control: every received byte is owed a WINDOW_UPDATE. It is
        # paid at once while the complete-but-unread items held in the inbox
        # stay under half the stream window, and otherwise when the
        # application reads. Bytes of an item still incomplete are paid at
        # once, so an item larger than the window can always complete (it is
        # bounded by max_message_size instead).
        self.owed += len(data)
        if self.error is not None or self.done:
            self.settle()
            return False
        if self._one_item_lane and (self.splice is None or self.pipe_reading):
            item = self.body.feed_one(data)
            if item is not None:
                if type(item[0]) is DecodeFailure and self.body.error is not None:  # fatal, as feed says
                    self.settle()
                    self.protocol_failure(item[0].error)
                    return False
                link = self.link
                if link is not None and link.reading_for is self and not self.inbox and (self.pipe_reading or not self.recv_lot):
                    # The consumer that read it takes it next, in this task, before
                    # anything else runs (read_item, read_for_pipe): it is its own
                    # already, never held -- no count, charge or release to keep. (A
                    # negative wire size says so to _take; _account_direct holds it
                    # if it stays in the inbox after all.)
                    inbox = self.inbox = deque()
                    inbox.append(item[0])
                    inbox.append(-item[1])
                    self.settle()
                    return True
                self._queue(item)
                self._hold(item[1])
                if not self.pipe_reading:
                    self._wake_readers()
                self.settle()
                return False
        if self.body is None:
            # Go profile: a stream whose message has not named it yet.
            self.prebuffer += data
            if len(self.prebuffer) > self.session.config.max_message_size + self.session.config.stream_window:
                from ..errors import RemoteProtocolError

                self.protocol_failure(RemoteProtocolError("too much data on a stream no message has named yet"))
            return False
        try:
            items, _free = self.body.feed(data)
        except Exception as exc:  # framing error: typed, stream-local
            self.settle()
            self.protocol_failure(exc)
            return False
        if self.role != "stream" or not self.we_read:
            # Parks and control streams carry keepalives only; a writer-only
            # half ignores (but acknowledges) anything the reader sends.
            self.settle()
            if self.body.ended and not self.remote_finished:
                self.on_end_marker()
            return False
        splice = self.splice
        queued = False
        if splice is None:
            if items:
                # (what _queue and _hold do for each item, once for all of them)
                inbox = self.inbox
                if inbox is _NO_ITEMS:
                    inbox = self.inbox = deque()
                append = inbox.append
                wires = 0
                for msg, wire in items:
                    append(msg)
                    append(wire)
                    wires += wire
                self._hold(wires)
                queued = True
        else:
            for item in items:
                if not self.inbox and self.recv_lot and not self.pipe_reading and type(item[0]) is not DecodeFailure:
                    try:
                        splice.send_nowait(item[0])
                        if self.link is not None:
                            self.link.handoff = True  # the pipe's receiver may come back to read
                        continue
                    except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                        pass  # the forwarder takes it (and handles the closed pipe)
                self._queue(item)
                self._hold(item[1])
                queued = True
        if queued and not self.pipe_reading:
            self._wake_readers()
        self.settle()
        if self.body.error is not None:
            self.protocol_failure(self.body.error)
        elif self.body.ended and not self.remote_finished:
            self.on_end_marker()
        return False

    def on_end_marker(self) -> None:
        """The peer (an HTTP/2 server) finished its direction; its END_STREAM comes after ours."""
        self.remote_finished = True
        self.clean_end = self.error is None
        self._wake_readers()
        if self.role == "control":
            self.session.on_control_ended(self)
        if not self.we_write or self.role != "stream":
            self.request_end()

    def settle(self) -> None:
        """Send the WINDOW_UPDATE we owe, unless the reader is too far behind."""
        if self.owed < self._settle_at or self.held > self._settle_hold:
            return  # batch: the peer still has three quarters of the window; or the reader is behind
        if self.link is not None and self.stream_id is not None and not self.in_ended:
            self.link.acknowledge(self, self.owed)
        self.owed = 0

    def on_end(self) -> None:
        if self.body is None:
            self.early_end = True  # the kind (and body decoder) is not known yet
            return
        if self.in_ended:
            return
        self.in_ended = True
        self.clean_end = self.error is None and self.body.at_boundary()
        if self.error is None and not self.body.at_boundary():
            from ..errors import RemoteProtocolError

            self.error = RemoteProtocolError(
                f"stream ended in the middle of an item ({self.body.buffered} bytes left over)"
            )
            self._drop_partial()
        self._wake_readers()
        if self.role == "control" and not self.remote_finished:
            self.session.on_control_ended(self)
        if not self.we_write or self.role != "stream":
            self.request_end()
        if self.marker_sent and not self.out_ended and self.link is not None:
            self.link.schedule(self)  # now the END_STREAM may follow the marker
        self._check_done()

    def on_reset(self, code: int, remote: bool = True) -> None:
        if self.done:
            return
        if code == NO_ERROR and self.in_ended and (self.out_ended or not self.we_write):
            pass  # RFC 9113 8.1: the response is complete, stop sending
        elif self.error is None:
            self.error = self._broken(
                f"the peer closed this {'channel' if self.messages else 'byte stream'}"
                if code == CANCEL
                else f"stream reset by the peer (HTTP/2 error code {code})"
                if remote
                else f"stream reset (HTTP/2 error code {code})"
            )
        self.in_ended = True
        self.out_ended = True
        self.outbox.clear()
        self._finish()

    def fail(self, exc: BaseException) -> None:
        """Terminal failure (session or connection gone)."""
        if self.error is None:
            self.error = exc
        self.in_ended = True
        self.out_ended = True
        self.outbox.clear()
        self._finish()

    def protocol_failure(self, exc: BaseException) -> None:
        """The peer sent something invalid on this stream: error to the app, reset to the peer."""
        if self.error is None:
            self.error = exc
        from ..errors import MessageTooLargeError

        code = 11 if isinstance(exc, MessageTooLargeError) else 1  # ENHANCE_YOUR_CALM / PROTOCOL_ERROR
        self.reset(code)
        if self.role == "control":
            self.session.on_control_failed(str(exc))

    def _broken(self, text: str) -> BaseException:
        if self.session.closed_reason is not None:
            return SessionClosedError(self.session.closed_reason)
        return trio.BrokenResourceError(text)

    def _wake_readers(self) -> None:
        """Something arrived or changed for whoever waits to read this stream."""
        link = self.link
        if self.recv_lot:
            self.recv_lot.unpark_all()
            if link is not None:
                link.handoff = True
        if link is not None and link.input_owner is self:
            link.stop_reading_for(self)

    def _finish(self) -> None:
        self._drop_partial()
        self._wake_readers()
        self.send_lot.unpark_all()
        self._check_done()

    def _check_done(self) -> None:
        if not self.done and self.in_ended and self.out_ended:
            if self.released:
                self.account_release()  # (while the link still counts this stream)
            self.done = True
            self._wake_readers()
            self.send_lot.unpark_all()
            if self.link is not None:
                self.link.stream_done(self)
            self.session.stream_done(self)

    def on_marker_sent(self) -> None:
        self.marker_sent = True
        self.send_lot.unpark_all()
        if self.reset_after_end and not self.peer_finished:
            self.reset(CANCEL)

    @property
    def peer_finished(self) -> bool:
        """The peer ended its direction (END_STREAM or the end marker)."""
        return self.in_ended or self.remote_finished

    def on_out_ended(self) -> None:
        self.out_ended = True
        self.send_lot.unpark_all()
        if self.reset_after_end and not self.peer_finished:
            self.reset(CANCEL)
            return
        self._check_done()


    # -- binding ---------------------------------------------------------------
    def bind(self, link: LinkPort, stream_id: int, *, can_send: bool) -> None:
        self.link = link
        self.stream_id = stream_id
        self.can_send = can_send
        if self.held:
            held, self.held = self.held, 0
            self._hold(held)
        account = link.account
        if account is not None and self.account is None:
            self.account = account
            self.outbox.charge_to(account)
            self._recharge()
        link.register(self)
        if self.outbox or self.out_end_requested:
            link.schedule(self)

    # -- called by the facades --------------------------------------------------
    def try_queue(self, data: bytes | memoryview) -> bool:
        """Queue framed bytes if that needs no waiting and no error; else False
        (then :meth:`write` waits or raises). The caller checked for cancellation."""
        outbox = self.outbox
        if outbox._len > self.session.config.send_buffer or self.error is not None or self.out_end_requested or self.out_ended:
            return False  # (``_len``: what len(outbox) gives, without a call per message)
        outbox.append(data)
        link = self.link
        if link is not None and not (link.writer_due and self in link.ready):
            link.schedule(self)  # (else the writer, already due, takes it with the rest)
        return True

    async def write(self, data: bytes | memoryview, more: bytes | memoryview = b"") -> None:
        """Queue framed bytes once the queue is short enough (backpressure).

        A ``write`` cancelled while it waits has queued nothing, so a
        cancelled ``send`` did not send, as with trio memory channels.
        """
        if must_checkpoint():
            await trio.lowlevel.checkpoint()
        outbox = self.outbox
        if len(outbox) > self.session.config.send_buffer or self.error is not None or self.out_end_requested:
            self._check_writable()
            limit = self.session.config.send_buffer
            while len(outbox) > limit and self.error is None and not self.out_ended:
                await self.send_waiters().park()
            self._check_writable()
        elif self.out_ended:
            self._check_writable()
        outbox.append(data)
        if more:
            outbox.append(more)
        if self.link is not None:
            self.link.schedule(self)
        if _yield_due():
            await trio.lowlevel.cancel_shielded_checkpoint()

    def _check_writable(self) -> None:
        if self.out_end_requested:
            raise trio.ClosedResourceError("this end was already closed")
        if self.error is not None:
            raise self.error
        if self.out_ended:
            raise trio.BrokenResourceError("the stream is closed")

    async def wait_writable(self) -> None:
        limit = self.session.config.send_buffer
        while len(self.outbox) > limit and self.error is None and not self.out_ended:
            await self.send_waiters().park()
        await trio.lowlevel.checkpoint()

    def request_end(self) -> None:
        if self.out_end_requested or self.out_ended:
            return
        self.out_end_requested = True
        if self.link is not None:
            self.link.schedule(self)

    def reset(self, code: int) -> None:
        if self.done:
            return
        if self.link is not None and self.stream_id is not None:
            self.link.reset_stream(self, code)
        if self.error is None:
            self.error = trio.ClosedResourceError("this end was closed") if code == CANCEL else trio.BrokenResourceError(f"stream reset (code {code})")
        self.in_ended = True
        self.out_ended = True
        self.outbox.clear()
        self._finish()

    def _take(self) -> Any:
        """The first item of the inbox, taken out. Its bytes are accounted for (``held``,
        the link's counts, the account; its window may be acknowledged) now, or with
        those of the next takes while they stay under ``_release_at`` and the inbox
        does not empty (:meth:`_plan_release`): per message, that accounting was most
        of what a read costs beyond the decoding."""
        inbox = self.inbox
        msg = inbox.popleft()
        wire: int = inbox.popleft()
        if wire < 0:  # handed straight to the consumer that read it: never held (_on_data)
            if not inbox:
                self.inbox = _NO_ITEMS
            return msg
        released = self.released + wire
        if released < self._release_at and inbox:
            self.released = released
            return msg
        if not inbox:
            self.inbox = _NO_ITEMS
        self.released = 0
        self._release(released)
        self._plan_release()
        return msg

    def _account_direct(self) -> None:
        """A message _on_data handed to the consumer that read it is still in the inbox
        (that consumer gives it to another task): from now on it is held like any other."""
        inbox = self.inbox
        if inbox and inbox[1] < 0:
            wire = inbox[1] = -inbox[1]
            self._hold(wire)
            if self.account is not None:
                self._recharge()

    def _release(self, wire: int) -> None:
        """``wire`` bytes of items taken from the inbox leave ``held``, the link's counts
        and the account; the window they free may be acknowledged now (:meth:`settle`).
        (Once per run of takes, not per message: see :meth:`_take`.)"""
        self._hold(-wire)
        account = self.account
        if account is not None:
            self.charged -= wire
            account.charge(-wire)
            if account.withholding and not self.held:
                account.on_relief()  # (the link looks whether it may grant window again)
        self.settle()

    def _plan_release(self) -> None:
        """After a take accounted for: how many bytes the next takes may leave
        unaccounted. Never past a limit that an exact count would cross sooner: the
        stream window's half (settle acknowledges below it), ``hold_limit`` (the link's
        ``streams_over``); and none while the account withholds window (its relief is
        looked at on every take), on a stream that is done, with fast paths off, or
        once the inbox is empty. Limits of the whole connection are judged on exact
        figures too: a stream that leaves bytes unaccounted is in the link's
        ``releasing``, whose bytes the link accounts for before it judges
        (:meth:`account_release`)."""
        at = 0
        link = self.link
        account = self.account
        if (
            self.inbox
            and link is not None
            and not self.done
            and (account is None or not account.withholding)
            and self.session.config.fast_paths
        ):
            held = self.held
            at = _RELEASE_STEP
            if held > self._settle_hold:
                at = min(at, held - self._settle_hold)
            if held > link.hold_limit:
                at = min(at, held - link.hold_limit)
        self._release_at = at
        if account is not None and link is not None:
            if at:
                link.releasing[self] = None
            else:
                link.releasing.pop(self, None)

    def account_release(self) -> None:
        """Account now for the bytes taken and not accounted for yet (for the link,
        before it judges the connection's limits; and before data arrives or the stream
        is done); the next take plans again."""
        self._forget_release()
        released, self.released = self.released, 0
        if released:
            self._release(released)

    def _forget_release(self) -> None:
        self._release_at = 0
        link = self.link
        if link is not None and self.account is not None:
            link.releasing.pop(self, None)

    async def read_for_pipe(self) -> tuple[str, Any]:
        """For the receiving task of a local pipe this stream is forwarded into:
        while the forwarder holds nothing (it waits for this stream, inbox empty
        or not), take the next message here, reading the connection in this task
        if needed -- the message skips both the forwarder and the reader task.
        Returns ``("item", message)``, ``("again", None)`` after a read that
        brought nothing for this stream, or ``("no", None)`` when the pipe must
        be received from normally."""
        link = self.link
        if not self.recv_lot or self.error is not None or self.in_ended:
            return "no", None
        if self.inbox:
            if type(self.inbox[0]) is DecodeFailure:
                return "no", None  # the forwarder deals with it
            await trio.lowlevel.checkpoint_if_cancelled()  # (never yields and goes on: the item stays ours)
            msg = self._take()
            if _yield_due():
                await trio.lowlevel.cancel_shielded_checkpoint()
            return "item", msg
        if link is None or not link.can_read_for(self):
            return "no", None
        self.pipe_reading = True
        try:
            await link.read_for(self)
        finally:
            self.pipe_reading = False
            link.input_released()
        if self.inbox and self.recv_lot and type(self.inbox[0]) is not DecodeFailure:
            return "item", self._take()
        self._account_direct()  # (the forwarder takes it: it waits like any other)
        if self.inbox or self.in_ended or self.error is not None:
            self._wake_readers()  # the forwarder delivers it (or the end)
        return "again", None

    def _may_read_for(self) -> bool:
        """Its reader may read the connection itself: nobody else reads it, and no
        forwarder into a local pipe reads this stream (that leaves it to the pipe's
        receiver)."""
        link = self.link
        return link is not None and self.splice is None and link.can_read_for(self)

    def must_wait(self) -> bool:
        """A reader with nothing to take (no item, no end, no error) that may not read
        the connection itself (:meth:`_may_read_for`) can only wait; False otherwise
        (:meth:`read_item` takes, ends, raises or reads)."""
        if self.inbox or self.clean_end or self.error is not None or self.in_ended:
            return False
        return not self._may_read_for()

    async def read_item(self) -> Any:
        if must_checkpoint():
            await trio.lowlevel.checkpoint()
        read_for: LinkPort | None = None
        try:
            while True:
                if self.inbox:
                    item = self._take()
                    if _yield_due():
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    if type(item) is DecodeFailure:
                        raise item.error
                    return item
                if self.clean_end:
                    raise trio.EndOfChannel
                if self.error is not None:
                    raise self.error
                if self.in_ended:
                    raise trio.EndOfChannel
                if self._may_read_for():
                    # nobody is reading the connection: read it here rather than
                    # wait for the reader task to hand the message over
                    read_for = cast("LinkPort", self.link)
                    await read_for.read_for(self)
                    continue
                await self.recv_waiters().park()
        finally:
            if read_for is not None:
                read_for.input_released()


class NetSender(Sender):
    """A Sender whose messages travel over a session."""

    def __init__(self, ns: NetStream) -> None:
        self._ns = ns
        self._closed = False

    async def send(self, value: Any) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this Sender was closed")
        ns = self._ns
        if ns.error is not None:
            await trio.lowlevel.checkpoint()
            raise ns.error
        session = ns.session
        if type(value) is bytes and len(value) < session.short_bytes_below and session.closed_reason is None and not session.closing:
            wire = session.short_bytes_heads[len(value)] + value
        else:
            payload, new = session.encode(value)
            if new:
                await session.open_and_forward(new, ns)
            framed = session.profile.wire_message(payload)
            if type(framed) is tuple:
                await ns.write(*framed)
                return
            wire = cast(bytes, framed)  # (not a pair: bytes)
        # the common case without a second coroutine: written at once, or room in
        # the queue, nothing to wait for
        if must_checkpoint():
            await trio.lowlevel.checkpoint()
        link = ns.link
        if (link is None or link.flushed or not link.send_now(ns, wire)) and not ns.try_queue(wire):
            await ns.write(wire)  # (waits for room, or raises)
            return
        global _ops
        _ops += 1  # (_yield_due, written out as in receive)
        if _ops >= _YIELD_EVERY:
            _ops = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._ns.request_end()
        await trio.lowlevel.checkpoint()

    def _abort(self, reason: str | BaseException) -> None:
        """The source forwarded into this end broke: the peer sees a reset (CANCEL)."""
        self._closed = True
        self._ns.reset(CANCEL)

    def __repr__(self) -> str:
        return f"<libchan.NetSender ref={self._ns.ref}>"


class NetReceiver(Receiver):
    """A Receiver whose messages travel over a session."""

    def __init__(self, ns: NetStream) -> None:
        self._ns = ns
        self._closed = False

    async def receive(self) -> Any:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this Receiver was closed")
        ns = self._ns
        global _ops
        if ns.inbox and _ops < _YIELD_EVERY - 1:
            # the common case without a second coroutine: a message is waiting
            if must_checkpoint():
                await trio.lowlevel.checkpoint()  # (raises, or yielded: look again)
            if ns.inbox:
                msg = ns._take()
                _ops += 1
                if type(msg) is DecodeFailure:
                    raise msg.error
                return msg
        return await ns.read_item()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            ns = self._ns
            if not ns.peer_finished:
                ns.reset(CANCEL)
            ns.drop_inbox()
        await trio.lowlevel.checkpoint()

    def _abort(self, reason: str | BaseException) -> None:
        """The source forwarded into this end broke: the peer sees a reset (CANCEL)."""
        self._closed = True
        self._ns.reset(CANCEL)

    def __repr__(self) -> str:
        return f"<libchan.NetReceiver ref={self._ns.ref}>"


@types.coroutine
def _next_message(receiver: NetReceiver) -> Generator[Any, Any, Any]:
    """NetReceiver.__anext__: the next message (StopAsyncIteration at the clean end)."""
    if receiver._closed:
        yield from trio.lowlevel.checkpoint()
        raise trio.ClosedResourceError("this Receiver was closed")
    ns = receiver._ns
    global _ops
    if ns.inbox and _ops < _YIELD_EVERY - 1:
        if must_checkpoint():
            yield from trio.lowlevel.checkpoint()  # (raises, or yielded: look again)
        if ns.inbox:
            msg = ns._take()
            _ops += 1
            if type(msg) is DecodeFailure:
                raise msg.error
            return msg
    if ns.must_wait():
        # read_item's wait, done here
        yield from ns.recv_waiters().park()  # type: ignore[misc]  # (a coroutine, or wait_on's generator)
        if ns.inbox:
            msg = ns._take()
            if type(msg) is DecodeFailure:
                raise msg.error
            return msg
    try:
        msg = yield from ns.read_item()
    except trio.EndOfChannel:
        raise StopAsyncIteration from None
    return msg


# receive() written out (ReceiveChannel's __anext__ awaits it), as a generator-based
# coroutine, and the class's __anext__ itself (no method frame of its own around it: one
# Python call less per message): with many channels, each read by a task that waits for
# its next message, what a wait makes lives until that message, long enough to reach the
# cyclic collector's oldest generation; this way a wait makes one object (the generator;
# the lot's trap is made once), where an ``async def`` and trio's wait_task_rescheduled
# make four
NetReceiver.__anext__ = _next_message  # type: ignore[assignment,method-assign]


class NetByteStream(ByteStream):
    """A byte stream carried by a session (duplex, read-only or write-only)."""

    def __init__(self, ns: NetStream, direction: Direction) -> None:
        self._ns = ns
        self.direction = direction
        self._closed = False
        self._pending = b""  # a chunk taken from the stream, read from ``_at`` on
        self._at = 0
        self._sending = False
        self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this byte stream")
        if not self.writable:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this byte stream is read-only")
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this byte stream was closed")
        self._sending = True
        try:
            view = immutable_view(data)  # sliced into chunks, never copied again
            if not view:
                await trio.lowlevel.checkpoint()
                self._ns._check_writable()
                return
            profile = self._ns.session.profile
            chunk = min(profile.chunk_size, self._ns.session.config.max_message_size)
            for i in range(0, len(view), chunk):
                part = view[i : i + chunk]
                await self._ns.write(profile.chunk_header(len(part)), part)
            await trio.lowlevel.cancel_shielded_checkpoint()  # (write yields only now and then)
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this byte stream")
        if not self.writable or self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError(f"this byte stream {'was closed' if self._closed else 'is read-only'}")
        self._sending = True
        try:
            await self._ns.wait_writable()
            if self._closed:
                raise trio.ClosedResourceError("this byte stream was closed")
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this byte stream")
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("this byte stream was closed")
        if self.writable:
            self._ns.request_end()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        max_bytes = checked_max_bytes(max_bytes)
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this byte stream")
        if not self.readable:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this byte stream is write-only")
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this byte stream was closed")
        self._receiving = True
        try:
            if not self._pending:
                chunk = b""
                while not chunk:  # (an empty chunk carries nothing: it is not the end)
                    try:
                        chunk = await self._ns.read_item()
                    except trio.EndOfChannel:
                        if self._closed:  # closed by another task while this one waited
                            raise trio.ClosedResourceError("this byte stream was closed") from None
                        await trio.lowlevel.cancel_shielded_checkpoint()
                        return b""
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        if self._closed:
                            raise trio.ClosedResourceError("this byte stream was closed") from None
                        raise
                self._pending = chunk
                await trio.lowlevel.cancel_shielded_checkpoint()  # (read_item yields only now and then)
            else:
                await trio.lowlevel.checkpoint()
            data = self._pending
            at = self._at
            if max_bytes is not None and len(data) - at > max_bytes:
                # (the rest stays where it is: reading a large chunk in small pieces
                # copies each piece once, not the rest of the chunk every time)
                self._at = at + max_bytes
                return data[at : at + max_bytes]
            self._pending = b""
            self._at = 0
            return data[at:] if at else data
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            ns = self._ns
            if not ns.peer_finished:
                ns.reset_after_end = True
            if ns.we_write:
                ns.request_end()
                if (ns.out_ended or ns.marker_sent) and not ns.peer_finished:
                    ns.reset(CANCEL)  # (a server's marker went out before this close)
            elif not ns.peer_finished:
                ns.reset(CANCEL)
            ns.drop_inbox()
        await trio.lowlevel.checkpoint()

    def _abort(self, reason: str | BaseException) -> None:
        """The source forwarded into this end broke: the peer sees a reset (CANCEL)."""
        self._closed = True
        self._ns.reset(CANCEL)

    def __repr__(self) -> str:
        return f"<libchan.NetByteStream {self.direction} ref={self._ns.ref}>"


_STREAM_DIRECTIONS: dict[str, Direction] = {"stream": "duplex", "read-stream": "read", "write-stream": "write"}


def facade_for(ns: NetStream, kind: str, *, opener: bool) -> Any:
    """The application-facing object for ``ns``; ``kind`` is what the non-opener gets."""
    if kind in ("sender", "receiver"):
        gets_sender = (kind == "sender") != opener
        return NetSender(ns) if gets_sender else NetReceiver(ns)
    direction = _STREAM_DIRECTIONS[kind]
    if opener and direction != "duplex":
        direction = "write" if direction == "read" else "read"
    return NetByteStream(ns, direction)
