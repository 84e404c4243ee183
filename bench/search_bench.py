"""Message search benchmark: the search selector over 1,000,000 messages, against a plain `icontains` scan.

What is measured
----------------
A fresh database is filled directly (bulk inserts, not the API) with N messages (default 1,000,000) in
many conversations of many donors, in time order: words drawn from a vocabulary of 30,000 with a Zipf-like
distribution (rank r has weight 1/r^1.07: a few words such as "the", "my", "donation" are in most messages,
most words are rare), message lengths log-normal (median about 10 words), 3% internal notes. The search
index is then built by the code `manage.py search_reindex` runs (timed: "index build").

Then, in one process, the wall-clock time of `search.selectors.search_messages` (what the endpoint calls:
the scope, the index query, the rows, the snippets; the first page of 20) for random two-word queries:

* ``staff``: an ADMIN searching every conversation;
* ``donor``: a random donor searching their own conversations (their participations, notes excluded);
* ``staff, three words``: three-word queries as staff (a three-word phrase of common words is rare among
  their matches, so the phrase tier reads further: the slowest shape found);
* ``icontains staff`` / ``icontains donor``: the same queries as
  ``Message.objects.filter(Q(content__icontains=w1) & Q(content__icontains=w2))`` (newest 20, donor's
  conversations for the donor), the scan search replaces; fewer repetitions, it is slow.

Query words are drawn with the corpus' own frequencies, so common words are asked as often as they occur:
the hard case for an index (many matches to rank), which a search that ranked every match (bm25) could not
answer in time (README, "Message search"). Each query shape's match counts are reported too.

Run from the repository root: ``.venv/bin/python bench/search_bench.py [--messages N] [--queries Q]
[--scan-queries S] [--database-url URL]``; the report is printed and written to
``bench/results/search_bench.md`` (``search_bench_postgres.md`` for a postgres:// URL, whose database is
dropped and created again).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django
from benchlib import machine_lines, migrate, percentile, prepare_environment, reset_postgres

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

RESULTS_DIR = REPO_ROOT / "bench" / "results"
SEED = 20261202
VOCABULARY_SIZE = 30_000
ZIPF_EXPONENT = 1.07
MESSAGES_PER_CONVERSATION = 20  # on average
CONVERSATIONS_PER_DONOR = 2  # on average
AGENTS = 60
NOTE_SHARE = 0.03
INSERT_BATCH = 20_000
PAGE = 20

# The head of the vocabulary, in rough order of frequency: what donors and support staff write most.
COMMON_TEXT = """
the i to my a and you is it for of on in was this that me can your we have be not with please
donation thank thanks hi hello help monthly card payment refund receipt charged twice account email
campaign cancel update address tax certificate bank transfer failed error page login password reset
just but are as if do at so will an or from no yes could would how what when why did get got there
our they been has one any some need want like know see check sent send still again today yesterday
month year amount money pay paid donate donated give giving gift fund fundraiser team support
hope child children school water food family families project country people help
via online app website link click form button mobile phone number name change changed wrong
receipts statement confirmation confirm receive received problem issue sorry sure ok okay great
please kindly asap soon week weeks day days time reply answer question questions info information
"""
COMMON = COMMON_TEXT.split()
# Words of other languages people write in (the donor page speaks Bengali): part of the long tail.
BENGALI_TEXT = "আমি টাকা ফেরত চাই দান রসিদ কার্ড মাসিক সাহায্য ধন্যবাদ"
BENGALI = BENGALI_TEXT.split()
SYLLABLE_TEXT = "ka ri to ne sa mo lu pe di ra ko ve na ti su ba le mi go fa zo qui dre lan mor"
SYLLABLES = SYLLABLE_TEXT.split()


def vocabulary(rng: random.Random) -> list[str]:
    words = list(dict.fromkeys(COMMON))
    seen = set(words)
    for bengali in BENGALI:
        words.insert(rng.randrange(200, 2000), bengali)
        seen.add(bengali)
    while len(words) < VOCABULARY_SIZE:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Words:
    """Draws words with Zipf-like frequencies (weight of rank r: 1 / r^ZIPF_EXPONENT)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = vocabulary(rng)
        self.cumulative = list(itertools.accumulate(1 / (r + 1) ** ZIPF_EXPONENT for r in range(len(self.words))))

    def draw(self, k: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cumulative, k=k)

    def sentence(self) -> str:
        count = max(1, min(80, round(self.rng.lognormvariate(2.3, 0.6))))
        words = self.draw(count)
        words[0] = words[0].capitalize()
        return " ".join(words) + self.rng.choice(".?!.")


