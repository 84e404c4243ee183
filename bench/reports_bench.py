"""Reports benchmark: GET /api/reports over 100,000 conversations and 2,000,000 messages.

What is measured
----------------
A fresh database is filled directly (bulk inserts, not the API) with N conversations (default 100,000)
created uniformly over the year ending now, and about 20 messages each (default 2,000,000 in all), written
within two days of their conversation's creation: 55% donor TEXT, 40% staff TEXT, 3% notes, 2% SYSTEM
notices. 90% of conversations got a first response (log-normal, median about 20 minutes) from one of 60
agents (their last agent), 75% were closed (median about a day later), 3% still wait for a reply; 30% carry
one of 8 labels; 40% of closed ones were rated.

Then the wall-clock time of GET /api/reports as an ADMIN token, through Django's test client in this
process (the whole request: middleware, authentication, validation, every query, JSON rendering; not the
network or the ASGI server), for: the page's presets (7, 30 — the default period — and 90 days by day),
14 days by hour, 366 days by day, 366 days with a label filter, 366 days with an agent filter. Periods end
on the day the data was seeded (so a reused database measures the same periods). Each request once to
warm up, then R times (default 7), interleaved. The reference, timed in the same run: a plain
`Message.objects.count()` and a count of the period's conversations (what one scan of each table costs on this machine).

Run from the repository root: ``.venv/bin/python bench/reports_bench.py [--conversations N]
[--messages M] [--runs R] [--db PATH | --database-url URL [--reuse]] [--no-write]``; the report is printed
and written to ``bench/results/reports_bench.md`` (``reports_bench_postgres.md`` for a postgres:// URL).

Seeding takes about two minutes. By default SQLite uses a temporary file and PostgreSQL's database is
dropped and created again. ``--db var/reports-bench.sqlite3`` keeps the SQLite file, and ``--reuse`` keeps
the PostgreSQL database, between runs: they are migrated and seeded again only when missing or out of date
(another size, seed or seed format: a ``<name>.seed.json`` file next to the SQLite file, or under var/ for
PostgreSQL, records what was seeded and when).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django
from benchlib import machine_lines, migrate, mint, percentile, prepare_environment, reset_postgres

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

RESULTS_DIR = REPO_ROOT / "bench" / "results"
SEED = 20261216
AGENTS = [f"agent{n:02d}" for n in range(60)]
LABELS = ["billing", "refund", "receipt", "campaign", "technical", "tax", "recurring", "other"]
BATCH = 10_000
# Bump when seed() writes different rows: a kept database seeded by another format is seeded again.
SEED_FORMAT = 2


def insert(model: Any, rows: Iterator[dict[str, Any]]) -> int:
    """Plain executemany in batches (the ORM's bulk_create of millions of objects takes minutes)."""
    from django.db import connection, transaction

    meta = model._meta
    fields = meta.concrete_fields
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    defaults = {f.column: f.get_default() for f in fields}
    count, batch = 0, []

    def flush() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, batch)
        batch.clear()

    for row in rows:
        values = {**defaults, **row}
        batch.append([f.get_db_prep_save(values[f.column], connection) for f in fields])
        count += 1
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return count


