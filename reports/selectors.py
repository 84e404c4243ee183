"""The support leads' report (docs: /work/briefs/reports-contract.md, README "Reports"): every figure is
aggregated by the database, which returns one small row per bucket (or per agent, per rating); Python only
fills the empty buckets, adds running totals and names agents.

Buckets are UTC days or hours, half-open: an event at 00:00 belongs to the day it starts. The bucket key is
computed by the database: TruncDate/TruncHour on PostgreSQL and MongoDB; on SQLite a prefix of the stored
text (Django stores UTC `YYYY-MM-DD HH:MM:SS…` there), because SQLite's TruncDate is a Python function
called once per row, which over two million messages costs seconds.

Percentiles are nearest-rank (conversations.selectors.durations): the value of rank ceil(p·n/100) in each
bucket. SQL databases rank rows with window functions and return only the ranked rows the percentiles
name; django-mongodb-backend has no window expressions, so MongoDB runs an aggregation pipeline that
groups each bucket's durations, sorts them ($sortArray) and picks the ranks ($arrayElemAt).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import (
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    Sum,
    Window,
)
from django.db.models.functions import RowNumber, TruncDate, TruncHour
from django.utils import timezone

from chatservice.db import sql_only
from conversations.models import Conversation, ConversationLabel, ConversationStatus, Role
from csat.models import RATING_MAX, RATING_MIN, CsatResponse
from messaging.models import RESPONSE_TYPES, Message

DAY, HOUR = "day", "hour"
GRANULARITIES = (DAY, HOUR)
MEDIAN, P90 = 50, 90
PERCENTILES = (MEDIAN, P90)
# The charts a CSV can be asked for, and the keys of their rows (the CSV header, in this order).
CHART_COLUMNS: dict[str, tuple[str, ...]] = {
    "volume": ("bucket", "conversations", "donorMessages", "staffMessages"),
    "responsiveness": (
        "bucket",
        "firstResponseCount",
        "firstResponseMedian",
        "firstResponseP90",
        "resolutionCount",
        "resolutionMedian",
        "resolutionP90",
    ),
    "backlog": ("bucket", "waiting"),
    "csat": ("rating", "count"),
    "agents": ("agentId", "name", "assigned", "replied", "firstResponseMedian", "csatCount", "csatAverage"),
}


@dataclass(frozen=True)
class ReportQuery:
    """A validated report request (reports.serializers builds it): inclusive UTC dates."""

    start: dt.date
    end: dt.date
    granularity: str = DAY
    label: str | None = None
    agent: str | None = None

    @property
    def since(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)

    @property
    def until(self) -> dt.datetime:
        """The end of the period, exclusive (midnight after `end`)."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)

    @property
    def step(self) -> dt.timedelta:
        return dt.timedelta(hours=1) if self.granularity == HOUR else dt.timedelta(days=1)

    def buckets(self) -> list[dt.datetime]:
        count = (self.until - self.since) // self.step
        return [self.since + i * self.step for i in range(count)]

    def label_of(self, bucket: dt.datetime) -> str:
        return bucket.strftime("%Y-%m-%dT%H:00Z" if self.granularity == HOUR else "%Y-%m-%d")


# ---- bucket keys and durations, per database ---------------------------------------------------------


def _vendor(vendor: str | None) -> str:
    return vendor or connection.vendor


def bucket_of(field: str, granularity: str, *, vendor: str | None = None) -> Any:
    """The expression naming the bucket of `field` (see the module's docstring on SQLite)."""
    if _vendor(vendor) == "sqlite":
        return _Prefix(field, length=13 if granularity == HOUR else 10)
    return TruncHour(field, tzinfo=dt.UTC) if granularity == HOUR else TruncDate(field, tzinfo=dt.UTC)


class _Prefix(Func):
    """SQLite: the first `length` characters of a text column, the length written into the SQL rather than
    bound: SQLite takes two window partitions (or a GROUP BY and its SELECT) as the same only when their
    expressions are identical, and two bound parameters never are, so a rank and a size partitioned by a
    bound SUBSTR are sorted apart (ranked_query: three sorts of the rows instead of two)."""

    function = "SUBSTR"
    template = "%(function)s(%(expressions)s, 1, %(length)d)"
    output_field = CharField()

    def __init__(self, field: str, *, length: int) -> None:
        super().__init__(F(field), length=int(length))


