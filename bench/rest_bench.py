"""REST latency benchmark: message history and inbox listing against a real Daphne server.

What is measured
----------------
Wall-clock latency of single, sequential HTTP requests (one keep-alive connection, loopback only) to the
two read paths a chat client hits most:

* ``history`` / ``history-deep``: ``GET /api/conversations/<id>/messages?limit=50`` on a conversation
  with 100,000 messages, for the newest page and for a page whose ``before`` cursor sits around message
  50,000. Keyset pagination over (conversation, seq) should make both cost the same as a tiny
  conversation.
* ``list-1000``: ``GET /api/conversations`` for a donor who takes part in 1,000 conversations.
* ``list-1000-admin-filter``: ``GET /api/conversations?status=ACTIVE&assigned=none`` for staff, over every
  conversation in the database (~21,000).
* ``inbox-staff`` / ``inbox-mine`` / ``inbox-label``: the agent workspace's list (issue 12): staff's
  default list of every conversation (~21,000; snoozed ones hidden), the API's default page of 20 with
  participants, triage fields and each conversation's last-message preview; ``assigned=me``; a label
  filter; and ``inbox-staff-50``, the workspace's page of 50.

Why the references exist
------------------------
An absolute number mixes the cost of the data size with the fixed cost of the stack (Daphne, ASGI,
Django middleware, JWT verification, DRF rendering) and of the machine. ``history-small`` (50 messages)
and ``list-1`` (one conversation) go through exactly the same code with a trivial data set, in the same
run and interleaved round-robin with the big scenarios, so the p50 ratios big/reference isolate how the
endpoints scale with data; a ratio near 1 means the size does not matter.

The data is seeded directly through the ORM (bulk_create) into a throw-away SQLite database; the server
is a real ``daphne`` child process configured like production (DEBUG off, RS256 public key).

Run from the repository root: ``.venv/bin/python bench/rest_bench.py [--requests N] [--messages N]
[--conversations N]``; the report is printed and written to ``bench/results/rest_bench.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
import httpx
from benchlib import HOST, free_port, machine_lines, migrate, mint, percentile, prepare_environment, stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
# `python bench/rest_bench.py` puts bench/ (not the repo root) on sys.path; the apps live at the root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

RESULTS_FILE = REPO_ROOT / "bench" / "results" / "rest_bench.md"
DAPHNE = REPO_ROOT / ".venv" / "bin" / "daphne"

DEFAULT_REQUESTS = 400  # timed requests per scenario: enough samples for a meaningful p99 (4 above it)
DEFAULT_MESSAGES = 100_000  # size of the "big" conversation: a long-lived support thread
DEFAULT_CONVERSATIONS = 1_000  # conversations of the heavy donor: a large inbox
WARMUP_REQUESTS = 50  # per scenario, untimed: fills SQLite's page cache and Python's lazy imports
NOISE_CONVERSATIONS = 20_000  # other users' conversations, so list queries must use indexes to stay fast
SMALL_MESSAGES = 50  # reference conversation: exactly one page, the cheapest possible history read
PAGE_LIMIT = 50  # the page size the web client asks for
LIST_DEFAULT_LIMIT = 20  # ConversationPagination.default_limit: what a list page holds without ?limit=
INBOX_LIMIT = 50  # the workspace's page (desk/static/desk/workspace.js LIST_LIMIT)
ADMIN_SHARE = 2  # every 2nd conversation of the heavy donor has a staff participant ("half of them")
AGENTS = ("agent-1", "agent-2", "agent-3", "agent-4", "agent-5")  # staff spread over the assigned ones
BATCH_SIZE = 5_000  # objects per bulk_create call: bounded memory, Django splits to SQLite's param limit
TARGET_P99_MS = 20.0  # the service-level target for the big scenarios
HEALTH_TIMEOUT_S = 30.0  # Daphne + Django start in ~2 s; anything past this is a broken start
HEALTH_POLL_S = 0.1  # between /health probes while the server starts
REQUEST_TIMEOUT_S = 10.0  # per request; a request this slow is a failure, not a data point
HISTORY_SPAN = dt.timedelta(days=90)  # conversations' activity is spread over this window
RNG_SEED = 20_240_601  # fixed: the same data set on every run, so runs are comparable
# Vocabulary of the generated message texts: short support-chat words, so lengths and payloads vary.
WORDS = (
    *("hello", "thanks", "donation", "receipt", "campaign", "refund", "card", "payment", "pending"),
    *("failed", "monthly", "cancel", "update", "address", "email", "tax", "certificate", "please"),
    *("help", "when", "will", "my", "the", "a", "to", "of", "and", "is", "was", "it", "for", "on", "with"),
    *("account", "transfer", "bank", "confirm", "status", "order", "support", "team", "sorry", "delay"),
    *("today", "tomorrow", "week", "invoice"),
)


@dataclass
class Scenario:
    key: str
    label: str
    path: str
    params: dict[str, str]
    token: str
    expect_results: int
    expect_count: int | None = None  # list endpoints also report the total number of matches
    timings_ms: list[float] = field(default_factory=list)
    body_bytes: int = 0


@dataclass
class Dataset:
    big_id: str
    deep_cursor: str
    small_id: str
    many_total: int
    admin_filter_total: int
    labelled: int
    seconds: float


# --------------------------------------------------------------------------------------------- setup


# -------------------------------------------------------------------------------------------- seeding


def text(rng: random.Random) -> str:
    """60-200 characters of varied words."""
    target = rng.randint(60, 200)
    parts: list[str] = []
    length = 0
    for _ in range(target):  # every word adds at least 2 characters, so this ends long before `target`
        if length >= target:
            break
        word = rng.choice(WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:target].rstrip() + "."


def batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def bulk(model: Any, objects: list[Any]) -> None:
    for chunk in batched(objects, BATCH_SIZE):
        model.objects.bulk_create(chunk, batch_size=BATCH_SIZE)


def seed_thread(
    rng: random.Random, *, donor: str, agent: str, count: int, end: dt.datetime
) -> tuple[Any, list[Any], list[Any]]:
    """One donor/agent conversation with `count` messages (seq 1..count, one every 30 s up to `end`)
    and both read watermarks in the middle. Returns (conversation, participants, messages)."""
    from conversations.models import Conversation, Participant, Role
    from messaging.models import Message

    step = dt.timedelta(seconds=30)
    first = end - step * count
    conversation = Conversation(
        created_by=donor,
        subject=f"Thread of {donor}",
        last_seq=count,
        last_message_at=end,
        admin_count=1,
        created_at=first - step,
        updated_at=end,
    )
    messages = []
    for seq in range(1, count + 1):
        from_donor = rng.random() < 0.6
        at = first + step * seq
        messages.append(
            Message(
                conversation=conversation,
                seq=seq,
                sender_id=donor if from_donor else agent,
                sender_role=Role.USER if from_donor else Role.ADMIN,
                content=text(rng),
                created_at=at,
                updated_at=at,
            )
        )
    if messages:  # what the send path keeps (messaging.services._preview_changes)
        conversation.preview_message_id = conversation.public_preview_message_id = messages[-1].id
    donor_read, agent_read = count // 2 + 10, count * 3 // 5
    participants = [
        Participant(
            conversation=conversation,
            user_id=donor,
            role=Role.USER,
            joined_at=first - step,
            last_read_seq=min(donor_read, count),
            last_read_at=first + step * min(donor_read, count) + dt.timedelta(seconds=5),
        ),
        Participant(
            conversation=conversation,
            user_id=agent,
            role=Role.ADMIN,
            joined_at=first,
            last_read_seq=agent_read,
            last_read_at=first + step * agent_read + dt.timedelta(seconds=5),
        ),
    ]
    return conversation, participants, messages


def seed(*, messages: int, conversations: int) -> Dataset:
    """Write the whole data set; returns what the scenarios need to build and check their requests."""
    from django.db import connection, transaction
    from django.utils import timezone

    django.setup()
    from conversations.models import Conversation, ConversationLabel, ConversationStatus, Participant, Role
    from messaging.models import Message

    started = time.perf_counter()
    rng = random.Random(RNG_SEED)
    now = timezone.now()
    statuses = [ConversationStatus.ACTIVE] * 8 + [ConversationStatus.CLOSED, ConversationStatus.ARCHIVED]
    # Tracked here, independently of the app's queries, to check what the admin filter returns.
    active_without_admin = 0

    with transaction.atomic():
        big, big_parts, big_messages = seed_thread(
            rng, donor="donor-big", agent="agent-1", count=messages, end=now - dt.timedelta(hours=1)
        )
        small, small_parts, small_messages = seed_thread(
            rng, donor="donor-small", agent="agent-1", count=SMALL_MESSAGES, end=now - dt.timedelta(hours=2)
        )
        Conversation.objects.bulk_create([big, small])
        bulk(Participant, big_parts + small_parts)
        bulk(Message, big_messages + small_messages)
        deep_cursor = big_messages[messages // 2 - 1].id  # seq messages//2
        del big_messages, small_messages

        one, one_parts, one_messages = seed_thread(
            rng, donor="donor-one", agent="agent-2", count=3, end=now - dt.timedelta(hours=3)
        )
        Conversation.objects.bulk_create([one])
        bulk(Participant, one_parts)
        bulk(Message, one_messages)

    with transaction.atomic():
        convs, parts, msgs, labels = [], [], [], []
        for i in range(conversations):
            updated = now - HISTORY_SPAN * rng.random()
            count = rng.randint(0, 4)
            status = rng.choice(statuses)
            has_admin = i % ADMIN_SHARE == 0
            conv = Conversation(
                created_by="donor-many",
                subject=f"Question {i}",
                status=status,
                admin_count=int(has_admin),  # what Participant.objects.ensure() maintains
                last_seq=count,
                last_message_at=updated if count else None,
                created_at=updated - dt.timedelta(days=7) * rng.random() - dt.timedelta(minutes=count),
                updated_at=updated,
            )
            convs.append(conv)
            read_seq = rng.randint(0, count)
            parts.append(
                Participant(
                    conversation=conv,
                    user_id="donor-many",
                    role=Role.USER,
                    joined_at=conv.created_at,
                    last_read_seq=read_seq,
                    last_read_at=conv.created_at if read_seq else None,
                )
            )
            agent = AGENTS[i % len(AGENTS)]
            if has_admin:
                parts.append(
                    Participant(
                        conversation=conv,
                        user_id=agent,
                        role=Role.ADMIN,
                        joined_at=conv.created_at,
                        last_read_seq=count,
                        last_read_at=updated if count else None,
                        assigned=True,  # counted in admin_count (desk.assignment)
                    )
                )
                if i % 5 == 0:
                    labels.append(ConversationLabel(conversation=conv, label="refund"))
                    conv.labels = ["refund"]
            elif status == ConversationStatus.ACTIVE:
                active_without_admin += 1
            for seq in range(1, count + 1):
                at = updated - dt.timedelta(minutes=count - seq)
                from_donor = not has_admin or seq % 2 == 1
                msgs.append(
                    Message(
                        conversation=conv,
                        seq=seq,
                        sender_id="donor-many" if from_donor else agent,
                        sender_role=Role.USER if from_donor else Role.ADMIN,
                        content=text(rng),
                        created_at=at,
                        updated_at=at,
                    )
                )
            if count:
                conv.preview_message_id = conv.public_preview_message_id = msgs[-1].id
        bulk(Conversation, convs)
        bulk(Participant, parts)
        bulk(Message, msgs)
        bulk(ConversationLabel, labels)
        labelled = len(labels)

    with transaction.atomic():
        convs, parts = [], []
        for i in range(NOISE_CONVERSATIONS):
            updated = now - HISTORY_SPAN * rng.random()
            status = rng.choice(statuses)
            active_without_admin += status == ConversationStatus.ACTIVE
            user = f"noise-{i}"
            conv = Conversation(
                created_by=user, status=status, created_at=updated - dt.timedelta(days=1), updated_at=updated
            )
            convs.append(conv)
            parts.append(Participant(conversation=conv, user_id=user, role=Role.USER, joined_at=conv.created_at))
        bulk(Conversation, convs)
        bulk(Participant, parts)

    connection.close()
    return Dataset(
        big_id=big.id,
        deep_cursor=deep_cursor,
        small_id=small.id,
        many_total=conversations,
        admin_filter_total=active_without_admin,
        labelled=labelled,
        seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------------------------------------ the server


def start_server(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    # The child keeps its own copy of the descriptor; ours can close as soon as it has started.
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [str(DAPHNE), "-b", HOST, "-p", str(port), "chatservice.asgi:application"],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(server: subprocess.Popen[bytes], base_url: str, log_path: Path) -> float:
    """Poll /health until 200; returns the seconds it took. Raises if the server dies or never answers."""
    started = time.perf_counter()
    attempts = math.ceil(HEALTH_TIMEOUT_S / HEALTH_POLL_S)
    for _ in range(attempts):
        if server.poll() is not None:
            raise RuntimeError(f"daphne exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=HEALTH_POLL_S * 10).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(HEALTH_POLL_S)
    raise RuntimeError(f"daphne not healthy after {HEALTH_TIMEOUT_S:.0f} s:\n{log_path.read_text()[-3000:]}")


# ---------------------------------------------------------------------------------------- measurement


def scenarios(data: Dataset, private_pem: bytes) -> list[Scenario]:
    big = f"/api/conversations/{data.big_id}/messages"
    small = f"/api/conversations/{data.small_id}/messages"
    limit = {"limit": str(PAGE_LIMIT)}
    return [
        Scenario("a", "history", big, limit, mint(private_pem, "donor-big", "USER"), PAGE_LIMIT),
        Scenario(
            "b",
            "history-deep",
            big,
            {**limit, "before": data.deep_cursor},
            mint(private_pem, "donor-big", "USER"),
            PAGE_LIMIT,
        ),
        Scenario(
            "c",
            "list-1000",
            "/api/conversations",
            {},
            mint(private_pem, "donor-many", "USER"),
            min(LIST_DEFAULT_LIMIT, data.many_total),
            data.many_total,
        ),
        Scenario(
            "d",
            "list-1000-admin-filter",
            "/api/conversations",
            {"status": "ACTIVE", "assigned": "none"},
            mint(private_pem, "agent-1", "ADMIN"),
            min(LIST_DEFAULT_LIMIT, data.admin_filter_total),
            data.admin_filter_total,
        ),
        Scenario(
            "e",
            "inbox-staff",
            "/api/conversations",
            {},
            mint(private_pem, "agent-1", "ADMIN"),
            LIST_DEFAULT_LIMIT,
            data.many_total + NOISE_CONVERSATIONS + 3,
        ),
        Scenario(
            "f",
            "inbox-mine",
            "/api/conversations",
            {"assigned": "me"},
            mint(private_pem, "agent-1", "ADMIN"),
            LIST_DEFAULT_LIMIT,
        ),
        Scenario(
            "g",
            "inbox-label",
            "/api/conversations",
            {"label": "refund"},
            mint(private_pem, "agent-2", "ADMIN"),
            min(LIST_DEFAULT_LIMIT, data.labelled),
            data.labelled,
        ),
        Scenario(
            "h",
            "inbox-staff-50",
            "/api/conversations",
            {"limit": str(INBOX_LIMIT)},
            mint(private_pem, "agent-1", "ADMIN"),
            INBOX_LIMIT,
            data.many_total + NOISE_CONVERSATIONS + 3,
        ),
        Scenario("r1", "history-small", small, limit, mint(private_pem, "donor-small", "USER"), SMALL_MESSAGES),
        Scenario(
            "r2",
            "list-1",
            "/api/conversations",
            {},
            mint(private_pem, "donor-one", "USER"),
            expect_results=1,
            expect_count=1,
        ),
    ]


def request(client: httpx.Client, scenario: Scenario) -> float:
    """One request; returns its latency in ms after checking status and result count."""
    headers = {"Authorization": f"Bearer {scenario.token}"}
    started = time.perf_counter()
    response = client.get(scenario.path, params=scenario.params, headers=headers)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise AssertionError(f"{scenario.label}: HTTP {response.status_code}: {response.text[:300]}")
    body = response.json()
    got = len(body["results"])
    if got != scenario.expect_results:
        raise AssertionError(f"{scenario.label}: {got} results, expected {scenario.expect_results}")
    if scenario.expect_count is not None and body.get("count") != scenario.expect_count:
        raise AssertionError(f"{scenario.label}: count {body.get('count')}, expected {scenario.expect_count}")
    scenario.body_bytes = len(response.content)
    return elapsed_ms


def measure(base_url: str, plan: list[Scenario], requests: int) -> None:
    """Round-robin, one request of each scenario per round, so noise on the machine hits all alike."""
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client:
        for _ in range(WARMUP_REQUESTS):
            for scenario in plan:
                request(client, scenario)
        for _ in range(requests):
            for scenario in plan:
                scenario.timings_ms.append(request(client, scenario))


# ------------------------------------------------------------------------------------------- reporting


def report(plan: list[Scenario], data: Dataset, args: argparse.Namespace, startup_s: float) -> str:
    by_key = {s.key: s for s in plan}
    lines = [
        "# REST latency benchmark",
        "",
        *machine_lines(),
        f"- Data: big conversation {args.messages:,} messages; donor-many in {args.conversations:,} "
        f"conversations (half with staff); {NOISE_CONVERSATIONS:,} noise conversations; small reference "
        f"{SMALL_MESSAGES} messages; donor-one 1 conversation. Seeded in {data.seconds:.1f} s.",
        f"- Method: real Daphne on {HOST} (DEBUG off, SQLite WAL), ready in {startup_s:.1f} s; one "
        f"keep-alive httpx connection; {WARMUP_REQUESTS} warm-up + {args.requests} timed sequential "
        "requests per scenario, interleaved round-robin; client-side wall time per request "
        "(includes JSON transfer, not parsing).",
        "",
        "| Scenario | Request | Results | Body bytes | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in plan:
        query = "&".join(f"{k}={v[:12] + '…' if len(v) > 16 else v}" for k, v in s.params.items())
        shown = s.path.replace(data.big_id, "<big>").replace(data.small_id, "<small>")
        t = s.timings_ms
        lines.append(
            f"| {s.key}. {s.label} | `GET {shown}{'?' + query if query else ''}` | {s.expect_results} "
            f"| {s.body_bytes:,} | {percentile(t, 50):.2f} | {percentile(t, 95):.2f} "
            f"| {percentile(t, 99):.2f} | {max(t):.2f} |"
        )

    def ratio(big: str, ref: str) -> str:
        value = percentile(by_key[big].timings_ms, 50) / percentile(by_key[ref].timings_ms, 50)
        return f"{value:.2f}x"

    lines += [
        "",
        "Scaling (p50 ratio, 1.00x = size does not matter):",
        "",
        f"- history (a) / history-small (r1): {ratio('a', 'r1')}",
        f"- list-1000 (c) / list-1 (r2): {ratio('c', 'r2')}",
        "",
        f"Target p99 ≤ {TARGET_P99_MS:.0f} ms:",
        "",
    ]
    for key in ("a", "b", "c", "e", "f", "g"):
        p99 = percentile(by_key[key].timings_ms, 99)
        verdict = "PASS" if p99 <= TARGET_P99_MS else "FAIL"
        lines.append(f"- {key}. {by_key[key].label}: {verdict} (p99 {p99:.2f} ms)")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS, help="timed requests per scenario")
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="messages in the big conversation")
    parser.add_argument(
        "--conversations", type=int, default=DEFAULT_CONVERSATIONS, help="conversations of the heavy donor"
    )
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    # The deep cursor (seq messages/2) must have a full page older than it.
    if args.messages < 2 * PAGE_LIMIT + 2:
        parser.error(f"--messages must be at least {2 * PAGE_LIMIT + 2}")
    if args.conversations < 1:
        parser.error("--conversations must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp_name:
        tmp = Path(tmp_name)
        private_pem = prepare_environment(f"sqlite:///{tmp / 'bench.sqlite3'}")
        migrate()
        data = seed(messages=args.messages, conversations=args.conversations)
        print(f"seeded in {data.seconds:.1f} s", flush=True)

        port = free_port()
        base_url = f"http://{HOST}:{port}"
        log_path = tmp / "daphne.log"
        server = start_server(port, log_path)
        try:
            startup_s = wait_healthy(server, base_url, log_path)
            plan = scenarios(data, private_pem)
            measure(base_url, plan, args.requests)
        finally:
            stop_process(server)

    text_report = report(plan, data, args, startup_s)
    text_report += f"\nTotal run time: {time.perf_counter() - run_started:.1f} s\n"
    print(text_report)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(text_report)
    print(f"written to {RESULTS_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
