"""The memory budget of a server (one ``libchan.serve`` call): a plain accountant, no I/O.

Every connection a server serves has an :class:`Account`; the bytes a connection
makes the process hold (partial messages being assembled, received items the
application has not read, data queued toward the peer) are charged to it by the
streams that hold them (``charge(n)``, ``charge(-n)`` when they go), and the
:class:`Budget` adds them up for the whole server. The trio layer (the link)
decides what to do when a limit is crossed; the accountant only says which
connection has to go:

* a connection holding more than its limit (``Config.connection_buffer``) goes;
* when the server as a whole holds more than ``Config.server_buffer`` less a
  reserve (:func:`held_limit`), the live connection holding the most goes (spec
  14.1). The reserve is for what holding those bytes costs beyond the bytes (the
  allocator's slack around them, copies made while a message is decoded or
  encoded) and for the process's own memory, so that the process as a whole
  stays under ``server_buffer``.

Ending a connection is its link's business (``Account.on_over``, a GOAWAY with
ENHANCE_YOUR_CALM); its bytes are released as its streams let go of them. A
connection also learns when it holds little enough again for its peer to be
granted more window (``on_relief``, see ``Account.withholding``).
"""

from __future__ import annotations

from typing import Callable

__all__ = ["Budget", "Account", "held_limit"]

def held_limit(server_buffer: int) -> int:
    """The bytes a server's connections may make it hold together: half of
    ``server_buffer``. The other half is for what holding them costs beyond the
    bytes, measured with bench/soak.py: the allocator's slack and fragmentation
    around them (up to a quarter more again), copies while a message is decoded or
    encoded, and the process's own memory, which peaks of earlier requests leave
    high (spec 14.1)."""
    return server_buffer // 2


def _nothing(reason: str) -> None:
    return None


def _no_relief() -> None:
    return None


class Account:
    """The bytes one connection makes the process hold."""

    __slots__ = ("budget", "name", "used", "limit", "soft", "over", "closed", "withholding", "on_over", "on_relief", "drop", "exact")

    def __init__(self, budget: Budget, name: str, limit: int, soft: int) -> None:
        self.budget = budget
        self.name = name
        self.used = 0
        #: Above this many bytes the connection is ended.
        self.limit = limit
        #: Above this many the connection's peer is granted no more window.
        self.soft = soft
        #: The connection was told to end (on_over called): not chosen again.
        self.over = False
        #: The connection ended (its remaining bytes go as its streams let go of them).
        self.closed = False
        #: The link withholds window from its peer until ``used`` is back under ``soft``.
        self.withholding = False
        self.on_over: Callable[[str], None] = _nothing
        self.on_relief: Callable[[], None] = _no_relief
        #: Set by the connection as it ends: let go of what its streams still hold
        #: (received items the application has not read yet).
        self.drop: Callable[[str], None] = _nothing
        #: Set by the connection: its streams account now for bytes their readers took
        #: that ``used`` still counts (a run of takes is accounted for at once, so ``used``
        #: may overstate what it holds): called before a limit is judged.
        self.exact: Callable[[], None] = _no_relief

    def charge(self, n: int) -> None:
        """``n`` more bytes held (negative: released)."""
        self.used += n
        budget = self.budget
        budget.used += n
        if n > 0:
            if self.used > self.limit or budget.used > budget.check_above:
                budget.check(self)
        else:
            if self.withholding and self.used < self.soft:
                self.on_relief()  # (which clears ``withholding`` once it granted window)
            if self.closed and self.used <= 0:
                budget.closed_holding.pop(self, None)
            if budget.check_above != budget.total and budget.used <= budget.total:
                budget.check_above = budget.total

    def __repr__(self) -> str:
        return f"<Account {self.name} used={self.used}>"