def _bucket_key(value: Any) -> dt.datetime:
    """A bucket as the database returned it (text on SQLite, a date or datetime elsewhere) as its start."""
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value + (":00" if len(value) == 13 else "")).replace(tzinfo=dt.UTC)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)


class _JulianSeconds(Func):
    """SQLite: (julianday(end) - julianday(start)) in seconds, computed natively (Django's own datetime
    difference there is a Python function per row). Used only to order rows; the reported durations are
    recomputed exactly from the timestamps of the rows the ranks pick."""

    template = "((julianday(%(expressions)s) - julianday(%(start)s)) * 86400.0)"
    output_field = FloatField()

    def __init__(self, end: str, start: str) -> None:
        super().__init__(F(end))
        self.start_field = F(start)

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:
        start_sql, start_params = compiler.compile(self.start_field.resolve_expression(compiler.query))
        sql, params = super().as_sql(compiler, connection, start=start_sql, **extra_context)
        return sql, [*params, *start_params]


def _duration(start: str, end: str, *, vendor: str) -> Any:
    if vendor == "sqlite":
        return _JulianSeconds(end, start)
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


# ---- filters -------------------------------------------------------------------------------------------


def _labelled(label: str) -> QuerySet:
    return ConversationLabel.objects.filter(label=label).values("conversation_id")


def conversations_of(query: ReportQuery) -> QuerySet[Conversation]:
    conversations = Conversation.objects.order_by()
    if query.label is not None:
        conversations = conversations.filter(pk__in=_labelled(query.label))
    if query.agent is not None:
        conversations = conversations.filter(last_agent_id=query.agent)
    return conversations


