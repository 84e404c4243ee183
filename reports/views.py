"""GET /api/reports and GET /api/reports/<chart>.csv (staff only). Placeholder: filled in by the reports work."""
