"""Which stored messages a socket sends, and when: every message exactly once, in sequence order.

`DeliveryCursor` is pure and synchronous. The consumer feeds it what happens (a layer event, a page read
from the database, the result of one of the socket's own sends) and sends what it returns, in the order
returned; when `wanted()` names a range, the consumer reads that range and hands the rows to `page()`.

Why it is correct:

* Every stored message has its conversation's next sequence number, and numbers become visible strictly
  in order (Conversation.last_seq). So "delivered up to N without a hole" is one integer, `delivered`.
* A live message numbered `delivered + 1` is sent at once; one at or below `delivered` is a duplicate and
  dropped; one beyond reveals a gap (an event lost, late or reordered by the channel layer). It is held,
  and the range between is read from the database, where every number exists; the held message follows
  the range without being read again.
* The socket's own messages are acknowledged to it (`message_sent`) by the send path, never delivered
  back as `message_received`. Their numbers arrive with their results (`send_stored`) and are skipped.
  A database page can contain one of them before its result has arrived (the batch committed, its
  senders are being told): a row written by this socket's principal while sends that were already in
  flight when the range was read are still unanswered may be this socket's own, so the cursor stops
  before it and asks again once those sends are answered. Sends started after the read cannot be the
  row: they are stored after it, so they get higher numbers. Rows of the same principal's other tabs are
  delivered once the doubt is gone.
* Event publication follows the senders' results (realtime.batcher), so a live event of an own message
  always finds its number already known here, and a live message that is not known as own is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from realtime.events import MessagePayload, StoredMessage

# Live messages held beyond a gap, at most: a socket far behind reads from the database instead.
MAX_HELD = 1000

# What `live` and `page` return: the payloads to send, in order, each with the tag its live event carried
# (None when it came from the database).
Deliveries = list[tuple[MessagePayload, Any]]


@dataclass(frozen=True)
class Read:
    """A range of sequence numbers, (after, upto], to read from the database, and the own sends that were
    unanswered when the read was asked for."""

    after: int
    upto: int
    awaiting: frozenset[int]


@dataclass
class DeliveryCursor:
    delivered: int  # every message numbered up to here was sent to the socket (or was its own)
    sender_id: str  # the socket's principal: rows of theirs may be the socket's own sends
    sender_role: str
    known: int = 0  # the highest number known to be stored
    own: set[int] = field(default_factory=set)  # own sends' numbers above `delivered`
    held: dict[int, tuple[StoredMessage, Any]] = field(default_factory=dict)  # live, beyond a gap
    in_flight: set[int] = field(default_factory=set)  # tickets of own sends not yet answered
    blocked_by: frozenset[int] = frozenset()  # unanswered sends that may own the next row
    _tickets: int = 0

    def __post_init__(self) -> None:
        self.known = max(self.known, self.delivered)

    # -- the socket's own sends

    def send_started(self) -> int:
        """A ticket for a send handed to the store; answer it with send_stored or send_failed."""
        self._tickets += 1
        self.in_flight.add(self._tickets)
        return self._tickets

    def send_stored(self, ticket: int, seq: int) -> Deliveries:
        """The send of `ticket` is message `seq` (new, or the original of a retried send). Returns the
        messages its number lets through (held ones that were waiting behind it), to send after its
        acknowledgement."""
        self.in_flight.discard(ticket)
        if seq > self.delivered:
            self.own.add(seq)
        self._unblock()
        out: Deliveries = []
        self._release(out)
        return out

    def send_failed(self, ticket: int) -> None:
        self.in_flight.discard(ticket)
        self._unblock()

    # -- what arrives

    def live(self, items: Sequence[StoredMessage], tag: Any = None) -> Deliveries:
        """Messages from a layer event (any order, maybe duplicated); returns those to send now."""
        out: Deliveries = []
        for item in items:
            seq = item["seq"]
            if seq <= self.delivered:
                continue
            self.known = max(self.known, seq)
            if seq in self.own:
                continue  # acknowledged to the socket already; skipped when the cursor gets there
            if len(self.held) < MAX_HELD:
                self.held[seq] = (item, tag)
        self._release(out)
        return out

    def stored_up_to(self, seq: int) -> None:
        """The conversation holds messages up to `seq` (a sweep read it): fill anything missing."""
        self.known = max(self.known, seq)

    def wanted(self) -> Read | None:
        """The range to read next, or None when nothing is missing or the next row must wait. (What
        follows `delivered` without a read has always been released by the call that made it so.)"""
        if self.delivered >= self.known or self.blocked_by:
            return None
        upto = min(self.held, default=self.known + 1) - 1
        return Read(self.delivered, upto, frozenset(self.in_flight))

    def page(self, read: Read, rows: Sequence[StoredMessage], *, complete: bool) -> Deliveries:
        """Rows read for `read`, in sequence order; `complete` when they are all there are in its range
        (not cut by a page size). Returns those to send now."""
        out: Deliveries = []
        for row in rows:
            seq = row["seq"]
            if seq <= self.delivered:
                continue
            if seq in self.own:
                self._advance(seq)
                self._release(out)
                continue
            doubt = read.awaiting & self.in_flight
            payload = row["payload"]
            if doubt and payload["senderId"] == self.sender_id and payload["senderRole"] == self.sender_role:
                self.blocked_by = frozenset(doubt)
                return out
            self._advance(seq)
            out.append((payload, None))
            self._release(out)
        if complete and self.delivered < read.upto:
            # Every number up to a committed last_seq exists, so this is a write rolled back after its
            # number was seen: there is nothing to wait for.
            self._advance(read.upto)
            self._release(out)
        return out

    # -- internals

    def _advance(self, seq: int) -> None:
        self.delivered = seq
        self.blocked_by = frozenset()  # the doubt was about the row after the old `delivered`
        self.own = {n for n in self.own if n > seq} if self.own and min(self.own) <= seq else self.own

    def _release(self, out: Deliveries) -> None:
        """Send what follows `delivered` without a read: held live messages, and skip own numbers. A held
        message is not a doubtful row, even while the cursor waits on one: it came live, so it is not an
        own message whose answer is still on its way."""
        while True:
            following = self.delivered + 1
            if following in self.own:
                self._advance(following)
            elif following in self.held:
                item, tag = self.held.pop(following)
                self._advance(following)
                out.append((item["payload"], tag))
            else:
                break
        if self.held and min(self.held) <= self.delivered:
            self.held = {seq: held for seq, held in self.held.items() if seq > self.delivered}

    def _unblock(self) -> None:
        if self.blocked_by and not (self.blocked_by & self.in_flight):
            self.blocked_by = frozenset()
