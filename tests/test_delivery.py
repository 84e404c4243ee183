"""The delivery cursor on its own: no sockets, no database, no channel layer.

A model of one socket's world drives it: messages are committed one by one (the socket's own sends, its
principal's other tabs, other people), layer events carry them after commit and may be lost, duplicated,
reordered or interleaved with the socket's own sends, database reads see the committed prefix at the
moment they run and are answered later, and sweeps report the last committed number. Whatever the
schedule, once everything has settled the socket has sent every message of others exactly once, in
sequence order, and none of its own back to itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.delivery import DeliveryCursor, Read
from realtime.events import StoredMessage

ME = ("u1", "USER")
OTHER = ("agent1", "ADMIN")
PAGE = 3  # small, so ranges take several reads


def message(seq: int, sender: tuple[str, str]) -> StoredMessage:
    payload = {
        "messageId": f"msg_{seq}",
        "conversationId": "conv_1",
        "senderId": sender[0],
        "senderRole": sender[1],
        "content": f"m{seq}",
        "messageType": "TEXT",
        "metadata": {},
        "clientMessageId": None,
        "createdAt": "2026-01-01T00:00:00Z",
    }
    return {"seq": seq, "payload": payload}  # type: ignore[typeddict-item]


@dataclass
class World:
    cursor: DeliveryCursor
    committed: list[StoredMessage] = field(default_factory=list)
    own_seqs: set[int] = field(default_factory=set)
    queued: list[int] = field(default_factory=list)  # tickets of own sends not yet stored, in order
    told_pending: list[tuple[int, int]] = field(default_factory=list)  # (ticket, seq) stored, sender not told
    publishable: list[int] = field(default_factory=list)  # committed, event not yet published
    network: list[list[int]] = field(default_factory=list)  # published events, not yet delivered
    read: tuple[Read, list[StoredMessage], bool] | None = None  # a database read in flight
    sent: list[StoredMessage] = field(default_factory=list)  # message_received frames, in order

    def emit(self, deliveries: list) -> None:
        by_id = {m["payload"]["messageId"]: m for m in self.committed}
        for payload, tag in deliveries:
            message = by_id[payload["messageId"]]
            assert tag is None or message["seq"] in tag  # a live message keeps the tag of its own event
            self.sent.append(message)

    # -- what can happen

    def submit(self) -> None:
        self.queued.append(self.cursor.send_started())

    def commit(self, who: int) -> None:
        """The next batch stores one message: this socket's oldest queued send, or another's."""
        seq = len(self.committed) + 1
        if who == 0 and self.queued:
            ticket = self.queued.pop(0)
            self.committed.append(message(seq, ME))
            self.own_seqs.add(seq)
            self.told_pending.append((ticket, seq))
            return
        self.committed.append(message(seq, ME if who == 1 else OTHER))  # ME: another tab of the same user
        self.publishable.append(seq)

    def fail_send(self) -> None:
        if self.queued:
            self.cursor.send_failed(self.queued.pop(0))

    def tell(self) -> None:
        """The batcher answers its oldest stored send; only then can that message's event be published."""
        if self.told_pending:
            ticket, seq = self.told_pending.pop(0)
            self.emit(self.cursor.send_stored(ticket, seq))
            self.publishable.append(seq)

    def publish(self, size: int) -> None:
        if self.publishable:
            chunk = sorted(self.publishable[: max(1, size)])
            del self.publishable[: max(1, size)]
            self.network.append(chunk)

    def deliver(self, index: int, keep: bool) -> None:
        """An event arrives (`keep`: it will arrive again later: a duplicate)."""
        if self.network:
            event = self.network[index % len(self.network)]
            if not keep:
                self.network.remove(event)
            tag = tuple(event)  # what the consumer attaches (its publish time); checked in emit
            self.emit(self.cursor.live([self.committed[seq - 1] for seq in event], tag=tag))

    def drop(self, index: int) -> None:
        if self.network:
            del self.network[index % len(self.network)]

    def start_read(self) -> None:
        if self.read is None and (wanted := self.cursor.wanted()) is not None:
            rows = [m for m in self.committed if wanted.after < m["seq"] <= wanted.upto][:PAGE]
            self.read = (wanted, rows, len(rows) < PAGE)

    def finish_read(self) -> None:
        if self.read is not None:
            wanted, rows, complete = self.read
            self.read = None
            self.emit(self.cursor.page(wanted, rows, complete=complete))

    def sweep(self) -> None:
        if self.committed and self.cursor.delivered < len(self.committed):
            self.cursor.stored_up_to(len(self.committed))

    def settle(self) -> None:
        """Everything in flight completes; the sweep and the reads it triggers catch up."""
        while self.queued:
            self.commit(0)
        while self.told_pending:
            self.tell()
        for _ in range(10_000):
            self.finish_read()
            self.sweep()
            self.start_read()
            if self.read is None:
                return
        raise AssertionError("the cursor never settled")


