"""The audit log in admin: read-only. A list with filters (action, actor role, date) and search by target
id; each record's page shows its details as key/value rows; the filtered list downloads as CSV or JSON.

Nothing here writes a record except the export's own (audit.export): add, change and delete are refused
for everyone, superusers included, and the model refuses them too (audit.models)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.models import ActorRole, AuditAction, AuditRecord, AuditTarget
from audit.selectors import in_chain_order
from audit.services import audit_record
from chatservice.authentication import principal_for_staff

# Records one export holds at most: it is built in memory (the ASGI server would read a streamed one
# into memory anyway). A larger list is narrowed first, by date or action.
EXPORT_MAX_RECORDS = 100_000
EXPORT_FORMATS = ("csv", "json")
EXPORT_COLUMNS = (
    "seq",
    "id",
    "createdAt",
    "actorId",
    "actorRole",
    "action",
    "targetType",
    "targetId",
    "details",
    "prevHash",
    "hash",
)
# Spreadsheets run a cell starting with one of these as a formula; such cells get a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SUMMARY_LENGTH = 50


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def export_row(record: AuditRecord) -> dict[str, Any]:
    """A record as the export carries it: every field the hash covers, as hashed (audit.chain)."""
    return {
        "seq": record.seq,
        "id": record.pk,
        "createdAt": record.created_at.isoformat(timespec="milliseconds"),
        "actorId": record.actor_id,
        "actorRole": record.actor_role,
        "action": record.action,
        "targetType": record.target_type,
        "targetId": record.target_id,
        "details": record.details,
        "prevHash": record.prev_hash,
        "hash": record.hash,
    }


def _csv_cell(value: Any) -> str:
    text = _value_text(value) if not isinstance(value, int) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    list_display = ["seq", "created_at", "actor", "action", "target", "summary"]
    list_display_links = ["seq"]
    list_filter = ["action", "actor_role"]
    date_hierarchy = "created_at"
    search_fields = ["=target_id"]
    search_help_text = _("A target's id exactly: a conversation, message, user or webhook endpoint.")
    ordering = ["-seq"]
    list_per_page = 100
    fieldsets = [
        (None, {"fields": ["seq", "id", "created_at", "actor", "action", "target", "details_rows"]}),
        (_("Chain"), {"fields": ["prev_hash", "hash"]}),
    ]
    readonly_fields = ["seq", "id", "created_at", "actor", "action", "target", "details_rows", "prev_hash", "hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # records are appended by the actions they record

    def has_change_permission(self, request: HttpRequest, obj: AuditRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditRecord | None = None) -> bool:
        return False

    @admin.display(description=_("actor"), ordering="actor_id")
    def actor(self, obj: AuditRecord) -> str:
        if obj.actor_role == ActorRole.OPERATOR:
            operator = obj.details.get("operator") if isinstance(obj.details, dict) else None
            name = (operator or {}).get("command") or (operator or {}).get("schedule") or ""
            return f"{ActorRole.OPERATOR.label}: {name}" if name else str(ActorRole.OPERATOR.label)
        return f"{obj.actor_id} ({obj.get_actor_role_display()})"

    @admin.display(description=_("target"), ordering="target_id")
    def target(self, obj: AuditRecord) -> str:
        kind = AuditTarget(obj.target_type).label if obj.target_type in AuditTarget.values else obj.target_type
        return f"{kind} {obj.target_id}".strip()

    @admin.display(description=_("details"))
    def summary(self, obj: AuditRecord) -> str:
        details = obj.details if isinstance(obj.details, dict) else {"": obj.details}
        shown = sorted((k, v) for k, v in details.items() if k != "operator")  # the actor column names it
        return Truncator(", ".join(f"{key}={_value_text(value)}" for key, value in shown)).chars(SUMMARY_LENGTH)

    @admin.display(description=_("details"))
    def details_rows(self, obj: AuditRecord) -> str:
        """One row per key; nested values as JSON text. Escaped: details may hold what people typed."""
        details = obj.details if isinstance(obj.details, dict) else {"": obj.details}
        if not details:
            return "—"
        rows = format_html_join(
            "", "<tr><th scope='row'>{}</th><td>{}</td></tr>", ((k, _value_text(v)) for k, v in sorted(details.items()))
        )
        return format_html("<table class='audit-details'><tbody>{}</tbody></table>", rows)

    # ---- export ---------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        export = self.admin_site.admin_view(self.export_view)
        return [
            path("export/<str:fmt>/", export, name="audit_auditrecord_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        links = {fmt: reverse("admin:audit_auditrecord_export", args=[fmt]) for fmt in EXPORT_FORMATS}
        return super().changelist_view(request, {**(extra_context or {}), "export_links": links})

    def export_view(self, request: HttpRequest, fmt: str) -> HttpResponse:
        """The list as filtered and searched by the same query string, oldest first, every field the
        hash covers. The export is itself recorded (audit.export, with its filters)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if fmt not in EXPORT_FORMATS:
            return HttpResponse(status=404)
        changelist = reverse("admin:audit_auditrecord_changelist")
        try:
            cl = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(f"{changelist}?e=1")
        if cl.result_count > EXPORT_MAX_RECORDS:
            self.message_user(
                request,
                gettext("%(count)s records are too many for one export; narrow the list to %(max)s or fewer.")
                % {"count": cl.result_count, "max": EXPORT_MAX_RECORDS},
                messages.ERROR,
            )
            return HttpResponseRedirect(f"{changelist}?{request.GET.urlencode()}")
        audit_record(
            actor=principal_for_staff(request.user),
            action=AuditAction.AUDIT_EXPORT,
            target_type=AuditTarget.AUDIT_LOG,
            target_id="",
            details={"format": fmt, "filters": request.GET.dict(), "records": cl.result_count},
        )
        rows = (export_row(record) for record in in_chain_order(cl.queryset))
        if fmt == "json":
            body = json.dumps(list(rows), ensure_ascii=False, indent=1)
            response = HttpResponse(body, content_type="application/json; charset=utf-8")
        else:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(EXPORT_COLUMNS)
            for row in rows:
                writer.writerow([_csv_cell(row[column]) for column in EXPORT_COLUMNS])
            response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-log.{fmt}"'
        return response