def _messages_of(
    query: ReportQuery, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> QuerySet[Message]:
    """The period's TEXT and FILE messages (or those from `since` until `until`), filtered."""
    messages = Message.objects.order_by().filter(
        created_at__gte=since or query.since,
        created_at__lt=until or query.until,
        message_type__in=sorted(RESPONSE_TYPES),
    )
    if query.label is not None:
        messages = messages.filter(conversation_id__in=_labelled(query.label))
    if query.agent is not None:
        messages = messages.filter(
            conversation_id__in=Conversation.objects.order_by().filter(last_agent_id=query.agent).values("pk")
        )
    return messages


def _ratings_of(query: ReportQuery) -> QuerySet[CsatResponse]:
    ratings = CsatResponse.objects.order_by().filter(created_at__gte=query.since, created_at__lt=query.until)
    if query.label is not None:
        ratings = ratings.filter(conversation_id__in=_labelled(query.label))
    if query.agent is not None:
        ratings = ratings.filter(agent_id=query.agent)
    return ratings


def _in_period(field: str, query: ReportQuery) -> Q:
    return Q(**{f"{field}__gte": query.since, f"{field}__lt": query.until})


# ---- counts per bucket ---------------------------------------------------------------------------------


def counts_by_bucket(rows: QuerySet, field: str, query: ReportQuery, *, vendor: str | None = None) -> QuerySet:
    """{bucket, n} rows: how many of `rows` have `field` in each bucket of the period (empty ones absent)."""
    return (
        rows.filter(_in_period(field, query))
        .annotate(bucket=bucket_of(field, query.granularity, vendor=vendor))
        .values("bucket")
        .annotate(n=Count("*"))
    )


def _by_bucket(rows: Iterable[dict[str, Any]]) -> dict[dt.datetime, int]:
    return {_bucket_key(row["bucket"]): row["n"] for row in rows}


def message_counts_query(query: ReportQuery, *, vendor: str | None = None) -> QuerySet:
    return (
        _messages_of(query)
        .annotate(bucket=bucket_of("created_at", query.granularity, vendor=vendor))
        .values("bucket", "sender_role")
        .annotate(n=Count("*"))  # not the key: COUNT(*) reads the (sender_role, created_at, …) index alone
    )


# PostgreSQL groups a period's messages in one sequential scan (about 0.6 s for a year on the bench, whatever
# the period); one index-only range per bucket costs about 2 ms each there: 50 ms instead of 300 for 30 days,
# slower past a few hundred buckets.
POSTGRES_MAX_BUCKET_QUERIES = 120


def _counts_per_bucket(query: ReportQuery) -> bool:
    if query.label is not None or query.agent is not None:
        return False
    if connection.vendor == "postgresql":
        return len(query.buckets()) <= POSTGRES_MAX_BUCKET_QUERIES
    return connection.vendor == "sqlite"


def message_counts(query: ReportQuery) -> dict[tuple[dt.datetime, str], int]:
    """{(bucket, sender role): messages}. SQLite (and PostgreSQL for short periods) without a filter: one
    count per bucket over its ranges of the (sender_role, created_at, message_type, …) index, one range per
    role, because SQLite groups by a bucket expression through a temporary B-tree of every index entry of
    the period (about 1 s for a year of two million messages) where the per-bucket ranges read the same
    entries in order (a third of that)."""
    sent: dict[tuple[dt.datetime, str], int] = {}
    if _counts_per_bucket(query):
        # Compiled once by the ORM and run for each bucket with that bucket's bounds (an ORM query per
        # bucket costs more than its count). The roles named (IN) so each is a range of the index.
        first = query.since
        sql, params = (
            _messages_of(query, since=first, until=first + query.step)
            .filter(sender_role__in=[Role.ADMIN, Role.USER])
            .values("sender_role")
            .annotate(n=Count("*"))
            .values_list("sender_role", "n")
            .query.sql_with_params()
        )
        adapt = connection.ops.adapt_datetimefield_value
        bounds = {adapt(first): 0, adapt(first + query.step): 1}
        slots = [(i, bounds[param]) for i, param in enumerate(params) if param in bounds]
        with connection.cursor() as cursor:
            for bucket in query.buckets():
                edges = (adapt(bucket), adapt(bucket + query.step))
                bucket_params = list(params)
                for i, edge in slots:
                    bucket_params[i] = edges[edge]
                cursor.execute(sql, bucket_params)
                for role, n in cursor.fetchall():
                    sent[(bucket, role)] = n
        return sent
    for row in message_counts_query(query):
        sent[(_bucket_key(row["bucket"]), row["sender_role"])] = row["n"]
    return sent


def volume_rows(query: ReportQuery) -> list[dict[str, Any]]:
    opened = _by_bucket(counts_by_bucket(conversations_of(query), "created_at", query))
    sent = message_counts(query)
    return [
        {
            "bucket": query.label_of(bucket),
            "conversations": opened.get(bucket, 0),
            "donorMessages": sent.get((bucket, Role.USER), 0),
            "staffMessages": sent.get((bucket, Role.ADMIN), 0),
        }
        for bucket in query.buckets()
    ]


# ---- percentiles -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles:
    count: int
    seconds: dict[int, float]  # {50: median, 90: p90}


def nearest_rank(p: int, n: int) -> int:
    """ceil(p·n/100) in integers (no float rounding), at least 1: conversations.selectors.durations."""
    return max(1, -(-p * n // 100))


def ranked_query(rows: QuerySet, group: Any, start: str, end: str, *, vendor: str | None = None) -> QuerySet:
    """SQL: `rows` with their rank (by duration end - start, within their group), the group's size and both
    timestamps (picked_ranks keeps the ranks the percentiles name). `group` is an expression, or
    {name: expression} to rank the same rows within several groupings in one pass: each grouping adds the
    columns <name>, <name>_rank and <name>_size (a single expression is the grouping named "group").

    Ties are ordered by `start` and rows counted with COUNT(*), not by the pk: so SQLite reads only the
    conv_report_idx entries (created_at, first_response_at, closed_at, last_agent_id), never the table. Rows
    tied on the duration and on `start` have the same `end` too, so the order among them cannot change a
    percentile."""
    groups = group if isinstance(group, dict) else {"group": group}
    order = [_duration(start, end, vendor=_vendor(vendor)).asc(), F(start).asc()]
    annotations: dict[str, Any] = {}
    for name, expression in groups.items():
        annotations[name] = expression
        annotations[f"{name}_rank"] = Window(RowNumber(), partition_by=[expression], order_by=order)
        annotations[f"{name}_size"] = Window(Count("*"), partition_by=[expression])
    columns = [column for name in groups for column in (name, f"{name}_rank", f"{name}_size")]
    return sql_only(
        rows.annotate(**annotations).values(*columns, start, end),
        because="window functions; MongoDB runs percentile_pipeline",
    )


def picked_ranks(ranked: QuerySet, start: str, end: str, groups: Iterable[str] = ("group",)) -> list[dict[str, Any]]:
    """SQL: the rows of ranked_query whose rank, in any of its `groups`, is one the percentiles name (at most
    len(PERCENTILES) per group). The ORM's own filter on window annotations computes every window once per
    comparison that names it (on SQLite: seven window sorts instead of two), so the ranks are kept by an
    outer query around the ORM's (vendor-gated SQL, like every caller of ranked_query)."""
    inner, params = ranked.query.sql_with_params()
    q = connection.ops.quote_name
    picked = []
    columns: list[str] = []
    for name in groups:
        rank, size = f"ranked.{q(name + '_rank')}", f"ranked.{q(name + '_size')}"
        columns += [name, f"{name}_rank", f"{name}_size"]
        # rank = ceil(p·size/100), as integer inequalities: p·size <= 100·rank < p·size + 100.
        picked += [f"({rank} * 100 >= {size} * {p} AND {rank} * 100 < {size} * {p} + 100)" for p in PERCENTILES]
    columns += [start, end]
    where = " OR ".join(picked)
    sql = f"SELECT {', '.join(f'ranked.{q(c)}' for c in columns)} FROM ({inner}) ranked WHERE {where}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = [dict(zip(columns, row, strict=True)) for row in rows]
    for values in found:
        values[start], values[end] = _timestamp(values[start]), _timestamp(values[end])
    return found


def _timestamp(value: Any) -> dt.datetime:
    """A timestamp as a cursor returns it (text on SQLite, an aware datetime on PostgreSQL), aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def percentile_pipeline(
    match: dict[str, Any], group: Any, start: str, end: str, *, label: str | None = None
) -> list[dict[str, Any]]:
    """MongoDB: the same percentiles as ranked_query, one document per group: {_id, n, p50, p90} with
    durations in milliseconds (BSON dates are milliseconds). `match` selects the documents; `label` keeps
    those with that ConversationLabel (a $lookup on its index)."""
    stages: list[dict[str, Any]] = [{"$match": match}]
    if label is not None:
        stages += [
            {
                "$lookup": {
                    "from": ConversationLabel._meta.db_table,
                    "localField": "_id",
                    "foreignField": "conversation_id",
                    "pipeline": [{"$match": {"label": label}}, {"$project": {"_id": 1}}],
                    "as": "labelled",
                }
            },
            {"$match": {"labelled": {"$ne": []}}},
        ]
    stages += [
        {"$group": {"_id": group, "d": {"$push": {"$subtract": [f"${end}", f"${start}"]}}}},
        {"$project": {"n": {"$size": "$d"}, "d": {"$sortArray": {"input": "$d", "sortBy": 1}}}},
        {
            "$project": {
                "n": 1,
                **{
                    f"p{p}": {
                        "$arrayElemAt": [
                            "$d",
                            {"$subtract": [{"$toInt": {"$ceil": {"$divide": [{"$multiply": ["$n", p]}, 100]}}}, 1]},
                        ]
                    }
                    for p in PERCENTILES
                },
            }
        },
    ]
    return stages


def mongo_bucket(field: str, granularity: str) -> dict[str, Any]:
    return {"$dateTrunc": {"date": f"${field}", "unit": granularity, "timezone": "UTC"}}


def _mongo_match(query: ReportQuery, field: str, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    match: dict[str, Any] = {field: {"$gte": _naive(query.since), "$lt": _naive(query.until)}, **(extra or {})}
    if query.agent is not None:
        match["last_agent_id"] = query.agent
    return match


def _naive(moment: dt.datetime) -> dt.datetime:
    """PyMongo stores and compares naive UTC datetimes."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _percentiles(
    query: ReportQuery, rows: QuerySet, *, field: str, start: str, end: str, groups: dict[str, str | None]
) -> dict[str, dict[Any, Percentiles]]:
    """Percentiles of end - start over `rows` (already in the period and filtered), for each grouping of
    `groups` ({name: field}: per value of that field, or per bucket of `field` when None): {name: {key:
    Percentiles}}. SQL databases rank the rows once for every grouping; MongoDB runs a pipeline for each."""
    if connection.vendor == "mongodb":
        return {
            name: _mongo_percentiles(query, field=field, start=start, end=end, group=group)
            for name, group in groups.items()
        }
    expressions = {name: F(group) if group else bucket_of(field, query.granularity) for name, group in groups.items()}
    found_rows: dict[str, dict[Any, tuple[int, dict[int, float]]]] = {name: {} for name in groups}
    for row in picked_ranks(ranked_query(rows, expressions, start, end), start, end, groups):
        for name, group in groups.items():
            rank, size = row[f"{name}_rank"], row[f"{name}_size"]
            if row[name] is None or not any(nearest_rank(p, size) == rank for p in PERCENTILES):
                continue
            key = row[name] if group else _bucket_key(row[name])
            _, seconds = found_rows[name].setdefault(key, (size, {}))
            for p in PERCENTILES:
                if nearest_rank(p, size) == rank:
                    seconds[p] = (row[end] - row[start]).total_seconds()
    return {
        name: {key: Percentiles(size, seconds) for key, (size, seconds) in found.items()}
        for name, found in found_rows.items()
    }


def _mongo_percentiles(
    query: ReportQuery, *, field: str, start: str, end: str, group: str | None
) -> dict[Any, Percentiles]:
    group_expr = f"${group}" if group else mongo_bucket(field, query.granularity)
    extra = {end: {"$ne": None}, start: {"$ne": None}}
    if group:
        extra[group] = {"$ne": None}
    stages = percentile_pipeline(_mongo_match(query, field, extra=extra), group_expr, start, end, label=query.label)
    collection = connection.get_collection(Conversation._meta.db_table)
    found = {}
    for doc in collection.aggregate(stages, session=connection.session):
        key = doc["_id"] if group else _bucket_key(doc["_id"])
        found[key] = Percentiles(doc["n"], {p: doc[f"p{p}"] / 1000 for p in PERCENTILES})
    return found


@dataclass(frozen=True)
class FirstResponses:
    by_bucket: dict[dt.datetime, Percentiles]  # conversations created in each bucket
    by_agent: dict[str, Percentiles]  # conversations created in the period, per last agent


def first_responses(query: ReportQuery) -> FirstResponses:
    """First-response percentiles of the period's conversations per bucket (responsiveness) and per agent
    (agents): the same rows, so SQL databases rank them once for both groupings."""
    rows = conversations_of(query).filter(_in_period("created_at", query), first_response_at__isnull=False)
    found = _percentiles(
        query,
        rows,
        field="created_at",
        start="created_at",
        end="first_response_at",
        groups={"bucket": None, "agent": "last_agent_id"},
    )
    return FirstResponses(by_bucket=found["bucket"], by_agent=found["agent"])


def responsiveness_rows(query: ReportQuery, *, first: FirstResponses | None = None) -> list[dict[str, Any]]:
    """`first`: first_responses(query), when the caller has it already."""
    first_by_bucket = (first or first_responses(query)).by_bucket
    resolved = _percentiles(
        query,
        conversations_of(query).filter(_in_period("closed_at", query)),
        field="closed_at",
        start="created_at",
        end="closed_at",
        groups={"bucket": None},
    )["bucket"]
    rows = []
    for bucket in query.buckets():
        f, r = first_by_bucket.get(bucket), resolved.get(bucket)
        rows.append(
            {
                "bucket": query.label_of(bucket),
                "firstResponseCount": f.count if f else 0,
                "firstResponseMedian": f.seconds.get(MEDIAN) if f else None,
                "firstResponseP90": f.seconds.get(P90) if f else None,
                "resolutionCount": r.count if r else 0,
                "resolutionMedian": r.seconds.get(MEDIAN) if r else None,
                "resolutionP90": r.seconds.get(P90) if r else None,
            }
        )
    return rows


# ---- backlog -----------------------------------------------------------------------------------------------


def backlog_rows(query: ReportQuery) -> list[dict[str, Any]]:
    """Waiting at each bucket's end = created before it - left before it, where a conversation leaves the
    backlog at its first response or its close, whichever is first. So: one count of each before the
    period, then per-bucket counts of arrivals and departures, summed up."""
    conversations = conversations_of(query)
    before = query.since
    waiting = (
        conversations.filter(created_at__lt=before).count()
        - conversations.filter(Q(first_response_at__lt=before) | Q(closed_at__lt=before)).count()
    )
    arrived = _by_bucket(counts_by_bucket(conversations, "created_at", query))
    answered = _by_bucket(
        counts_by_bucket(
            conversations.filter(Q(closed_at__isnull=True) | Q(first_response_at__lte=F("closed_at"))),
            "first_response_at",
            query,
        )
    )
    closed_first = _by_bucket(
        counts_by_bucket(
            conversations.filter(Q(first_response_at__isnull=True) | Q(closed_at__lt=F("first_response_at"))),
            "closed_at",
            query,
        )
    )
    rows = []
    for bucket in query.buckets():
        waiting += arrived.get(bucket, 0) - answered.get(bucket, 0) - closed_first.get(bucket, 0)
        rows.append({"bucket": query.label_of(bucket), "waiting": waiting})
    return rows


@dataclass(frozen=True)
class WaitingNow:
    waiting: int  # ACTIVE with a donor message nobody answered yet
    unassigned: int  # ACTIVE with nobody assigned
    oldest: dict[str, Any] | None  # {id, subject, waiting_since} of the longest waiting


def waiting_now(conversations: QuerySet[Conversation] | None = None) -> WaitingNow:
    """Three reads on the (status, waiting_since) and queue indexes: cheap enough for every scrape."""
    conversations = Conversation.objects.order_by() if conversations is None else conversations
    active = conversations.filter(status=ConversationStatus.ACTIVE)
    waiting = active.filter(waiting_since__isnull=False)
    oldest = waiting.order_by("waiting_since", "pk").values("id", "subject", "waiting_since").first()
    return WaitingNow(waiting=waiting.count(), unassigned=active.filter(admin_count=0).count(), oldest=oldest)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def backlog_now(query: ReportQuery, *, now: dt.datetime) -> dict[str, Any]:
    state = waiting_now(conversations_of(query))
    oldest = None
    if state.oldest is not None:
        since = state.oldest["waiting_since"]
        oldest = {
            "conversationId": state.oldest["id"],
            "subject": state.oldest["subject"],
            "waitingSince": _iso(since),
            "ageSeconds": max(0.0, (now - since).total_seconds()),
        }
    return {"waiting": state.waiting, "unassigned": state.unassigned, "oldestWaiting": oldest}


# ---- satisfaction and agents ------------------------------------------------------------------------------


def _average(total: float, count: int) -> float | None:
    return round(total / count, 2) if count else None


def csat_summary(query: ReportQuery) -> dict[str, Any]:
    counts = dict.fromkeys(range(RATING_MIN, RATING_MAX + 1), 0)
    for row in _ratings_of(query).values("rating").annotate(n=Count("pk")):
        counts[row["rating"]] = row["n"]
    total = sum(counts.values())
    return {
        "count": total,
        "average": _average(sum(rating * n for rating, n in counts.items()), total),
        "distribution": [{"rating": rating, "count": n} for rating, n in counts.items()],
    }


def agent_rows(
    query: ReportQuery, *, name_of: Callable[[str], str], first: FirstResponses | None = None
) -> list[dict[str, Any]]:
    """One row per agent active in the period. The label filter narrows every figure to that label's
    conversations; the agent filter keeps that agent's row (its figures are the agent's own). `first`:
    first_responses(query), when the caller has it already."""
    # The agent filter narrows each figure to rows of that agent (its conversations, its messages, its
    # ratings) rather than computing every agent's row and keeping one.
    unfiltered_agent = ReportQuery(query.start, query.end, query.granularity, query.label, None)
    conversations = conversations_of(query).filter(_in_period("created_at", query))
    staff_messages = _messages_of(unfiltered_agent).filter(sender_role=Role.ADMIN)
    if query.agent is not None:
        staff_messages = staff_messages.filter(sender_id=query.agent)
    assigned = {
        row["last_agent_id"]: row["n"]
        for row in conversations.filter(last_agent_id__isnull=False).values("last_agent_id").annotate(n=Count("*"))
    }
    replied = {
        row["sender_id"]: row["n"]
        for row in staff_messages.values("sender_id")
        .annotate(n=Count("conversation_id", distinct=True))
    }
    first_by_agent = (first or first_responses(query)).by_agent
    ratings = {
        row["agent_id"]: (row["n"], row["total"])
        for row in _ratings_of(query)
        .filter(agent_id__isnull=False)
        .values("agent_id")
        .annotate(n=Count("pk"), total=Sum("rating"))
    }
    agents = set(assigned) | set(replied) | set(ratings)
    if query.agent is not None:
        agents &= {query.agent}
    rows = []
    for agent in agents:
        n, total = ratings.get(agent, (0, 0))
        f = first_by_agent.get(agent)
        rows.append(
            {
                "agentId": agent,
                "name": name_of(agent),
                "assigned": assigned.get(agent, 0),
                "replied": replied.get(agent, 0),
                "firstResponseMedian": f.seconds.get(MEDIAN) if f else None,
                "csatCount": n,
                "csatAverage": _average(total, n),
            }
        )
    rows.sort(key=lambda row: (-row["assigned"], row["name"], row["agentId"]))
    return rows


def filter_choices(*, name_of: Callable[[str], str]) -> tuple[list[str], list[dict[str, str]]]:
    """Every label in use, and every agent any conversation was assigned to (by name)."""
    labels = sorted(
        row["label"] for row in ConversationLabel.objects.order_by().values("label").annotate(n=Count("pk"))
    )
    agent_ids = [
        row["last_agent_id"]
        for row in Conversation.objects.order_by()
        .filter(last_agent_id__isnull=False)
        .values("last_agent_id")
        .annotate(n=Count("pk"))
    ]
    agents = sorted(({"agentId": a, "name": name_of(a)} for a in agent_ids), key=lambda a: (a["name"], a["agentId"]))
    return labels, agents


# ---- the report ----------------------------------------------------------------------------------------------


def report(query: ReportQuery, *, sla_seconds: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """The whole report, JSON-ready (the contract's shape)."""
    from desk.names import staff_name

    now = now or timezone.now()
    labels, agent_choices = filter_choices(name_of=staff_name)
    first = first_responses(query)
    return {
        "period": {
            "from": query.start.isoformat(),
            "to": query.end.isoformat(),
            "granularity": query.granularity,
            "timezone": "UTC",
        },
        "filters": {"label": query.label, "agent": query.agent},
        "slaSeconds": sla_seconds,
        "generatedAt": _iso(now).replace(".000Z", "Z"),
        "volume": {"rows": volume_rows(query)},
        "responsiveness": {"rows": responsiveness_rows(query, first=first)},
        "backlog": {"now": backlog_now(query, now=now), "rows": backlog_rows(query)},
        "csat": csat_summary(query),
        "agents": {"rows": agent_rows(query, name_of=staff_name, first=first)},
        "labels": labels,
        "agentChoices": agent_choices,
    }


def chart_rows(data: dict[str, Any], chart: str) -> list[dict[str, Any]]:
    """The rows of one chart of a report, as in its JSON (the CSV writes these)."""
    return data["csat"]["distribution"] if chart == "csat" else data[chart]["rows"]