def seed(conversations: int, messages: int, rng: random.Random, now: dt.datetime) -> dict[str, int]:
    from conversations.models import Conversation, ConversationLabel
    from csat.models import CsatResponse
    from messaging.models import Message

    year = 365 * 86400
    plans = []
    for n in range(conversations):
        created = now - dt.timedelta(seconds=rng.uniform(0, year))
        answered = rng.random() < 0.90
        first = created + dt.timedelta(seconds=min(2 * 86400, rng.lognormvariate(7.1, 1.2))) if answered else None
        closed = None
        if rng.random() < 0.75:
            closed = (first or created) + dt.timedelta(seconds=min(6 * 86400, rng.lognormvariate(11.3, 1.0)))
            closed = min(closed, now)
        waiting = created if not answered and closed is None and rng.random() < 0.5 else None
        plans.append(
            {
                "_id": f"conv_bench{n:09d}",
                "created_by": f"donor{rng.randrange(40_000)}",
                "status": "CLOSED" if closed else "ACTIVE",
                "subject": "Help with my donation",
                "created_at": created,
                "updated_at": closed or first or created,
                "first_response_at": first if first and first <= now else None,
                "closed_at": closed,
                "waiting_since": waiting,
                "admin_count": 0 if closed or not answered else 1,
                "last_agent_id": rng.choice(AGENTS) if answered else None,
                "labels": [],
            }
        )
    for plan in plans:
        if rng.random() < 0.30:
            plan["labels"] = [rng.choice(LABELS)]
    insert(Conversation, iter(plans))
    insert(
        ConversationLabel,
        (
            {"_id": f"lbl_bench{n:09d}", "conversation_id": p["_id"], "label": p["labels"][0]}
            for n, p in enumerate(plans)
            if p["labels"]
        ),
    )
    insert(
        CsatResponse,
        (
            {
                "_id": f"csat_bench{n:09d}",
                "conversation_id": p["_id"],
                "closed_at": p["closed_at"],
                "rating": rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 6])[0],
                "comment": "",
                "donor_id": p["created_by"],
                "agent_id": p["last_agent_id"],
                "created_at": p["closed_at"],
            }
            for n, p in enumerate(plans)
            if p["closed_at"] and rng.random() < 0.40
        ),
    )
    per_conversation = messages / conversations

    def message_rows() -> Iterator[dict[str, Any]]:
        number = 0
        for p in plans:
            count = max(1, round(rng.uniform(0.5, 1.5) * per_conversation))
            offsets = sorted(rng.uniform(0, 2 * 86400) for _ in range(count))
            for seq, offset in enumerate(offsets, start=1):
                at = min(now, p["created_at"] + dt.timedelta(seconds=offset))
                draw = rng.random()
                role, kind = ("USER", "TEXT") if draw < 0.55 else ("ADMIN", "TEXT")
                if draw >= 0.95:
                    kind = "NOTE" if draw < 0.98 else "SYSTEM"
                number += 1
                yield {
                    "_id": f"msg_bench{number:012d}",
                    "conversation_id": p["_id"],
                    "seq": seq,
                    "sender_id": p["created_by"] if role == "USER" else (p["last_agent_id"] or AGENTS[0]),
                    "sender_role": role,
                    "content": "Thanks for your donation, here is the receipt you asked for.",
                    "message_type": kind,
                    "created_at": at,
                    "updated_at": at,
                }

    sent = insert(Message, message_rows())
    return {"conversations": len(plans), "messages": sent}


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return (time.perf_counter() - start) * 1000, result


def shapes_of(today: dt.date) -> dict[str, str]:
    """The measured requests: every period ends on `today` (the day the data was seeded)."""
    to = today.isoformat()

    def days(n: int) -> str:
        return f"from={(today - dt.timedelta(days=n - 1)).isoformat()}&to={to}"

    agent = AGENTS[7]
    return {
        "7 days by day": f"/api/reports?{days(7)}",
        "30 days by day (default)": f"/api/reports?{days(30)}",
        "90 days by day": f"/api/reports?{days(90)}",
        "14 days by hour": f"/api/reports?{days(14)}&granularity=hour",
        "366 days by day": f"/api/reports?{days(366)}",
        "366 days, label filter": f"/api/reports?{days(366)}&label=refund",
        "366 days, agent filter": f"/api/reports?{days(366)}&agent={agent}",
    }


def measure(runs: int, token: str, now: dt.datetime) -> dict[str, list[float]]:
    from django.test import Client

    from conversations.models import Conversation
    from messaging.models import Message

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    shapes = shapes_of(now.date())
    since = now - dt.timedelta(days=30)
    references: dict[str, Callable[[], Any]] = {
        "reference: Message.objects.count()": lambda: Message.objects.count(),
        "reference: conversations of the last 30 days, count()": lambda: Conversation.objects.filter(
            created_at__gte=since
        ).count(),
    }

    def request(url: str) -> None:
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        json.loads(response.content)

    times: dict[str, list[float]] = {name: [] for name in [*shapes, *references]}
    for url in shapes.values():
        request(url)  # warm-up
    for _ in range(runs):
        for name, url in shapes.items():
            times[name].append(timed(lambda url=url: request(url))[0])
        for name, call in references.items():
            times[name].append(timed(call)[0])
    return times


def database_size_mib(vendor: str) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        else:
            cursor.execute("SELECT pg_database_size(current_database())")
        return cursor.fetchone()[0] / 1024 / 1024