# ------------------------------------------------------------------------------------------------- seeding


def seed(messages: int, rng: random.Random, words: Words) -> dict[str, Any]:
    """Conversations, participants and messages, inserted in bulk. Returns the donors and their conversations."""
    from django.db import connection, transaction

    from conversations.models import Conversation, Participant, Role
    from messaging.models import Message

    conversations = max(1, messages // MESSAGES_PER_CONVERSATION)
    donors = max(1, conversations // CONVERSATIONS_PER_DONOR)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    span = 365 * 86_400
    # Each conversation opens at a random moment of the year and lasts up to a few days; its messages are
    # spread over it. Sorting every message by time interleaves conversations as a busy desk does.
    sizes = [1 + int(rng.expovariate(1 / (MESSAGES_PER_CONVERSATION - 1))) for _ in range(conversations)]
    scale = messages / sum(sizes)
    sizes = [max(1, round(size * scale)) for size in sizes]
    sizes[-1] = max(1, sizes[-1] + messages - sum(sizes))
    owners = [f"donor-{rng.randrange(donors)}" for _ in range(conversations)]
    opened = [start + dt.timedelta(seconds=rng.uniform(0, span)) for _ in range(conversations)]
    agents = [f"agent-{rng.randrange(AGENTS)}" for _ in range(conversations)]
    ids = [f"conv_bench{index:010d}" for index in range(conversations)]
    times: list[tuple[dt.datetime, int, int]] = []
    for index, size in enumerate(sizes):
        at = opened[index]
        for seq in range(1, size + 1):
            at += dt.timedelta(seconds=rng.expovariate(1 / 600))
            times.append((at, index, seq))
    times.sort()
    last = {index: (size, opened[index]) for index, size in enumerate(sizes)}
    for at, index, seq in times:
        if seq == sizes[index]:
            last[index] = (seq, at)
    with transaction.atomic():
        Conversation.objects.bulk_create(
            [
                Conversation(
                    id=ids[i],
                    created_by=owners[i],
                    subject=f"Donation question {i}",
                    last_seq=last[i][0],
                    last_message_at=last[i][1],
                    admin_count=1,
                    created_at=opened[i],
                    updated_at=last[i][1],
                )
                for i in range(conversations)
            ],
            batch_size=5_000,
        )
        participants = []
        for i in range(conversations):
            participants.append(Participant(conversation_id=ids[i], user_id=owners[i], role=Role.USER))
            participants.append(Participant(conversation_id=ids[i], user_id=agents[i], role=Role.ADMIN, assigned=True))
        Participant.objects.bulk_create(participants, batch_size=5_000)
    # Messages by plain executemany: the ORM's bulk_create of a million objects takes minutes.
    meta = Message._meta
    columns = [field.column for field in meta.concrete_fields]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    when = meta.get_field("created_at")
    position = {column: n for n, column in enumerate(columns)}

    def rows() -> Iterator[list[Any]]:
        for number, (at, index, seq) in enumerate(times):
            from_donor = rng.random() < 0.55
            note = not from_donor and rng.random() < NOTE_SHARE / 0.45
            stamp = when.get_db_prep_save(at, connection)
            row: list[Any] = [None] * len(columns)
            values = {
                "_id": f"msg_bench{number:012d}",
                "conversation_id": ids[index],
                "seq": seq,
                "sender_id": owners[index] if from_donor else agents[index],
                "sender_role": "USER" if from_donor else "ADMIN",
                "sender_name": "" if from_donor else f"Agent {agents[index][6:]}",
                "content": words.sentence(),
                "message_type": "NOTE" if note else "TEXT",
                "metadata": "{}",
                "client_message_id": None,
                "created_at": stamp,
                "updated_at": stamp,
            }
            for column, value in values.items():
                row[position[column]] = value
            yield row

    generated = rows()
    while True:
        batch = list(itertools.islice(generated, INSERT_BATCH))
        if not batch:
            break
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, batch)
    by_donor: dict[str, list[str]] = {}
    for i in range(conversations):
        by_donor.setdefault(owners[i], []).append(ids[i])
    return {"messages": len(times), "conversations": conversations, "donors": by_donor}


# ------------------------------------------------------------------------------------------------- measuring


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "max": max(samples),
        "mean": statistics.fmean(samples),
    }


