"""The reports page in the console (`/admin/reports/`), for support leads.

The page is a shell: reports.js reads GET /api/reports (the admin session authenticates it on this
origin) and draws the charts itself as SVG, and each chart's "Download CSV" is GET
/api/reports/<chart>.csv with the same query. The filters live in the page's query string, so a view of
the reports can be shared and the back button returns to the previous one.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

# What the API accepts (README, "Reports"): the page offers no more. hour buckets only for short periods.
PRESET_DAYS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_HOURLY_DAYS = 14


@staff_member_required
def reports(request: HttpRequest) -> HttpResponse:
    config = {
        "api": "/api/reports",
        "csv": "/api/reports/",
        "deskUrl": reverse("desk-workspace"),
        # Periods are UTC dates (the API's); "last 7 days" ends on the server's today, not the browser's.
        "today": timezone.now().date().isoformat(),
        "presets": list(PRESET_DAYS),
        "defaultDays": DEFAULT_DAYS,
        "maxHourlyDays": MAX_HOURLY_DAYS,
    }
    context = {
        **admin.site.each_context(request),
        "title": _("Reports"),
        "is_nav_sidebar_enabled": False,  # the charts need the width
        "config": config,
    }
    return render(request, "admin/reports/reports.html", context)