def report(args: argparse.Namespace, vendor: str, seeded: dict[str, Any], seed_s: float, times: dict) -> str:
    versions = ""
    if vendor == "postgresql":
        from django.db import connection

        versions = f"PostgreSQL {connection.cursor().connection.info.server_version}"
    lines = [
        "# Reports benchmark" + (" (PostgreSQL)" if vendor == "postgresql" else ""),
        "",
        *machine_lines(
            versions=versions,
            extra=[
                f"- Data: {seeded['conversations']:,} conversations and {seeded['messages']:,} messages over the "
                f"last 365 days, 60 agents, 8 labels; seeded in {seed_s:.0f} s"
                + (f" (reused, seeded {seeded['now'][:19]}Z)" if seeded.get("reused") else "")
                + f"; database {database_size_mib(vendor):.0f} MiB.",
                f"- Requests: GET /api/reports as an ADMIN token through Django's test client (in process: "
                f"middleware, auth, validation, queries, JSON; no network), one warm-up each, then {args.runs} "
                "runs of each, interleaved.",
            ],
        ),
        "",
        "| Request | Runs | median ms | p90 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in times.items():
        lines.append(
            f"| {name} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 90):.1f} | "
            f"{max(values):.1f} |"
        )
    return "\n".join(lines) + "\n"


def wanted(args: argparse.Namespace) -> dict[str, int]:
    return {"conversations": args.conversations, "messages": args.messages, "seed": SEED, "format": SEED_FORMAT}


def kept_seed(marker: Path | None, args: argparse.Namespace) -> dict[str, Any] | None:
    """What a kept database was seeded with, if it is what this run asks for."""
    if marker is None or not marker.exists():
        return None
    recorded = json.loads(marker.read_text())
    # The asked sizes (the recorded "messages" is the count actually written, which differs from the asked).
    asked = recorded.get("asked", {})
    return recorded if all(asked.get(key) == value for key, value in wanted(args).items()) else None


def run(args: argparse.Namespace, database_url: str, marker: Path | None) -> Path:
    """Seed (unless `marker` records a matching seed of this database), then measure."""
    private_pem = prepare_environment(database_url)
    migrate()  # a kept database gets the new migrations (their data migrations fill new fields)
    django.setup()
    from django.db import connection

    recorded = kept_seed(marker, args)
    if recorded is None:
        now = dt.datetime.now(dt.UTC)
        rng = random.Random(SEED)
        seed_ms, counts = timed(lambda: seed(args.conversations, args.messages, rng, now))
        recorded = {**wanted(args), **counts, "asked": wanted(args), "now": now.isoformat(), "seed_s": seed_ms / 1000}
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        if marker is not None:
            marker.write_text(json.dumps(recorded, indent=1) + "\n")
        seeded = recorded
    else:
        seeded = {**recorded, "reused": True}
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # the new migrations may have added indexes or filled fields
    now = dt.datetime.fromisoformat(seeded["now"])
    vendor = connection.vendor
    times = measure(args.runs, mint(private_pem, "lead", "ADMIN"), now)
    text = report(args, vendor, seeded, seeded["seed_s"], times)
    print(text)
    out = RESULTS_DIR / ("reports_bench_postgres.md" if vendor == "postgresql" else "reports_bench.md")
    if not args.no_write:
        out.write_text(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database-url", help="postgres://… to measure PostgreSQL (its database is recreated)")
    parser.add_argument("--reuse", action="store_true", help="PostgreSQL: keep the database if seeded alike")
    parser.add_argument("--db", type=Path, help="SQLite: keep the database in this file (seeded when needed)")
    parser.add_argument("--no-write", action="store_true", help="print the report only (no results file)")
    args = parser.parse_args()
    if args.database_url:
        if not args.database_url.startswith(("postgres://", "postgresql://")):
            parser.error("--database-url takes a postgres:// URL (SQLite is the default, in a temporary file)")
        if args.db:
            parser.error("--db is for SQLite; --database-url with --reuse keeps a PostgreSQL database")
        name = args.database_url.rpartition("/")[2]
        marker = REPO_ROOT / "var" / f"reports-bench-{name}.seed.json"
        if not (args.reuse and kept_seed(marker, args)):
            marker.unlink(missing_ok=True)
            reset_postgres(args.database_url)
        marker.parent.mkdir(exist_ok=True)
        run(args, args.database_url, marker if args.reuse else None)
        return
    if args.db:
        path = args.db.resolve()
        marker = path.with_name(path.name + ".seed.json")
        if not kept_seed(marker, args):
            marker.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        run(args, f"sqlite:///{path}", marker)
        return
    with tempfile.TemporaryDirectory(prefix="chat-reports-bench-") as tmp:
        run(args, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", None)


if __name__ == "__main__":
    main()
