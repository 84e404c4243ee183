"""GET /api/reports (the support leads' report, JSON) and GET /api/reports/<chart>.csv (one chart's rows):
staff only. The CSV is written from the very rows the JSON carries (reports.selectors.chart_rows)."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatservice.errors import NotFound, PermissionDenied
from chatservice.schema import ALWAYS_ERRORS, error_responses
from conversations.views import query_of
from reports import selectors
from reports.selectors import CHART_COLUMNS, ReportQuery
from reports.serializers import ReportParams

REPORT_ERRORS = ("invalid_period", "invalid_choice", "blank", "max_length", "admin_only")


def _report_query(request: Request) -> ReportQuery:
    if not request.user.is_admin:
        raise PermissionDenied("Only support staff may read reports.", code="admin_only")
    params = ReportParams(data=query_of(request))
    params.is_valid(raise_exception=True)
    return params.validated_data["query"]


def _report(query: ReportQuery) -> dict[str, Any]:
    return selectors.report(query, sla_seconds=settings.CHAT["REPORT_SLA_S"])


def chart_csv(data: dict[str, Any], chart: str) -> str:
    """The chart's rows as CSV: a header of the JSON keys, then each row's values (null: empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = CHART_COLUMNS[chart]
    writer.writerow(columns)
    for row in selectors.chart_rows(data, chart):
        writer.writerow(["" if row[column] is None else row[column] for column in columns])
    return out.getvalue()


class ReportView(APIView):
    @extend_schema(
        operation_id="reports_get",
        parameters=[ReportParams],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description=(
                    "`{period, filters, slaSeconds, generatedAt, volume, responsiveness, backlog, csat, agents, "
                    "labels, agentChoices}`: per bucket of the period (every bucket, in order), durations in "
                    "seconds (null: nothing to measure). Staff only."
                ),
            ),
            **error_responses(ALWAYS_ERRORS, REPORT_ERRORS),
        },
    )
    def get(self, request: Request) -> Response:
        """Staff: conversation volume, response and resolution times, backlog, CSAT and per-agent figures."""
        return Response(_report(_report_query(request)))


class ReportChartView(APIView):
    @extend_schema(
        operation_id="reports_chart_csv",
        parameters=[
            ReportParams,
            OpenApiParameter(
                "chart", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(CHART_COLUMNS), description="The chart."
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="A header of the chart's JSON keys, then one line per row."
            ),
            **error_responses(ALWAYS_ERRORS, REPORT_ERRORS, "chart_not_found"),
        },
    )
    def get(self, request: Request, chart: str) -> HttpResponse:
        """Staff: one chart's rows of GET /api/reports (same query) as CSV."""
        query = _report_query(request)
        if chart not in CHART_COLUMNS:
            raise NotFound(f"No chart {chart!r}.", code="chart_not_found")
        response = HttpResponse(chart_csv(_report(query), chart), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{chart}-{query.start}-{query.end}.csv"'
        response["Cache-Control"] = "no-store"
        return response