class Budget:
    """The bytes, connections and sessions of one server together.

    ``server_buffer`` is what the server's memory for its peers is to stay under:
    ``total`` (:func:`held_limit` of it) bounds the bytes of all accounts;
    ``per_connection`` those of each one (at most ``total``); ``max_connections``
    the accounts open at once."""

    def __init__(self, *, server_buffer: int, per_connection: int, connection_window: int, max_connections: int) -> None:
        self.total = total = held_limit(server_buffer)
        self.per_connection = min(per_connection, total)
        #: The connection window a connection is granted: at most half its limit, so
        #: that the window it still has when we stop acknowledging cannot take it over.
        self.window = max(65535, min(connection_window, self.per_connection // 2))
        self.max_connections = max_connections
        self.used = 0
        #: Charges beyond this look for a connection to end (raised above ``total``
        #: for a while after a look that ended none, so the look stays rare).
        self.check_above = total
        self.accounts: dict[Account, None] = {}
        #: Ended connections whose streams still hold unread items.
        self.closed_holding: dict[Account, None] = {}
        #: Connections ended for the budget so far, and why (for logs and tests).
        self.ended: list[str] = []

    def open_account(self, name: str) -> Account | None:
        """An account for a new connection, or None if ``max_connections`` are open."""
        if len(self.accounts) >= self.max_connections:
            return None
        # Window is granted while the connection holds less than ``soft``: a peer that
        # then uses all of it stays under the limit, with an eighth to spare for what
        # the server itself queues toward it.
        soft = max(0, self.per_connection - self.window - self.per_connection // 8)
        account = Account(self, name, self.per_connection, soft)
        self.accounts[account] = None
        return account

    def close_account(self, account: Account) -> None:
        """The connection ended: it no longer counts against ``max_connections``.
        (Bytes still charged to it stay in ``used`` until released.)"""
        account.closed = True
        account.withholding = False
        account.on_over = _nothing
        account.on_relief = _no_relief
        account.exact = _no_relief
        self.accounts.pop(account, None)
        if account.used > 0:
            self.closed_holding[account] = None
        else:
            account.drop = _nothing

    @property
    def connections(self) -> int:
        return len(self.accounts)

    def check(self, account: Account) -> None:
        """A charge to ``account`` crossed a limit: end who has to go (judged on exact
        figures: accounts may overstate what they hold, see ``Account.exact``)."""
        account.exact()
        if account.used > account.limit and not account.over and not account.closed:
            self._end(account, f"it holds {account.used} bytes, over connection_buffer ({account.limit})")
            return
        if self.used <= self.total:
            return
        for other in list(self.accounts):
            other.exact()
        if self.used <= self.total:
            return
        # Bytes of connections already told to end (or ended) are on their way out:
        # only the rest may call for another connection to go.
        live = [a for a in self.accounts if not a.over]
        while self.used > self.total and self.closed_holding:
            # ... except what ended connections hold because the application has not
            # read it: its peer is gone, and it would stay as long as the application
            # does not read. Over the limit, the largest of those is let go of first.
            held = max(self.closed_holding, key=lambda a: a.used)
            drop, held.drop = held.drop, _nothing
            self.closed_holding.pop(held, None)
            self.ended.append(f"{held.name} (ended): {held.used} unread bytes dropped, the server holding {self.used}")
            drop(f"the server holds {self.used} bytes, over half of server_buffer ({self.total}),"
                 f" and these {held.used} were of a connection that ended")
        if live and sum(a.used for a in live) > self.total:
            greediest = max(live, key=lambda a: a.used)
            if greediest.used > 0:
                self._end(
                    greediest,
                    f"the server holds {self.used} bytes, over half of server_buffer ({self.total}), and this"
                    f" connection holds the most: {greediest.used} bytes",
                )
                return
        self.check_above = self.used + max(1, self.total // 16)

    def _end(self, account: Account, why: str) -> None:
        account.over = True
        self.ended.append(f"{account.name}: {why}")
        if len(self.ended) > 64:
            del self.ended[:32]
        account.on_over(why)
