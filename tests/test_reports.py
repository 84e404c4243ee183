"""Reports (reports.selectors, GET /api/reports and its CSVs): a dataset with known timestamps, and every
number of the report computed by hand below (comments say how)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models.sql.constants import MULTI

from conversations.models import Conversation, ConversationLabel, ConversationStatus
from csat.models import CsatResponse
from desk.models import AgentProfile
from messaging.models import Message, MessageType
from reports import selectors
from reports.selectors import ReportQuery
from tests.mongo_offline import compile_check

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
ALICE, BOB, DAVE = "staff:alice", "staff:bob", "staff:dave"
SLA = 3600


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def conversation(
    pk: str,
    created: dt.datetime,
    *,
    first: dt.timedelta | None = None,
    closed: dt.datetime | None = None,
    waiting: dt.datetime | None = None,
    admins: int = 0,
    agent: str | None = None,
    labels: tuple[str, ...] = (),
) -> Conversation:
    status = ConversationStatus.CLOSED if closed else ConversationStatus.ACTIVE
    row = Conversation.objects.create(
        id=pk,
        created_by="donor1",
        subject=f"Subject {pk}",
        status=status,
        labels=list(labels),
    )
    # created_at and the clocks are not editable: set them as the send path would have.
    Conversation.objects.filter(pk=pk).update(
        created_at=created,
        first_response_at=created + first if first is not None else None,
        closed_at=closed,
        waiting_since=waiting,
        admin_count=admins,
        last_agent_id=agent,
    )
    for label in labels:
        ConversationLabel.objects.create(conversation=row, label=label)
    return row


def message(pk: str, seq: int, role: str, when: dt.datetime, *, sender: str = "donor1", kind: str = "TEXT", **extra):
    Message.objects.create(
        conversation_id=pk,
        seq=seq,
        sender_id=sender if role == "ADMIN" or sender != "donor1" else "donor1",
        sender_role=role,
        content="x",
        message_type=kind,
        **extra,
    )
    Message.objects.filter(conversation_id=pk, seq=seq).update(created_at=when)


def rating(pk: str, stars: int, when: dt.datetime, agent: str | None) -> None:
    CsatResponse.objects.create(
        conversation_id=pk, closed_at=when, rating=stars, donor_id="donor1", agent_id=agent, created_at=when
    )


S = dt.timedelta(seconds=1)


@pytest.fixture
def dataset() -> None:
    AgentProfile.objects.create(agent_id=ALICE, display_name="Alice")
    AgentProfile.objects.create(agent_id=BOB, display_name="Bob")
    AgentProfile.objects.create(agent_id=DAVE, display_name="Dave")
    # Before the period (2026-03-01 .. 03-03).
    conversation("c0", at(27, 10, month=2), waiting=at(27, 10, month=2), labels=("billing",))  # waits still
    conversation("c00", at(27, 11, month=2), first=3600 * S, admins=1, agent=DAVE)  # answered on 02-27
    conversation("cX", at(28, 23, month=2), first=7200 * S, admins=1)  # answered 03-01 01:00
    # Day 1: first responses 60, 120, 300 s; resolutions c1 7200 s, c4 3600 s.
    conversation("c1", at(1, 8), first=60 * S, closed=at(1, 10), agent=ALICE, labels=("billing",))
    conversation("c2", at(1, 9), first=120 * S, closed=at(3, 9), agent=ALICE)
    conversation("c3", at(1, 10), first=300 * S, admins=1, agent=BOB, labels=("billing",))
    conversation("c4", at(1, 11), closed=at(1, 12))  # closed before any response
    # Day 2: first responses 600, 30, 900, 7200 s; c10 closed (13:00) before its first response (14:00).
    conversation("c5", at(2, 8), first=600 * S, closed=at(3, 6), agent=BOB)
    conversation("c6", at(2, 9), first=30 * S, agent=ALICE, labels=("refund",))
    conversation("c7", at(2, 10), first=900 * S, admins=1, agent=BOB)
    conversation("c9", at(2, 20), waiting=at(2, 20))
    conversation("c10", at(2, 12), first=7200 * S, closed=at(2, 13))
    # Messages: TEXT and FILE count, tombstones too; notes and SYSTEM notices do not.
    message("c0", 1, "USER", at(27, 10, month=2))  # before the period
    message("c1", 1, "USER", at(1, 8))
    message("c1", 2, "ADMIN", at(1, 8, 1), sender=ALICE)
    message("c1", 3, "ADMIN", at(1, 8, 2), sender=ALICE, kind=MessageType.NOTE)
    message("c1", 4, "ADMIN", at(1, 8, 3), sender="system", kind=MessageType.SYSTEM)
    message("c3", 1, "USER", at(1, 10), kind=MessageType.FILE)
    message("c3", 2, "ADMIN", at(1, 10, 5), sender=BOB)
    message("c3", 3, "USER", at(1, 10, 6), deleted_at=at(1, 10, 7))
    message("c6", 1, "USER", at(2, 9))
    message("c6", 2, "ADMIN", at(2, 9, 0, 30), sender=ALICE)
    message("c6", 3, "ADMIN", at(2, 9, 10), sender=ALICE)
    message("c5", 1, "ADMIN", at(2, 8, 10), sender=BOB)
    message("c9", 1, "USER", at(2, 20))
    message("c2", 1, "ADMIN", at(3, 8), sender=BOB)
    # Ratings: one before the period.
    rating("c00", 1, at(28, 10, month=2), DAVE)
    rating("c1", 5, at(1, 11), ALICE)
    rating("c4", 2, at(1, 13), None)
    rating("c2", 4, at(3, 10), ALICE)
    rating("c5", 3, at(3, 7), BOB)


PERIOD = ReportQuery(dt.date(2026, 3, 1), dt.date(2026, 3, 3))


def run(query: ReportQuery = PERIOD) -> dict[str, Any]:
    return selectors.report(query, sla_seconds=SLA, now=NOW)


def test_volume_per_day(dataset):
    assert run()["volume"]["rows"] == [
        {"bucket": "2026-03-01", "conversations": 4, "donorMessages": 3, "staffMessages": 2},
        {"bucket": "2026-03-02", "conversations": 5, "donorMessages": 2, "staffMessages": 3},
        {"bucket": "2026-03-03", "conversations": 0, "donorMessages": 0, "staffMessages": 1},
    ]


def test_volume_and_first_response_per_hour(dataset):
    data = run(ReportQuery(dt.date(2026, 3, 1), dt.date(2026, 3, 1), granularity="hour"))
    volume = data["volume"]["rows"]
    assert (
        len(volume) == 24 and volume[0]["bucket"] == "2026-03-01T00:00Z" and volume[-1]["bucket"] == "2026-03-01T23:00Z"
    )
    busy = {row["bucket"][11:13]: row for row in volume if any(row[k] for k in row if k != "bucket")}
    assert busy == {
        "08": {"bucket": "2026-03-01T08:00Z", "conversations": 1, "donorMessages": 1, "staffMessages": 1},
        "09": {"bucket": "2026-03-01T09:00Z", "conversations": 1, "donorMessages": 0, "staffMessages": 0},
        "10": {"bucket": "2026-03-01T10:00Z", "conversations": 1, "donorMessages": 2, "staffMessages": 1},
        "11": {"bucket": "2026-03-01T11:00Z", "conversations": 1, "donorMessages": 0, "staffMessages": 0},
    }
    responsiveness = {row["bucket"][11:13]: row for row in data["responsiveness"]["rows"]}
    assert responsiveness["10"]["firstResponseMedian"] == 300.0 and responsiveness["10"]["firstResponseCount"] == 1
    # c1 closed at 10:00 (7200 s after 08:00), c4 at 12:00 (3600 s after 11:00).
    assert responsiveness["10"]["resolutionMedian"] == 7200.0 and responsiveness["12"]["resolutionP90"] == 3600.0
    assert responsiveness["13"]["firstResponseMedian"] is None and responsiveness["13"]["firstResponseCount"] == 0
    # Backlog at each hour's end: c0 and cX before the period; cX answered at 01:00; c1..c3 answered within
    # their hour; c4 closed at 12:00.
    backlog = [row["waiting"] for row in data["backlog"]["rows"]]
    assert backlog[:2] == [2, 1] and backlog[10:13] == [1, 2, 1] and backlog[-1] == 1


def test_responsiveness_nearest_rank_percentiles(dataset):
    assert run()["responsiveness"]["rows"] == [
        # [60, 120, 300]: median rank ceil(1.5) = 2, p90 rank ceil(2.7) = 3. Resolutions [3600, 7200].
        {
            "bucket": "2026-03-01",
            "firstResponseCount": 3,
            "firstResponseMedian": 120.0,
            "firstResponseP90": 300.0,
            "resolutionCount": 2,
            "resolutionMedian": 3600.0,
            "resolutionP90": 7200.0,
        },
        # [30, 600, 900, 7200]: median rank 2, p90 rank ceil(3.6) = 4. Resolutions: c10 [3600].
        {
            "bucket": "2026-03-02",
            "firstResponseCount": 4,
            "firstResponseMedian": 600.0,
            "firstResponseP90": 7200.0,
            "resolutionCount": 1,
            "resolutionMedian": 3600.0,
            "resolutionP90": 3600.0,
        },
        # Nobody opened a conversation: nothing to measure. Resolutions c5 79200 s, c2 172800 s.
        {
            "bucket": "2026-03-03",
            "firstResponseCount": 0,
            "firstResponseMedian": None,
            "firstResponseP90": None,
            "resolutionCount": 2,
            "resolutionMedian": 79200.0,
            "resolutionP90": 172800.0,
        },
    ]


def test_the_percentiles_match_the_python_definition():
    from conversations.selectors import durations

    for n in range(1, 25):
        values = list(range(n))
        expected = durations(values).seconds
        for p in selectors.PERCENTILES:
            assert values[selectors.nearest_rank(p, n) - 1] == expected[p], (p, n)


def test_first_responses_ranks_buckets_and_agents_in_one_pass_like_each_alone(dataset):
    # One ranked query for both groupings (reports.selectors.first_responses) gives what ranking the same
    # rows within each grouping alone gives, and the per-bucket figures are the responsiveness chart's.
    found = selectors.first_responses(PERIOD)
    rows = selectors.conversations_of(PERIOD).filter(created_at__gte=PERIOD.since, created_at__lt=PERIOD.until)
    rows = rows.filter(first_response_at__isnull=False)
    for name, group in (("bucket", None), ("agent", "last_agent_id")):
        alone = selectors._percentiles(
            PERIOD, rows, field="created_at", start="created_at", end="first_response_at", groups={name: group}
        )[name]
        assert alone == getattr(found, f"by_{name}") and alone
    assert None not in found.by_agent  # conversations without an agent are ranked but never reported
    march_1 = dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert found.by_bucket[march_1] == selectors.Percentiles(3, {50: 120.0, 90: 300.0})


def test_the_report_reads_conversations_from_the_report_index_alone_on_sqlite(dataset):
    # conv_report_idx (created_at, first_response_at, closed_at, last_agent_id) covers the percentile
    # windows (ties by created_at, COUNT(*)) and the per-agent counts: SQLite never reads the rows.
    from django.db import connection
    from django.db.models import Count, F

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's query plan (the suite's default database)")
    rows = Conversation.objects.order_by().filter(
        created_at__gte=PERIOD.since, created_at__lt=PERIOD.until, first_response_at__isnull=False
    )
    groups = {"bucket": selectors.bucket_of("created_at", "day"), "agent": F("last_agent_id")}
    queries = [
        selectors.ranked_query(rows, groups, "created_at", "first_response_at"),
        rows.values("last_agent_id").annotate(n=Count("*")),
    ]
    for queryset in queries:
        sql, params = queryset.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = [row[-1] for row in cursor.fetchall()]
        assert any("COVERING INDEX conv_report_idx" in step for step in plan), plan
        assert not any(step.startswith("SCAN conversations_conversation") for step in plan), plan


def test_backlog_over_time_and_now(dataset):
    backlog = run()["backlog"]
    # Waiting before: c0, cX. Day 1: +c1..c4, -cX -c1 -c2 -c3 (answered) -c4 (closed unanswered) = 1 (c0).
    # Day 2: +c5 c6 c7 c9 c10, -c5 c6 c7 (answered) -c10 (closed before its answer) = 2 (c0, c9). Day 3: same.
    assert backlog["rows"] == [
        {"bucket": "2026-03-01", "waiting": 1},
        {"bucket": "2026-03-02", "waiting": 2},
        {"bucket": "2026-03-03", "waiting": 2},
    ]
    # ACTIVE and waiting: c0, c9. ACTIVE with nobody assigned: c0, c9, c6.
    assert backlog["now"] == {
        "waiting": 2,
        "unassigned": 3,
        "oldestWaiting": {
            "conversationId": "c0",
            "subject": "Subject c0",
            "waitingSince": "2026-02-27T10:00:00.000Z",
            "ageSeconds": 4 * 86400 + 2 * 3600.0,
        },
    }


def test_csat_distribution_and_average(dataset):
    # In the period: 5, 2, 4, 3 (the 1 was given in February).
    assert run()["csat"] == {
        "count": 4,
        "average": 3.5,
        "distribution": [
            {"rating": 1, "count": 0},
            {"rating": 2, "count": 1},
            {"rating": 3, "count": 1},
            {"rating": 4, "count": 1},
            {"rating": 5, "count": 1},
        ],
    }


def test_agents_rows_and_filter_choices(dataset):
    data = run()
    assert data["agents"]["rows"] == [
        # Alice: c1 c2 c6; replied in c1 and c6 (two replies in c6 count once); first responses [30, 60, 120].
        {
            "agentId": ALICE,
            "name": "Alice",
            "assigned": 3,
            "replied": 2,
            "firstResponseMedian": 60.0,
            "csatCount": 2,
            "csatAverage": 4.5,
        },
        # Bob: c3 c5 c7; replied in c3, c5 and Alice's c2; first responses [300, 600, 900].
        {
            "agentId": BOB,
            "name": "Bob",
            "assigned": 3,
            "replied": 3,
            "firstResponseMedian": 600.0,
            "csatCount": 1,
            "csatAverage": 3.0,
        },
    ]  # Dave was active in February only
    assert data["labels"] == ["billing", "refund"]
    assert data["agentChoices"] == [
        {"agentId": ALICE, "name": "Alice"},
        {"agentId": BOB, "name": "Bob"},
        {"agentId": DAVE, "name": "Dave"},
    ]
    assert data["period"] == {"from": "2026-03-01", "to": "2026-03-03", "granularity": "day", "timezone": "UTC"}
    assert data["filters"] == {"label": None, "agent": None} and data["slaSeconds"] == SLA
    assert data["generatedAt"] == "2026-03-03T12:00:00Z"


def test_label_filter(dataset):
    data = run(ReportQuery(PERIOD.start, PERIOD.end, label="billing"))
    # billing: c0 (February, waiting), c1, c3.
    assert data["volume"]["rows"][0] == {
        "bucket": "2026-03-01",
        "conversations": 2,
        "donorMessages": 3,
        "staffMessages": 2,
    }
    assert [row["conversations"] + row["staffMessages"] for row in data["volume"]["rows"][1:]] == [0, 0]
    first = data["responsiveness"]["rows"][0]
    assert (first["firstResponseMedian"], first["firstResponseP90"], first["resolutionMedian"]) == (60.0, 300.0, 7200.0)
    assert [row["waiting"] for row in data["backlog"]["rows"]] == [1, 1, 1]
    assert data["backlog"]["now"]["waiting"] == 1 and data["backlog"]["now"]["unassigned"] == 1
    assert data["csat"]["count"] == 1 and data["csat"]["average"] == 5.0
    assert [
        (r["agentId"], r["assigned"], r["replied"], r["firstResponseMedian"], r["csatCount"])
        for r in data["agents"]["rows"]
    ] == [
        (ALICE, 1, 1, 60.0, 1),
        (BOB, 1, 1, 300.0, 0),
    ]
    assert data["filters"] == {"label": "billing", "agent": None}
    # Choices are every label and agent, whatever the filter.
    assert data["labels"] == ["billing", "refund"] and len(data["agentChoices"]) == 3


def test_agent_filter(dataset):
    data = run(ReportQuery(PERIOD.start, PERIOD.end, agent=BOB))
    # Bob's conversations: c3 (day 1), c5, c7 (day 2); messages in them, whoever sent them.
    assert data["volume"]["rows"] == [
        {"bucket": "2026-03-01", "conversations": 1, "donorMessages": 2, "staffMessages": 1},
        {"bucket": "2026-03-02", "conversations": 2, "donorMessages": 0, "staffMessages": 1},
        {"bucket": "2026-03-03", "conversations": 0, "donorMessages": 0, "staffMessages": 0},
    ]
    assert [row["firstResponseMedian"] for row in data["responsiveness"]["rows"]] == [300.0, 600.0, None]
    assert data["csat"]["count"] == 1 and data["csat"]["average"] == 3.0
    assert [row["agentId"] for row in data["agents"]["rows"]] == [BOB]
    assert data["agents"]["rows"][0]["replied"] == 3
    both = run(ReportQuery(PERIOD.start, PERIOD.end, label="billing", agent=BOB))
    assert [row["conversations"] for row in both["volume"]["rows"]] == [1, 0, 0]


def test_the_agent_filter_keeps_that_agents_unfiltered_row(dataset):
    # The filtered report reads only that agent's rows (conversations, messages, ratings): each figure
    # must still be the one the unfiltered report gives that agent, with and without a label.
    for label in (None, "billing"):
        everyone = run(ReportQuery(PERIOD.start, PERIOD.end, label=label))["agents"]["rows"]
        assert everyone
        for row in everyone:
            alone = run(ReportQuery(PERIOD.start, PERIOD.end, label=label, agent=row["agentId"]))
            assert alone["agents"]["rows"] == [row]
    assert run(ReportQuery(PERIOD.start, PERIOD.end, agent="staff:nobody"))["agents"]["rows"] == []


def test_an_empty_database_reports_zeros_and_nulls():
    data = run()
    assert [row["conversations"] for row in data["volume"]["rows"]] == [0, 0, 0]
    assert data["responsiveness"]["rows"][0]["firstResponseMedian"] is None
    assert data["backlog"]["now"] == {"waiting": 0, "unassigned": 0, "oldestWaiting": None}
    assert data["csat"]["average"] is None and data["agents"]["rows"] == [] and data["labels"] == []


# ---- the API ----------------------------------------------------------------------------------------------

URL = "/api/reports?from=2026-03-01&to=2026-03-03"


@pytest.fixture
def staff_client(client):
    client.force_login(get_user_model().objects.create_user("lead", password="pw-123456", is_staff=True))
    return client


def _csv_rows(text: str) -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, rows


def _as_csv_cell(value: Any) -> str:
    return "" if value is None else str(value)


def test_staff_read_the_report_and_every_chart_as_csv_with_the_same_rows(dataset, staff_client):
    response = staff_client.get(URL)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["volume"]["rows"][0]["conversations"] == 4 and data["slaSeconds"] == 3600
    expected_rows = {
        "volume": data["volume"]["rows"],
        "responsiveness": data["responsiveness"]["rows"],
        "backlog": data["backlog"]["rows"],
        "csat": data["csat"]["distribution"],
        "agents": data["agents"]["rows"],
    }
    for chart, rows in expected_rows.items():
        download = staff_client.get(f"/api/reports/{chart}.csv?from=2026-03-01&to=2026-03-03")
        assert download.status_code == 200, (chart, download.content)
        assert download["Content-Type"] == "text/csv; charset=utf-8"
        assert download["Content-Disposition"] == f'attachment; filename="{chart}-2026-03-01-2026-03-03.csv"'
        header, lines = _csv_rows(download.content.decode())
        assert header == list(rows[0]), chart  # the JSON's keys, in order
        assert lines == [[_as_csv_cell(row[key]) for key in header] for row in rows], chart
    header, lines = _csv_rows(
        staff_client.get("/api/reports/responsiveness.csv?from=2026-03-01&to=2026-03-03").content.decode()
    )
    assert lines[2][header.index("firstResponseMedian")] == ""  # null: an empty cell
    assert lines[0][header.index("firstResponseMedian")] == "120.0"


def test_an_admin_token_reads_the_report_with_filters(dataset, client_for):
    response = client_for("agent1", "ADMIN").get(URL + "&label=billing&agent=staff:bob&granularity=hour&to=2026-03-01")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["filters"] == {"label": "billing", "agent": BOB}
    assert data["period"] == {"from": "2026-03-01", "to": "2026-03-01", "granularity": "hour", "timezone": "UTC"}
    assert sum(row["conversations"] for row in data["volume"]["rows"]) == 1  # c3
    csv_response = client_for("agent1", "ADMIN").get(
        "/api/reports/volume.csv?from=2026-03-01&to=2026-03-01&granularity=hour"
    )
    assert csv_response.status_code == 200 and csv_response.content.decode().count("\r\n") == 25


def test_the_default_period_is_the_last_30_days(staff_client):
    data = staff_client.get("/api/reports").json()
    today = dt.datetime.now(UTC).date()
    assert data["period"]["to"] == today.isoformat()
    assert data["period"]["from"] == (today - dt.timedelta(days=29)).isoformat()
    assert len(data["volume"]["rows"]) == 30 and data["volume"]["rows"][-1]["bucket"] == today.isoformat()


def test_donors_are_refused_and_anonymous_callers_asked_to_authenticate(client_for, client):
    donor = client_for("u1", "USER")
    for url in (URL, "/api/reports/volume.csv"):
        refused = donor.get(url)
        assert refused.status_code == 403 and refused.json()["code"] == "admin_only"
        anonymous = client.get(url)
        assert anonymous.status_code == 401 and anonymous["Content-Type"] == "application/json"
    client.force_login(get_user_model().objects.create_user("clerk", password="pw-123456"))  # not staff
    assert client.get(URL).status_code == 401


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("from=2026-03-05&to=2026-03-01", "invalid_period", "from"),
        ("from=2025-01-01&to=2026-01-02", "invalid_period", "to"),  # 367 days
        ("from=2026-03-01&to=2026-03-15&granularity=hour", "invalid_period", "to"),  # 15 days by hour
        ("from=2026-02-30", "invalid_period", "from"),
        ("to=yesterday", "invalid_period", "to"),
        ("from=1999-12-31&to=2000-01-01", "invalid_period", "from"),
        ("granularity=week", "invalid_choice", "granularity"),
        ("label=", "blank", "label"),
        ("agent=" + "a" * 129, "max_length", "agent"),
    ],
)
def test_bad_parameters_are_refused(staff_client, query, code, field):
    for url in (f"/api/reports?{query}", f"/api/reports/backlog.csv?{query}"):
        response = staff_client.get(url)
        assert response.status_code == 400, response.content
        body = response.json()
        assert body["code"] == code and field in body["errors"], body


def test_the_longest_periods_are_accepted(staff_client):
    assert staff_client.get("/api/reports?from=2025-01-01&to=2026-01-01").status_code == 200  # 366 days
    hourly = staff_client.get("/api/reports?from=2026-03-01&to=2026-03-14&granularity=hour")
    assert hourly.status_code == 200 and len(hourly.json()["volume"]["rows"]) == 14 * 24


def test_an_unknown_chart_is_a_json_404(staff_client):
    response = staff_client.get("/api/reports/pie.csv")
    assert response.status_code == 404 and response.json()["code"] == "chart_not_found"


def test_the_sla_line_is_configured(staff_client, settings):
    settings.CHAT = {**settings.CHAT, "REPORT_SLA_S": 900}
    assert staff_client.get(URL).json()["slaSeconds"] == 900


def test_the_sla_setting_is_read_from_the_environment():
    from chatservice.config import load_config

    assert load_config({}).report_sla_s == 3600
    assert load_config({"CHAT_REPORT_SLA_S": "1800"}).report_sla_s == 1800
    with pytest.raises(Exception, match="CHAT_REPORT_SLA_S"):
        load_config({"CHAT_REPORT_SLA_S": "0"})


# ---- Prometheus ----------------------------------------------------------------------------------------------

METRICS_TOKEN = "metrics-token-for-the-report-tests-0123456789"


def _scrape(client, settings) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    settings.CHAT = {**settings.CHAT, "METRICS_TOKEN": METRICS_TOKEN}
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if not sample.labels or (set(sample.labels) == {"le"} and sample.labels["le"] == "+Inf")
    }


def test_the_support_queue_is_a_gauge_read_at_scrape_time(dataset, client, settings):
    before = dt.datetime.now(UTC)
    samples = _scrape(client, settings)
    # c0 and c9 wait; c0, c9 and c6 are ACTIVE with nobody assigned; c0 has waited since 2026-02-27 10:00.
    assert samples["chat_conversations_waiting"] == 2
    assert samples["chat_conversations_unassigned"] == 3
    waited = (before - at(27, 10, month=2)).total_seconds()
    assert waited <= samples["chat_oldest_waiting_seconds"] <= waited + 60
    Conversation.objects.filter(pk__in=["c0", "c9"]).update(waiting_since=None)
    assert _scrape(client, settings)["chat_oldest_waiting_seconds"] == 0
    assert _scrape(client, settings)["chat_conversations_waiting"] == 0


def test_first_response_is_observed_once_per_conversation_after_commit(
    client, settings, django_capture_on_commit_callbacks
):
    from chatservice.authentication import Principal
    from conversations import services as conversation_services
    from tests.helpers import send

    def observed() -> tuple[float, float]:
        samples = _scrape(client, settings)
        return samples["chat_first_response_seconds_count"], samples["chat_first_response_seconds_sum"]

    donor, staff = Principal("u1", "USER"), Principal("agent1", "ADMIN")
    conversation = conversation_services.conversation_create(creator=donor, subject="Help")
    Conversation.objects.filter(pk=conversation.pk).update(created_at=dt.datetime.now(UTC) - dt.timedelta(seconds=600))
    conversation.refresh_from_db()
    count, total = observed()
    with django_capture_on_commit_callbacks(execute=True):
        send(conversation, "hello?", donor)
        send(conversation, "a note", staff, message_type="NOTE")  # a note is no response
    assert observed() == (count, total)
    with django_capture_on_commit_callbacks(execute=True):
        send(conversation, "Here to help", staff)
    new_count, new_total = observed()
    assert new_count == count + 1 and 600 <= new_total - total <= 660
    with django_capture_on_commit_callbacks(execute=True):
        send(conversation, "still there?", donor)
        send(conversation, "yes", staff)  # not the first response any more
    assert observed() == (new_count, new_total)


def test_a_scrape_without_the_database_still_serves_the_worker_metrics(client, settings, caplog, monkeypatch):
    from django.db import OperationalError

    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "waiting_now", unreachable)
    samples = _scrape(client, settings)
    assert "chat_conversations_waiting" not in samples and "chat_first_response_seconds_count" in samples
    assert "support queue metrics unavailable: OperationalError: connection refused" in caplog.text


# ---- MongoDB, offline ------------------------------------------------------------------------------------


def _compile_for_mongodb(queryset) -> list[dict]:
    """Compile a queryset with django-mongodb-backend (offline) and return the pipeline it sent."""
    from tests.mongo_offline import base

    before = len(base.operations)
    result = queryset.query.chain().get_compiler(using=compile_check.ALIAS).execute_sql(MULTI)
    for _ in result or ():
        pass
    return base.operations[before]["args"][0]


def test_the_orm_queries_of_the_mongodb_path_compile():
    query = ReportQuery(PERIOD.start, PERIOD.end, granularity="hour", label="billing", agent=BOB)
    conversations = selectors.conversations_of(query)
    counts = _compile_for_mongodb(selectors.counts_by_bucket(conversations, "created_at", query, vendor="mongodb"))
    grouped = next(stage["$group"] for stage in counts if "$group" in stage)
    assert "$dateTrunc" in str(grouped["_id"]) and "'unit': 'hour'" in str(grouped["_id"])
    messages = _compile_for_mongodb(selectors.message_counts_query(query, vendor="mongodb"))
    assert any("$lookup" in stage for stage in messages)  # the label and agent filters
    day = ReportQuery(PERIOD.start, PERIOD.end)
    day_counts = _compile_for_mongodb(selectors.counts_by_bucket(conversations, "created_at", day, vendor="mongodb"))
    assert "%Y-%m-%d" in str(day_counts)


def test_the_orm_percentile_query_is_refused_by_mongodb_hence_its_pipeline():
    ranked = selectors.ranked_query(
        Conversation.objects.order_by(),
        selectors.bucket_of("created_at", "day", vendor="mongodb"),
        "created_at",
        "first_response_at",
        vendor="mongodb",
    )
    with pytest.raises(Exception, match="window"):
        _compile_for_mongodb(ranked)


def test_the_mongodb_percentile_pipeline():
    match = {"created_at": {"$gte": dt.datetime(2026, 3, 1), "$lt": dt.datetime(2026, 3, 4)}}
    stages = selectors.percentile_pipeline(
        match, selectors.mongo_bucket("created_at", "day"), "created_at", "first_response_at", label="billing"
    )
    assert [next(iter(stage)) for stage in stages] == ["$match", "$lookup", "$match", "$group", "$project", "$project"]
    assert stages[1]["$lookup"]["from"] == "conversations_conversationlabel"
    assert stages[1]["$lookup"]["pipeline"][0] == {"$match": {"label": "billing"}}
    group = stages[3]["$group"]
    assert group["_id"] == {"$dateTrunc": {"date": "$created_at", "unit": "day", "timezone": "UTC"}}
    assert group["d"] == {"$push": {"$subtract": ["$first_response_at", "$created_at"]}}
    assert stages[4]["$project"]["d"] == {"$sortArray": {"input": "$d", "sortBy": 1}}
    p90 = stages[5]["$project"]["p90"]["$arrayElemAt"]
    assert p90[0] == "$d"
    assert p90[1] == {"$subtract": [{"$toInt": {"$ceil": {"$divide": [{"$multiply": ["$n", 90]}, 100]}}}, 1]}
    assert "$lookup" not in str(selectors.percentile_pipeline(match, "$last_agent_id", "a", "b"))