ACTIONS = ["submit", "commit", "fail_send", "tell", "publish", "deliver", "drop", "start_read", "finish_read", "sweep"]


def run(steps: list[tuple[str, int, bool]], delivered_at_start: int = 0) -> World:
    world = World(DeliveryCursor(delivered=0, sender_id=ME[0], sender_role=ME[1]))
    for action, number, flag in steps:
        if action == "commit":
            world.commit(number % 3)
        elif action == "publish":
            world.publish(number % 4)
        elif action == "deliver":
            world.deliver(number, flag)
        elif action == "drop":
            world.drop(number)
        else:
            getattr(world, action)()
        # Invariant at every step: sent in strictly increasing order, never an own message.
        seqs = [m["seq"] for m in world.sent]
        assert seqs == sorted(set(seqs)), seqs
        assert not world.own_seqs & set(seqs)
    world.settle()
    return world


steps = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(min_value=0, max_value=20), st.booleans()),
    min_size=10,
    max_size=150,
)


@settings(max_examples=1500, deadline=None)
@given(steps)
def test_every_message_of_others_once_in_order_and_never_an_own_one(steps):
    world = run(steps)
    others = [m["seq"] for m in world.committed if m["seq"] not in world.own_seqs]
    assert [m["seq"] for m in world.sent] == others
    assert world.cursor.delivered == len(world.committed)


def test_a_row_of_the_same_user_waits_until_the_sends_in_flight_are_answered():
    cursor = DeliveryCursor(delivered=0, sender_id="u1", sender_role="USER")
    ticket = cursor.send_started()
    cursor.stored_up_to(2)
    read = cursor.wanted()
    assert read == Read(0, 2, frozenset({ticket}))
    # Message 1 is this socket's own send, stored but not yet answered: it must not come back to it.
    assert cursor.page(read, [message(1, ME), message(2, OTHER)], complete=True) == []
    assert cursor.wanted() is None  # nothing to read until the send is answered
    later = cursor.send_started()  # a send started after the read cannot be message 1
    assert cursor.send_stored(ticket, 1) == []
    assert cursor.wanted() == Read(1, 2, frozenset({later}))


def test_the_same_users_other_tab_is_delivered_once_the_doubt_is_gone():
    cursor = DeliveryCursor(delivered=0, sender_id="u1", sender_role="USER")
    ticket = cursor.send_started()
    cursor.stored_up_to(1)
    read = cursor.wanted()
    assert cursor.page(read, [message(1, ME)], complete=True) == []
    assert cursor.send_stored(ticket, 2) == []  # this socket's send is message 2: message 1 was the other tab's
    read = cursor.wanted()
    assert [p["messageId"] for p, _ in cursor.page(read, [message(1, ME)], complete=True)] == ["msg_1"]
    assert cursor.live([message(2, ME)]) == []  # its own, acknowledged separately
    assert cursor.delivered == 2


def test_duplicates_and_gaps_in_live_events():
    cursor = DeliveryCursor(delivered=3, sender_id="u1", sender_role="USER")
    assert cursor.live([message(3, OTHER)]) == []  # already delivered
    assert [(p["messageId"], tag) for p, tag in cursor.live([message(4, OTHER)], tag="t4")] == [("msg_4", "t4")]
    assert cursor.live([message(7, OTHER)], tag="t7") == []  # 5 and 6 missing: 7 is held
    read = cursor.wanted()
    assert read == Read(4, 6, frozenset())  # only the gap is read
    sent = cursor.page(read, [message(5, OTHER), message(6, OTHER)], complete=True)
    assert [(p["messageId"], tag) for p, tag in sent] == [("msg_5", None), ("msg_6", None), ("msg_7", "t7")]
    assert cursor.wanted() is None
