from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from attachments.views import AttachmentDownloadView, AttachmentLinkView, AttachmentUploadView
from chatservice.i18n import javascript_catalog
from chatservice.ids import ID_PATTERN
from chatservice.landing import landing
from chatservice.views import favicon, health, live, metrics
from chatservice.webclient import donor_chat
from chatservice.widget import embedded_chat, widget_script
from conversations.views import ConversationViewSet
from demo.views import DEMO_LOGIN_TOKEN_PATTERN, demo_login
from desk.views import AgentViewSet, CannedResponseViewSet
from desk.workspace import workspace
from exports.views import MyExportView, TranscriptView
from messaging.views import MessageChangeViewSet, MessageViewSet, ReactionViewSet
from notifications.views import NotificationPreferencesView, unsubscribe_page
from reports.page import reports as reports_page
from reports.views import ReportChartView, ReportView
from search.views import MessageSearchView

router = SimpleRouter()
# The seed's paths have no trailing slash; one is tolerated (clients built on DRF conventions add it).
router.trailing_slash = "/?"
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("agents", AgentViewSet, basename="agent")
router.register("canned-responses", CannedResponseViewSet, basename="canned-response")

messages = MessageViewSet.as_view({"get": "list", "post": "create"})
message = MessageChangeViewSet.as_view({"patch": "partial_update", "delete": "destroy"})
message_versions = MessageChangeViewSet.as_view({"get": "versions"})
reaction = ReactionViewSet.as_view({"put": "update", "delete": "destroy"})
MESSAGE_PATH = rf"^api/conversations/(?P<conversation_id>{ID_PATTERN})/messages/(?P<message_id>{ID_PATTERN})"
# One emoji (a ZWJ sequence at most), percent-decoded by Django; which ones are accepted is the service's call.
EMOJI_PATTERN = r"[^/]{1,32}"

urlpatterns = [
    path("", landing, name="landing"),
    path("favicon.ico", favicon, name="favicon"),
    path("live", live, name="live"),
    path("health", health, name="health"),
    path("metrics", metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script, so the CSP holds.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    re_path(
        rf"^api/conversations/(?P<conversation_id>{ID_PATTERN})/messages/?$", messages, name="conversation-messages"
    ),
    re_path(rf"{MESSAGE_PATH}/?$", message, name="conversation-message"),
    re_path(rf"{MESSAGE_PATH}/versions/?$", message_versions, name="conversation-message-versions"),
    re_path(rf"{MESSAGE_PATH}/reactions/(?P<emoji>{EMOJI_PATTERN})/?$", reaction, name="conversation-message-reaction"),
    re_path(
        rf"^api/conversations/(?P<conversation_id>{ID_PATTERN})/attachments/?$",
        AttachmentUploadView.as_view(),
        name="conversation-attachments",
    ),
    re_path(
        rf"^api/attachments/(?P<attachment_id>{ID_PATTERN})/?$", AttachmentDownloadView.as_view(), name="attachment"
    ),
    re_path(
        rf"^api/attachments/(?P<attachment_id>{ID_PATTERN})/link/?$",
        AttachmentLinkView.as_view(),
        name="attachment-link",
    ),
    re_path(r"^api/me/export/?$", MyExportView.as_view(), name="my-export"),
    re_path(
        rf"^api/conversations/(?P<conversation_id>{ID_PATTERN})/transcript/?$",
        TranscriptView.as_view(),
        name="conversation-transcript",
    ),
    re_path(r"^api/search/messages/?$", MessageSearchView.as_view(), name="search-messages"),
    re_path(r"^api/reports/?$", ReportView.as_view(), name="reports"),
    re_path(r"^api/reports/(?P<chart>[a-z]{1,32})\.csv$", ReportChartView.as_view(), name="reports-chart"),
    re_path(r"^api/me/notifications/?$", NotificationPreferencesView.as_view(), name="notification-preferences"),
    path("api/", include(router.urls)),
    path("admin/desk/", workspace, name="desk-workspace"),
    # `make demo`'s logged-in link; answers 404 like an unknown path unless DEBUG is on (demo.views).
    re_path(rf"^admin/demo-login/(?P<token>{DEMO_LOGIN_TOKEN_PATTERN})/$", demo_login, name="demo-login"),
    path("admin/reports/", reports_page, name="reports-page"),
    path("admin/", admin.site.urls),
    path("chat/", donor_chat, name="donor-chat"),
    path("chat/embed", embedded_chat, name="donor-chat-embed"),
    path("widget.js", widget_script, name="widget-script"),
    re_path(r"^jsi18n/(?P<language>[a-z]{2}(?:-[a-z]{2,4})?)\.js$", javascript_catalog, name="javascript-catalog"),
    # The signed token is a bounded, URL-safe string (django.core.signing); anything else is not a link.
    re_path(r"^notifications/unsubscribe/(?P<token>[A-Za-z0-9_:.\-]{1,512})/?$", unsubscribe_page, name="unsubscribe"),
]

# With DEBUG off: JSON like every other API error, Django's own pages in admin and on the donor page.
handler400 = "chatservice.views.bad_request"
handler403 = "chatservice.views.permission_denied"
handler404 = "chatservice.views.not_found"
handler500 = "chatservice.views.server_error"
