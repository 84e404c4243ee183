"""The reports page in the console (/admin/reports/). Placeholder: filled in by the reports work."""
