"""`make demo`'s data: a staff account, a second agent, six donors and 36 conversations over the last four
weeks in every state, written through the real services (conversations, messaging, desk, csat) under a
simulated clock (demo.clock), so every clock, counter, preview and search row is what the service itself
would have kept.

Idempotent: the donors' ids are fixed (DONORS); when any conversation of theirs exists, nothing is created.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from chatservice.authentication import Principal
from conversations import services as conversations
from conversations.models import Conversation, ConversationStatus, Priority, Role
from csat.services import csat_submit
from demo.clock import simulated_clock
from desk import services as desk
from identity.selectors import staff_chat_id
from messaging.models import MessageType
from messaging.services import message_send

STAFF_USERNAME = "demo"
STAFF_NAME = "Nadia"  # what donors see (never the username)
# A second agent, so per-agent figures compare two people; a console account without a password.
OTHER_AGENT_USERNAME, OTHER_AGENT_NAME = "rafi", "Rafi"
DONORS = ("donor-amina", "donor-karim", "donor-farhana", "donor-james", "donor-sadia", "donor-tanvir")
# The donor the printed donor link identifies, and the subject of the conversation it opens.
LINK_DONOR = "donor-amina"
PASSWORD_FILE_MODE = 0o600


@dataclass(frozen=True)
class Topic:
    subject: str
    labels: tuple[str, ...]
    # Alternating turns, donor first: (donor, staff, donor, staff, ...).
    turns: tuple[str, ...]


TOPICS = (
    Topic(
        "Tax receipt for my March donation",
        ("receipt",),
        (
            "Hi, I gave 5,000 taka to the flood relief appeal in March but never received a tax receipt. "
            "Could you send it again?",
            "Hello! Sorry about that. I've re-sent the receipt to the email address on your account; it "
            "should arrive within a few minutes.",
            "Got it, thank you so much!",
        ),
    ),
    Topic(
        "Card charged twice",
        ("billing", "refund"),
        (
            "My card was charged twice for the same monthly donation this month.",
            "Thanks for flagging this. I can see two charges on the 3rd: the second one is a duplicate and "
            "I've started a refund. It takes 5 to 7 working days to show on your statement.",
            "Great, thanks for sorting it out so quickly.",
        ),
    ),
    Topic(
        "Change my monthly donation amount",
        ("recurring",),
        (
            "I'd like to lower my monthly donation from 2,000 to 1,000 taka starting next month.",
            "Of course. Your pledge is now 1,000 taka from next month's collection. Thank you for continuing to give!",
        ),
    ),
    Topic(
        "Where did my donation go?",
        (),
        (
            "Can you tell me how my donation to the school meals programme was used?",
            "Absolutely. Your gift funded meals at two schools in Sunamganj this term; the latest programme "
            "report is in your donor dashboard under Impact.",
            "That's lovely to hear. Is there a way to get these reports by email?",
            'Yes: tick "Impact updates" in your email preferences and we\'ll send one each quarter.',
        ),
    ),
    Topic(
        "Update my email address",
        (),
        (
            "I changed my email address. How do I make sure receipts go to the new one?",
            "You can change it under Account, then Profile. If you prefer, tell me the new address here and "
            "I'll update it for you.",
        ),
    ),
    Topic(
        "Donation page not loading",
        ("bug",),
        (
            "The donation page keeps spinning when I press Donate on my phone.",
            "Sorry for the trouble! Which browser are you using? Meanwhile, a desktop browser should work.",
            "It's Chrome on Android.",
            "Thanks. Our team found the problem with Chrome on Android and a fix is live now. Could you try again?",
        ),
    ),
    Topic(
        "Cancel my recurring donation",
        ("recurring",),
        (
            "Please cancel my recurring donation. I've lost my job and can't continue for now.",
            "I'm sorry to hear that, and thank you for all your support so far. I've cancelled the recurring "
            "donation; no further payments will be taken.",
        ),
    ),
    Topic(
        "Letter for my employer's matching scheme",
        ("receipt",),
        (
            "My employer matches donations. Can you send a letter confirming what I gave this year?",
            "Happy to help. I've generated a confirmation letter for this year's donations and emailed it to you.",
        ),
    ),
    Topic(
        "Donation in memory of my father",
        (),
        (
            "I want to make a donation in memory of my father. Can the family be told about it?",
            "We're sorry for your loss. When you donate, choose \"In memory of\" and add the family's "
            "address: we'll send them a card.",
        ),
    ),
    Topic(
        "Bank transfer not showing",
        ("billing",),
        (
            "I made a bank transfer last week but it isn't showing in my donation history.",
            "Bank transfers take up to 5 working days to match. Could you share the transfer reference so I "
            "can look for it?",
            "The reference is CFA-20931.",
            "Found it: it's matched now and shows in your history. Thank you for your patience!",
        ),
    ),
    Topic(
        "Volunteering in Chattogram",
        (),
        (
            "Besides donating, are there volunteer opportunities in Chattogram?",
            "Yes! Our Chattogram team runs weekend distribution drives. I've passed your details to the "
            "volunteer coordinator, who will be in touch this week.",
        ),
    ),
    Topic(
        "Receipt shows the wrong name",
        ("billing", "receipt"),
        (
            "My receipt shows my name misspelled as 'Rahmen'. Can it be corrected?",
            "Apologies for that. I've corrected the spelling and issued a new receipt; it's in your inbox.",
            "Thank you!",
        ),
    ),
)
GOODBYE = "You're welcome! I'll close this conversation now; write again any time."
NOTE = "Checked the payment record: the name was typed wrong at checkout, not a system fault. Re-issued receipt R-4821."

# States, in the order the plan cycles through them (36 conversations).
WAITING, UNREAD, ANSWERED, CLOSED, RATED, ARCHIVED = "waiting", "unread", "answered", "closed", "rated", "archived"
# Minutes from the donor's first message to the first staff reply: several beyond an hour.
FIRST_RESPONSE_MINUTES = (3, 8, 15, 25, 40, 55, 75, 95, 130, 200, 6, 12)
RATINGS = (
    (5, "Quick and kind, thank you!"),
    (4, ""),
    (5, ""),
    (3, ""),
    (2, "It took a long time to get an answer."),
    (5, ""),
    (4, ""),
    (1, "My question was not really answered."),
    (5, ""),
    (4, ""),
    (3, ""),
    (5, ""),
)


@dataclass(frozen=True)
class Planned:
    state: str
    topic: Topic
    donor: str
    agent: str | None  # "demo" or "rafi" (usernames), None: unassigned
    start: datetime
    first_response_min: int
    rating: tuple[int, str] | None = None
    note: bool = False


LINK_SUBJECT = TOPICS[11].subject
# Four weeks of history: the reports page opens on the last 30 days, and every day of them has some.
HISTORY_DAYS = 28


def plan(now: datetime, agents: tuple[str, str]) -> list[Planned]:
    """36 conversations, oldest first: the open ones in the last day, the others over HISTORY_DAYS days."""
    demo, rafi = agents
    planned: list[Planned] = []
    # The queue: donors waiting, nobody assigned, nobody has read them (42 min, 2 h 10, 5 h ago).
    for index, ago in enumerate((timedelta(hours=5), timedelta(hours=2, minutes=10), timedelta(minutes=42))):
        topic = TOPICS[(5, 9, 8)[index]]
        planned.append(Planned(WAITING, topic, DONORS[(3, 4, 5)[index]], None, now - ago, 0))
    # Answered, then the donor wrote again: waiting, unread by the assigned agent.
    for index, ago in enumerate((timedelta(hours=26), timedelta(hours=3))):
        topic = TOPICS[(3, 5)[index]]
        planned.append(Planned(UNREAD, topic, DONORS[(1, 2)[index]], demo, now - ago, (20, 9)[index]))
    # The other 31, from HISTORY_DAYS ago to yesterday, a few a day at office hours.
    cycle = (RATED, CLOSED, ANSWERED, RATED, CLOSED, RATED, ARCHIVED, RATED, CLOSED, RATED, ANSWERED)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    ratings = iter(RATINGS)
    for index in range(31):
        days_ago = HISTORY_DAYS - 1 - (index * (HISTORY_DAYS - 1)) // 31
        start = midnight - timedelta(days=days_ago) + timedelta(hours=3 + (index * 5) % 9, minutes=(index * 17) % 60)
        state = cycle[index % len(cycle)]
        if days_ago <= 2 and state in (CLOSED, ARCHIVED):
            state = ANSWERED  # the recent ones are still open
        planned.append(
            Planned(
                state,
                TOPICS[index % len(TOPICS)],
                DONORS[index % len(DONORS)],
                demo if index % 3 else rafi,
                start,
                FIRST_RESPONSE_MINUTES[index % len(FIRST_RESPONSE_MINUTES)],
                rating=next(ratings, (4, "")) if state == RATED else None,
            )
        )
    # The conversation the donor link opens: the donor's own, open, answered, with a note and labels.
    planned.append(Planned(ANSWERED, TOPICS[11], LINK_DONOR, demo, now - timedelta(hours=20), 18, note=True))
    return sorted(planned, key=lambda p: p.start)


@dataclass(frozen=True)
class Seeded:
    created: bool
    conversations: int
    staff_username: str
    password: str
    link_donor: str
    link_conversation_id: str


def _staff_password(path: Path, user: Any) -> str:
    """The demo account's password: stable across runs (kept in `path`, mode 0600, under var/ which git
    ignores), so a second `make demo` does not log out a console tab and the printed password stays true."""
    password = path.read_text().strip() if path.exists() else ""
    if not password:
        password = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PASSWORD_FILE_MODE)
        with os.fdopen(fd, "w") as file:
            file.write(password + "\n")
    os.chmod(path, PASSWORD_FILE_MODE)
    if not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    return password


def _staff_accounts() -> tuple[Any, Any]:
    users = get_user_model()
    staff, _ = users.objects.get_or_create(
        username=STAFF_USERNAME,
        defaults={"first_name": STAFF_NAME, "email": "demo@example.org", "is_staff": True, "is_superuser": True},
    )
    other, created = users.objects.get_or_create(
        username=OTHER_AGENT_USERNAME, defaults={"first_name": OTHER_AGENT_NAME, "is_staff": True}
    )
    if created:
        other.set_unusable_password()
        other.save(update_fields=["password"])
    return staff, other


def _exchange(item: Planned) -> tuple[str, ...]:
    """What follows the donor's first line, staff first. An open conversation ends with a staff answer
    (nobody waits) unless it is UNREAD (the donor wrote again); a closed one ends with staff saying goodbye."""
    turns = item.topic.turns[1:]
    if item.state == UNREAD:
        return turns[:2] if len(turns) >= 2 else (*turns, "Sorry, one more question about this.")
    if item.state == ANSWERED:
        return turns if len(turns) % 2 else turns[:-1]
    if len(turns) % 2 == 0:
        return (*turns, GOODBYE)
    return turns


def _play(item: Planned, clock, agents: dict[str, Principal]) -> Conversation:
    """One conversation, its turns a few minutes apart, its first answer after item.first_response_min."""
    donor = Principal(item.donor, Role.USER, via="demo")
    agent = agents[item.agent] if item.agent else None
    clock.set(item.start)
    conversation = conversations.conversation_create(creator=donor, subject=item.topic.subject)
    clock.advance(seconds=20)
    message_send(conversation=conversation, sender=donor, content=item.topic.turns[0])
    if item.state == WAITING:
        if len(item.topic.turns) > 2:  # a second line before anyone answered
            clock.advance(minutes=2)
            message_send(conversation=conversation, sender=donor, content="Could someone help, please?")
        return conversation
    assert agent is not None
    clock.advance(minutes=item.first_response_min - 1)
    conversations.conversation_assign(conversation=conversation, actor=agent, admin_id=agent.user_id)
    if item.topic.labels:
        clock.advance(seconds=20)
        conversations.conversation_update(conversation=conversation, actor=agent, labels=list(item.topic.labels))
    if item.note:
        clock.advance(seconds=20)
        conversations.conversation_update(conversation=conversation, actor=agent, priority=Priority.HIGH)
        message_send(conversation=conversation, sender=agent, content=NOTE, message_type=MessageType.NOTE)
    clock.set(item.start + timedelta(minutes=item.first_response_min, seconds=20))
    for index, text in enumerate(_exchange(item)):
        speaker = agent if index % 2 == 0 else donor
        message_send(conversation=conversation, sender=speaker, content=text)
        clock.advance(minutes=2)
        if speaker is agent:
            conversations.participant_mark_read(conversation=conversation, reader=donor)
        clock.advance(minutes=3 + index)
    if item.state == UNREAD:
        return conversation  # the donor's last line: waiting, unread by the agent
    conversations.participant_mark_read(conversation=conversation, reader=agent)
    if item.state in (CLOSED, RATED, ARCHIVED):
        clock.advance(minutes=30)
        conversations.conversation_update(conversation=conversation, actor=agent, status=ConversationStatus.CLOSED)
    if item.rating is not None:
        clock.advance(minutes=3)
        rating, comment = item.rating
        csat_submit(conversation=conversation, donor=donor, rating=rating, comment=comment)
    if item.state == ARCHIVED:
        clock.advance(days=1)
        conversations.conversation_update(conversation=conversation, actor=agent, status=ConversationStatus.ARCHIVED)
    return conversation


def seed(*, password_file: Path) -> Seeded:
    staff, other = _staff_accounts()
    password = _staff_password(password_file, staff)
    agents = {
        STAFF_USERNAME: Principal(staff_chat_id(staff), Role.ADMIN, via="demo"),
        OTHER_AGENT_USERNAME: Principal(staff_chat_id(other), Role.ADMIN, via="demo"),
    }
    existing = Conversation.objects.filter(created_by__in=DONORS)
    created = not existing.exists()
    if created:
        now = timezone.now()
        with transaction.atomic(), simulated_clock(now - timedelta(days=HISTORY_DAYS + 1)) as clock:
            for username, principal in agents.items():
                name = STAFF_NAME if username == STAFF_USERNAME else OTHER_AGENT_NAME
                desk.agent_update(actor=principal, display_name=name)
            for item in plan(now, (STAFF_USERNAME, OTHER_AGENT_USERNAME)):
                _play(item, clock, agents)
    link = (
        Conversation.objects.filter(created_by=LINK_DONOR, status=ConversationStatus.ACTIVE, subject=LINK_SUBJECT)
        .order_by("-created_at")
        .values_list("pk", flat=True)
        .first()
    )
    return Seeded(
        created=created,
        conversations=existing.count(),
        staff_username=STAFF_USERNAME,
        password=password,
        link_donor=LINK_DONOR,
        link_conversation_id=link or "",
    )
