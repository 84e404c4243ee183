from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Reports for support leads: volume, responsiveness, backlog, satisfaction and per-agent figures,
    aggregated by the database (reports.selectors), served as JSON and CSV (reports.views) and drawn by
    the console's reports page (reports.page)."""

    name = "reports"
    verbose_name = "Reports"
