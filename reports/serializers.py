"""The report's query parameters, validated in one place: what reaches reports.selectors is a ReportQuery
whose period is bounded (a report's cost grows with its number of buckets)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rest_framework import serializers

from chatservice.validation import StrictCharField
from conversations.models import LABEL_MAX_LENGTH, USER_ID_MAX_LENGTH
from reports.selectors import DAY, GRANULARITIES, HOUR, ReportQuery

DEFAULT_DAYS = 30
MAX_DAYS = 366
MAX_HOUR_DAYS = 14
INVALID_PERIOD = "invalid_period"
# Dates a report may name: far enough from date.min and date.max that a period's arithmetic never overflows.
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2999, 12, 31)


class PeriodDate(serializers.DateField):
    """A UTC date, YYYY-MM-DD; anything else is an invalid period."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(input_formats=["%Y-%m-%d"], required=False, **kwargs)

    def to_internal_value(self, value: Any) -> dt.date:
        try:
            day = super().to_internal_value(value)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError("Not a date (YYYY-MM-DD).", code=INVALID_PERIOD) from exc
        if not EARLIEST <= day <= LATEST:
            raise serializers.ValidationError(f"Not between {EARLIEST} and {LATEST}.", code=INVALID_PERIOD)
        return day


class ReportParams(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        # `from` is a Python keyword: the fields are declared here rather than as class attributes.
        return {
            "from": PeriodDate(help_text=f"First day (UTC), inclusive. Default: {DEFAULT_DAYS - 1} days before `to`."),
            "to": PeriodDate(help_text="Last day (UTC), inclusive. Default: today."),
            "granularity": serializers.ChoiceField(choices=list(GRANULARITIES), required=False, default=DAY),
            "label": StrictCharField(
                max_length=LABEL_MAX_LENGTH, required=False, help_text="Only conversations with this label."
            ),
            "agent": StrictCharField(
                max_length=USER_ID_MAX_LENGTH,
                required=False,
                help_text="Only conversations last assigned to this agent id.",
            ),
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        today = self.context.get("today") or dt.datetime.now(dt.UTC).date()
        end = attrs.get("to") or today
        start = attrs.get("from") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        days = (end - start).days + 1
        if days < 1:
            raise serializers.ValidationError({"from": "`from` is after `to`."}, code=INVALID_PERIOD)
        limit = MAX_HOUR_DAYS if attrs["granularity"] == HOUR else MAX_DAYS
        if days > limit:
            raise serializers.ValidationError(
                {"to": f"At most {limit} days by {attrs['granularity']}."}, code=INVALID_PERIOD
            )
        return {**attrs, "query": ReportQuery(start, end, attrs["granularity"], attrs.get("label"), attrs.get("agent"))}