def icontains(w1: str, w2: str, conversation_ids: list[str] | None) -> list[str]:
    from django.db.models import Q

    from messaging.models import Message

    qs = Message.objects.filter(Q(content__icontains=w1) & Q(content__icontains=w2))
    if conversation_ids is not None:
        qs = qs.filter(conversation_id__in=conversation_ids)
    return list(qs.order_by("-created_at").values_list("id", flat=True)[:PAGE])


def match_count(w1: str, w2: str) -> int:
    """How many messages contain both words (the size of what a ranking of every match would rank)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return -1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM search_message_fts WHERE search_message_fts MATCH %s",
            [f'body : ("{w1}" AND "{w2}")'],
        )
        return cursor.fetchone()[0]


def measure(args: argparse.Namespace, rng: random.Random, words: Words, seeded: dict[str, Any]) -> dict[str, Any]:
    from chatservice.authentication import Principal
    from search.selectors import search_messages

    staff = Principal("agent-1", "ADMIN")
    donors = sorted(seeded["donors"])
    queries = [tuple(words.draw(2)) for _ in range(args.queries)]
    viewers = [Principal(rng.choice(donors), "USER") for _ in range(args.queries)]
    for w1, w2 in queries[:20]:  # warm the page cache and the connection
        search_messages(viewer=staff, query=f"{w1} {w2}")
    # Three words: the phrase tier of three common words is sparse among their many common matches, so it
    # reads further down the posting lists before it fills a page (the slowest kind of query found).
    triples = [" ".join(words.draw(3)) for _ in range(args.queries // 2)]
    results: dict[str, Any] = {
        "staff": [],
        "donor": [],
        "staff, three words": [],
        "icontains staff": [],
        "icontains donor": [],
    }
    hits: dict[str, list[int]] = {"staff": [], "donor": []}
    # Interleaved, so a noisy neighbour on the machine costs both shapes alike.
    for (w1, w2), donor in zip(queries, viewers, strict=True):
        ms, page = timed(lambda w1=w1, w2=w2: search_messages(viewer=staff, query=f"{w1} {w2}"))
        results["staff"].append(ms)
        hits["staff"].append(len(page.results))
        ms, page = timed(lambda w1=w1, w2=w2, donor=donor: search_messages(viewer=donor, query=f"{w1} {w2}"))
        results["donor"].append(ms)
        hits["donor"].append(len(page.results))
    for triple in triples:
        ms, _ = timed(lambda triple=triple: search_messages(viewer=staff, query=triple))
        results["staff, three words"].append(ms)
    for (w1, w2), donor in list(zip(queries, viewers, strict=True))[: args.scan_queries]:
        results["icontains staff"].append(timed(lambda w1=w1, w2=w2: icontains(w1, w2, None))[0])
        mine = seeded["donors"][donor.user_id]
        results["icontains donor"].append(timed(lambda w1=w1, w2=w2, mine=mine: icontains(w1, w2, mine))[0])
    matches = [match_count(w1, w2) for w1, w2 in queries]
    return {"timings": {k: summary(v) for k, v in results.items()}, "hits": hits, "matches": matches}


# ------------------------------------------------------------------------------------------------- report


def report(args: argparse.Namespace, vendor: str, seeded: dict[str, Any], stats: dict[str, Any]) -> str:
    from django.db import connection

    version = connection.pg_version if vendor == "postgresql" else 0
    versions = f"PostgreSQL {version // 10000}.{version % 10000}" if version else ""
    lines = [
        "# Message search benchmark" + (" (PostgreSQL)" if vendor == "postgresql" else ""),
        "",
        *machine_lines(
            versions=versions,
            extra=[
                f"- Data: {seeded['messages']:,} messages in {seeded['conversations']:,} conversations of "
                f"{len(seeded['donors']):,} donors and {AGENTS} agents; vocabulary {VOCABULARY_SIZE:,} words, "
                f"Zipf exponent {ZIPF_EXPONENT}; {NOTE_SHARE:.0%} notes; seeded in {stats['seed_s']:.0f} s, "
                f"index built in {stats['index_s']:.0f} s (`search_reindex`'s code); database "
                f"{stats['db_mib']:,.0f} MiB.",
                f"- Queries: {args.queries} random two-word queries (words drawn with corpus frequencies), each "
                f"as staff and as a random donor, interleaved; the first page of {PAGE}, through "
                f"`search.selectors.search_messages`; icontains: the first {args.scan_queries} of them; "
                f"then {args.queries // 2} three-word queries as staff.",
            ],
        ),
        "",
        "| Search | Queries | p50 ms | p95 ms | p99 ms | max ms | mean ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in stats["timings"].items():
        lines.append(
            f"| {name} | {row['n']} | {row['p50']:.2f} | {row['p95']:.2f} | {row['p99']:.2f} | "
            f"{row['max']:.2f} | {row['mean']:.2f} |"
        )
    matches = [m for m in stats["matches"] if m >= 0]
    lines.append("")
    if matches:
        lines.append(
            f"- Messages containing both words, per query: median {percentile(matches, 50):,}, p90 "
            f"{percentile(matches, 90):,}, max {max(matches):,} (what a ranking of every match would have to score)."
        )
    full = sum(1 for n in stats["hits"]["staff"] if n == PAGE)
    lines.append(
        f"- Staff queries with a full first page: {full} of {len(stats['hits']['staff'])}; donor queries with "
        f"any result: {sum(1 for n in stats['hits']['donor'] if n)} of {len(stats['hits']['donor'])}."
    )
    staff, scan = stats["timings"]["staff"], stats["timings"]["icontains staff"]
    lines.append(f"- icontains / index, staff, p50: {scan['p50'] / staff['p50']:.0f}x.")
    return "\n".join(lines) + "\n"


def database_size_mib(vendor: str) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        else:
            cursor.execute("SELECT pg_database_size(current_database())")
        return cursor.fetchone()[0] / 1024 / 1024


def run(args: argparse.Namespace, database_url: str) -> Path:
    prepare_environment(database_url)
    migrate()
    django.setup()
    from django.db import connection

    from search.services import index_rebuild

    rng = random.Random(SEED)
    words = Words(rng)
    seed_s, seeded = timed(lambda: seed(args.messages, rng, words))
    index_s, _ = timed(lambda: index_rebuild(batch_size=5_000))
    vendor = connection.vendor
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    stats = measure(args, rng, words, seeded)
    stats.update(seed_s=seed_s / 1000, index_s=index_s / 1000, db_mib=database_size_mib(vendor))
    text = report(args, vendor, seeded, stats)
    print(text)
    name = "search_bench_postgres.md" if vendor == "postgresql" else "search_bench.md"
    out = RESULTS_DIR / name
    out.write_text(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1_000, help="two-word queries per search shape")
    parser.add_argument("--scan-queries", type=int, default=30, help="of which also as an icontains scan")
    parser.add_argument("--database-url", help="postgres://… to measure PostgreSQL (its database is recreated)")
    args = parser.parse_args()
    if args.database_url:
        if not args.database_url.startswith(("postgres://", "postgresql://")):
            parser.error("--database-url takes a postgres:// URL (SQLite is the default, in a temporary file)")
        reset_postgres(args.database_url)
        run(args, args.database_url)
        return
    with tempfile.TemporaryDirectory(prefix="chat-search-bench-") as tmp:
        run(args, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")


if __name__ == "__main__":
    main()
