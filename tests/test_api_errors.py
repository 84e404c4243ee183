"""With DEBUG off, every error under /api/ (and on the service's other machine endpoints) is the API's JSON,
`{"detail": str, "code": str}`: Django's own refusals (too many fields, a body too large, a bad Host, CSRF,
PermissionDenied, a crash) included, and 405s of the views that render YAML or HTML when they succeed. The
admin console and the donor page keep Django's HTML pages.

This module is also the URLconf of the tests that need views the service does not have (one that crashes,
one that reads the body, ...): the project's URLs and its error handlers, plus those views."""

from __future__ import annotations

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient

from chatservice import urls as project_urls
from chatservice.devkeys import generate_rsa_keypair
from tests.servers import daphne, migrate, server_env

pytestmark = pytest.mark.django_db

LIST = "/api/conversations"
FIELD_LIMIT = 1000  # Django's DATA_UPLOAD_MAX_NUMBER_FIELDS, which the service leaves at its default


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("not for you")


def echo_body(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body)


def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse("posted")  # not csrf_exempt: Django's CSRF middleware guards it


TEST_VIEWS = {"crash": crash, "forbidden": forbidden, "echo-body": echo_body, "form": form}
# Under the API, in admin and on the donor page (before the project's own patterns, which would answer first).
urlpatterns = [
    path(f"{prefix}/test-{name}", view) for prefix in ("api", "admin", "chat") for name, view in TEST_VIEWS.items()
] + project_urls.urlpatterns
handler400 = getattr(project_urls, "handler400", None)
handler403 = getattr(project_urls, "handler403", None)
handler404 = getattr(project_urls, "handler404", None)
handler500 = getattr(project_urls, "handler500", None)

with_test_views = pytest.mark.urls(__name__)


@pytest.fixture(autouse=True)
def debug_off(settings):
    settings.DEBUG = False


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def assert_json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = response.json()
    assert set(body) == {"detail", "code"} and isinstance(body["detail"], str) and body["detail"]
    assert body["code"] == code, body
    return body


def assert_html_page(response, status: int) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]


def too_many_fields() -> str:
    return "&".join(f"f{n}=1" for n in range(FIELD_LIMIT + 1))


# ---- 400 -------------------------------------------------------------------------------------------


def test_too_many_query_fields_on_the_api_is_400_json(client, make_token):
    response = client.get(f"{LIST}?{too_many_fields()}", HTTP_AUTHORIZATION=f"Bearer {make_token()}")
    body = assert_json_error(response, 400, "too_many_fields")
    assert body["detail"] == f"Too many fields in the query string or form (at most {FIELD_LIMIT})."
    assert_json_error(client.get(f"/api/schema/?{too_many_fields()}"), 400, "too_many_fields")


def test_a_host_not_allowed_is_400_json_without_echoing_it(client):
    response = client.get(LIST, HTTP_HOST="evil.example")
    assert assert_json_error(response, 400, "bad_request") == {"detail": "Bad request.", "code": "bad_request"}
    assert b"evil.example" not in response.content


@with_test_views
def test_a_body_over_djangos_limit_is_413_json(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = client.post("/api/test-echo-body", data=b"x" * 101, content_type="application/octet-stream")
    body = assert_json_error(response, 413, "request_too_large")
    assert body["detail"] == "Request body is larger than 100 bytes."
    within = client.post("/api/test-echo-body", data=b"x" * 100, content_type="application/octet-stream")
    assert (within.status_code, within.content) == (200, b"x" * 100)


def test_admin_keeps_djangos_400_page(client):
    assert_html_page(client.get(f"/admin/login/?{too_many_fields()}"), 400)
    assert_html_page(client.get("/chat/", HTTP_HOST="evil.example"), 400)


# ---- 403 -------------------------------------------------------------------------------------------


@with_test_views
def test_permission_denied_raised_by_django_is_403_json_under_the_api(client):
    response = client.get("/api/test-forbidden")
    body = assert_json_error(response, 403, "permission_denied")
    assert "not for you" not in body["detail"]
    assert_html_page(client.get("/admin/test-forbidden"), 403)
    assert_html_page(client.get("/chat/test-forbidden"), 403)


@with_test_views
def test_a_csrf_failure_is_403_json_under_the_api_and_djangos_page_in_admin():
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    response = client.post("/api/test-form", {"a": "1"})
    body = assert_json_error(response, 403, "permission_denied")
    assert body["detail"].startswith("CSRF Failed: ")
    assert_html_page(client.post("/admin/test-form", {"a": "1"}), 403)
    assert b"CSRF" in client.post("/admin/test-form", {"a": "1"}).content


def test_a_staff_session_without_csrf_token_is_refused_in_the_same_words(conversation):
    staff = User.objects.create_user("maria", password="pw-123456", is_staff=True)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(f"{LIST}/{conversation.pk}/assign", {}, format="json")
    body = assert_json_error(response, 403, "permission_denied")
    assert body["detail"].startswith("CSRF Failed: ")


# ---- 404 -------------------------------------------------------------------------------------------


def test_not_found_is_json_under_the_api_and_for_unknown_paths(client):
    assert assert_json_error(client.get("/api/nope"), 404, "not_found") == {"detail": "Not found.", "code": "not_found"}
    assert_json_error(client.get("/nowhere"), 404, "not_found")


def test_not_found_in_admin_and_on_the_donor_page_is_djangos_page(client):
    staff = User.objects.create_user("maria", password="pw-123456", is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert_html_page(client.get("/admin/nope/"), 404)
    assert_html_page(client.get("/chat/nope"), 404)


# ---- 405 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("post", "/api/docs/"), ("put", "/api/schema/"), ("delete", LIST)])
def test_method_not_allowed_is_405_json(client, make_token, method, path):
    response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {make_token()}")
    body = assert_json_error(response, 405, "method_not_allowed")
    assert body["detail"] == f'Method "{method.upper()}" not allowed.'
    assert "GET" in response["Allow"]


def test_the_schema_and_docs_still_render_their_own_formats(client):
    assert client.get("/api/schema/")["Content-Type"].startswith("application/vnd.oai.openapi")
    assert client.get("/api/docs/")["Content-Type"].startswith("text/html")


# ---- 500 -------------------------------------------------------------------------------------------


@with_test_views
def test_a_crash_is_500_json_under_the_api_and_djangos_page_elsewhere(client):
    body = assert_json_error(client.get("/api/test-crash"), 500, "server_error")
    assert "a bug" not in body["detail"]
    assert_html_page(client.get("/admin/test-crash"), 500)
    assert_html_page(client.get("/chat/test-crash"), 500)


# ---- through a real Daphne ---------------------------------------------------------------------------


def test_a_real_worker_answers_too_many_fields_and_a_405_with_json(tmp_path):
    keys = generate_rsa_keypair()
    env = server_env(keys[1].decode(), f"sqlite:///{tmp_path / 'chat.sqlite3'}")
    migrate(env)
    with daphne(env) as server:
        many = httpx.get(f"{server.url}/api/schema/?{too_many_fields()}", timeout=30)
        assert (many.status_code, many.headers["content-type"]) == (400, "application/json")
        assert many.json()["code"] == "too_many_fields"
        docs = httpx.post(f"{server.url}/api/docs/", timeout=30)
        assert (docs.status_code, docs.headers["content-type"]) == (405, "application/json")
        assert docs.json() == {"detail": 'Method "POST" not allowed.', "code": "method_not_allowed"}
