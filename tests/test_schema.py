"""The OpenAPI schema tells the truth about the REST API: what it accepts, what it refuses, and every answer.

Two parts:
- `test_the_api_keeps_to_its_schema`: schemathesis, every check, against the app in this process (WSGI: the
  DRF views are sync, and requests then run on the test's own database connection and transaction). Each
  operation gets 50 generated examples (after schemathesis' explicit and coverage cases), once as a donor
  and once as staff, with a real conversation's id in the path so requests reach the views' logic rather
  than a 404. Derandomized, so CI sees the same cases every run; about 20 s on 2 cores. (Run with 1,000
  random examples per operation, it found nothing more.)
- One test per defect an outside schemathesis run found; each fails on the code before the fix.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from chatservice.schema import ERROR_CODES
from chatservice.wsgi import application
from conversations.models import Conversation, Participant, Role
from messaging.models import Message
from tests.helpers import USER, send

pytestmark = pytest.mark.django_db

# The conversation every generated request names in its path (schemathesis' `parameters` fix its value).
CONVERSATION_ID = "conv_0000000000000000000000SCHEMA"
# Who calls: a donor taking part in the conversation, and a staff member who does not yet.
CALLERS = {"donor": ("u1", "USER"), "staff": ("agent1", "ADMIN")}
# Examples per operation and caller: enough to reach every field's edge cases, few enough for CI.
MAX_EXAMPLES = 50

schema = schemathesis.openapi.from_wsgi(
    "/api/schema/",
    application,
    config=schemathesis.Config.from_dict(
        {
            "seed": 0,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "parameters": {"path.conversation_id": CONVERSATION_ID},
        }
    ),
)


@pytest.fixture
def requests_in_process() -> Iterator[None]:
    """Requests through the WSGI app must not close the test's database connection at their end, which
    Django does after every request (as its own test client prevents in the same way)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def conversation_in_path(db) -> Conversation:
    conversation = Conversation.objects.create(id=CONVERSATION_ID, created_by=USER.user_id, subject="Refund")
    Participant.objects.create(conversation=conversation, user_id=USER.user_id, role=Role.USER)
    send(conversation, "Hello, I need help!")
    return conversation


@pytest.fixture
def credentials(caller: str, make_token) -> dict[str, str]:
    # Minted once per operation: signing is most of the cost of a request here.
    return {"Authorization": f"Bearer {make_token(*CALLERS[caller])}"}


@pytest.mark.parametrize("caller", CALLERS)
@schema.parametrize()
@settings(
    deadline=None,  # timing depends on the machine; correctness does not
    derandomize=True,
    database=None,  # nothing written to .hypothesis/, nothing replayed from another run
    # The fixtures are meant to live across examples: the conversation's state (closed by an update,
    # say) carries over, as it would for a real client.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_the_api_keeps_to_its_schema(case, caller, credentials, conversation_in_path, requests_in_process):
    if case.method == "GET" and len({"before", "after", "changedSince"} & set(case.query or {})) > 1:
        # OpenAPI cannot say that query parameters exclude each other (their descriptions do), so these
        # combinations are the documented 400 instead of the acceptance schemathesis expects of valid input.
        response = case.call(headers=credentials)
        case.validate_response(response, headers=credentials, excluded_checks=[positive_data_acceptance])
        assert response.status_code == 400
        return
    if case.method == "POST" and isinstance(case.body, dict) and case.body.get("replyTo"):
        # Whether replyTo names a message of the conversation depends on the data (400 `invalid_reply_to`).
        response = case.call(headers=credentials)
        case.validate_response(response, headers=credentials, excluded_checks=[positive_data_acceptance])
        return
    if case.method == "POST" and case.path.endswith("/attachments"):
        # What a file is depends on its bytes (415 for a random one, 422 for a broken image), which no schema
        # can say; the answer must still be one the schema documents.
        response = case.call(headers=credentials)
        case.validate_response(response, headers=credentials, excluded_checks=[positive_data_acceptance])
        return
    if case.method == "GET" and case.path.startswith("/api/reports"):
        # A report's period is bounded by `from` and `to` together (at most 366 days, 14 by hour, `from` not
        # after `to`, the default `to` being today), which OpenAPI cannot say: the documented 400 instead.
        response = case.call(headers=credentials)
        case.validate_response(response, headers=credentials, excluded_checks=[positive_data_acceptance])
        return
    case.call_and_validate(headers=credentials)


# ---- the outside run's findings, one by one ----------------------------------------------------------

LIST = "/api/conversations"


def messages_url(conversation: Conversation, query: str = "") -> str:
    return f"{LIST}/{conversation.pk}/messages{query}"


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def body_validator(openapi: dict[str, Any], method: str, path: str) -> jsonschema_rs.Validator:
    """A validator of an operation's JSON body, as the schema describes it."""
    operation = openapi["paths"][path][method]
    return jsonschema_rs.validator_for(
        json_schema(
            {
                **operation["requestBody"]["content"]["application/json"]["schema"],
                "components": openapi["components"],
            }
        )
    )


def json_schema(value: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema says it."""
    if isinstance(value, list):
        return [json_schema(item) for item in value]
    if not isinstance(value, dict):
        return value
    converted = {key: json_schema(item) for key, item in value.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if value.get("nullable") else converted


def test_message_history_is_documented_as_the_object_it_is(openapi, donor, conversation):
    documented = openapi["paths"]["/api/conversations/{conversation_id}/messages"]["get"]["responses"]["200"]
    schema_ref = documented["content"]["application/json"]["schema"]
    assert schema_ref == {"$ref": "#/components/schemas/MessagePage"}  # was an array of pages
    page = openapi["components"]["schemas"]["MessagePage"]
    assert (
        set(page["required"])
        == set(donor.get(messages_url(conversation)).json())
        == {"results", "next", "previous", "changeCursor"}
    )


# Statuses each operation can answer besides success.
ERROR_STATUSES = {
    ("post", "/api/conversations/{conversation_id}/attachments"): {
        400,
        401,
        403,
        404,
        406,
        409,
        413,
        415,
        422,
        429,
        431,
        503,
    },
    ("get", "/api/attachments/{attachment_id}"): {400, 401, 403, 404, 406, 431},
    ("get", "/api/attachments/{attachment_id}/link"): {400, 401, 404, 406, 431},
    ("get", "/api/conversations"): {400, 401, 406, 431},
    ("post", "/api/conversations"): {400, 401, 403, 406, 413, 415, 431},
    ("get", "/api/conversations/{conversation_id}"): {400, 401, 404, 406, 431},
    ("put", "/api/conversations/{conversation_id}"): {400, 401, 403, 404, 406, 413, 415, 431},
    ("patch", "/api/conversations/{conversation_id}"): {400, 401, 403, 404, 406, 413, 415, 431},
    ("post", "/api/conversations/{conversation_id}/assign"): {400, 401, 403, 404, 406, 409, 413, 415, 431},
    ("put", "/api/conversations/{conversation_id}/read"): {400, 401, 403, 404, 406, 413, 415, 431},
    ("get", "/api/conversations/{conversation_id}/messages"): {400, 401, 404, 406, 431},
    ("post", "/api/conversations/{conversation_id}/messages"): {400, 401, 403, 404, 406, 409, 413, 415, 431},
    ("post", "/api/conversations/{conversation_id}/transfer"): {400, 401, 403, 404, 406, 409, 413, 415, 431},
    ("post", "/api/conversations/{conversation_id}/csat"): {400, 401, 403, 404, 406, 409, 413, 415, 431},
    ("get", "/api/me/notifications"): {400, 401, 406, 431},
    ("put", "/api/me/notifications"): {400, 401, 403, 406, 413, 415, 431},
    ("get", "/api/search/messages"): {400, 401, 404, 406, 431},
    ("get", "/api/reports"): {400, 401, 403, 406, 431},
    ("get", "/api/reports/{chart}.csv"): {400, 401, 403, 404, 406, 431},
    ("post", "/api/conversations/{conversation_id}/unassign"): {400, 401, 403, 404, 406, 409, 413, 415, 431},
    # the support desk (staff only: 403 for donors)
    ("get", "/api/agents"): {400, 401, 403, 406, 431},
    ("get", "/api/agents/me"): {400, 401, 403, 406, 431},
    ("put", "/api/agents/me"): {400, 401, 403, 406, 413, 415, 431},
    ("get", "/api/canned-responses"): {400, 401, 403, 406, 431},
    ("post", "/api/canned-responses"): {400, 401, 403, 406, 409, 413, 415, 431},
    ("put", "/api/canned-responses/{canned_response_id}"): {400, 401, 403, 404, 406, 409, 413, 415, 431},
    ("delete", "/api/canned-responses/{canned_response_id}"): {400, 401, 403, 404, 406, 431},
    # edits, deletions, reactions, exports (issue 15)
    ("get", "/api/me/export"): {400, 401, 406, 431},
    ("get", "/api/conversations/{conversation_id}/transcript"): {400, 401, 403, 404, 406, 431},
    ("patch", "/api/conversations/{conversation_id}/messages/{message_id}"): {
        400,
        401,
        403,
        404,
        406,
        409,
        413,
        415,
        431,
    },
    ("delete", "/api/conversations/{conversation_id}/messages/{message_id}"): {400, 401, 403, 404, 406, 431},
    ("get", "/api/conversations/{conversation_id}/messages/{message_id}/versions"): {400, 401, 404, 406, 431},
    ("put", "/api/conversations/{conversation_id}/messages/{message_id}/reactions/{emoji}"): {
        400,
        401,
        403,
        404,
        406,
        409,
        431,
    },
    ("delete", "/api/conversations/{conversation_id}/messages/{message_id}/reactions/{emoji}"): {
        400,
        401,
        403,
        404,
        406,
        409,
        431,
    },
}


def test_every_operation_documents_its_errors_with_their_codes(openapi):
    schemas = openapi["components"]["schemas"]
    documented = {
        (method, path): {int(status) for status in operation["responses"] if not status.startswith("2")}
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    }
    assert documented == ERROR_STATUSES
    for (method, path), statuses in ERROR_STATUSES.items():
        for status in statuses:
            response = openapi["paths"][path][method]["responses"][str(status)]
            component = schemas[response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]]
            assert {"detail", "code"} <= set(component["required"])
            codes = schemas[component["properties"]["code"]["allOf"][0]["$ref"].rsplit("/", 1)[-1]]["enum"]
            assert codes == [code for code, error in ERROR_CODES.items() if error.status == status]
            # The description names the codes this operation gives under this status, each a documented one.
            named = [line.split("`")[1] for line in response["description"].splitlines() if line.startswith("- `")]
            assert named and set(named) <= set(codes), (method, path, status)


# Each resource's identifier has one name in every path, whichever view serves it.
PATH_PARAMETER_NAMES = {
    "conversations": "conversation_id",
    "messages": "message_id",
    "attachments": "attachment_id",
    "canned-responses": "canned_response_id",
    "reactions": "emoji",
    "reports": "chart",
}
PATH_PARAMETER = re.compile(r"\{([^}]+)\}")


def test_each_resource_names_its_path_parameter_one_way(openapi):
    seen: dict[str, set[str]] = {}
    for path in openapi["paths"]:
        segments = path.strip("/").split("/")
        for collection, segment in itertools.pairwise(segments):
            seen.setdefault(collection, set()).update(PATH_PARAMETER.findall(segment))
    seen = {collection: names for collection, names in seen.items() if names}
    assert seen == {collection: {name} for collection, name in PATH_PARAMETER_NAMES.items()}
    for path, item in openapi["paths"].items():
        declared = {p["name"] for op in item.values() for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(PATH_PARAMETER.findall(path)), path


def test_an_update_must_name_one_of_its_fields(openapi, donor, conversation):
    for method in ("put", "patch"):
        operation = openapi["paths"]["/api/conversations/{conversation_id}"][method]
        assert operation["requestBody"]["required"] is True
        valid = body_validator(openapi, method, "/api/conversations/{conversation_id}")
        for body, accepted in (({}, False), ({"unknown": 1}, False), ({"subject": "Tax receipt"}, True)):
            assert valid.is_valid(body) is accepted, body
            response = getattr(donor, method)(f"{LIST}/{conversation.pk}", body, format="json")
            assert (response.status_code == 200) is accepted, (body, response.json())
            if not accepted:
                assert response.json()["code"] == "empty_update"


FILE_URL = "https://files.example.org/a.pdf"
MESSAGES_PATH = "/api/conversations/{conversation_id}/messages"


@pytest.mark.parametrize(
    "body",
    [
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": FILE_URL, "name": "a.pdf"}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": "HTTP://x.org", "name": "a"}},
        {"content": "receipt", "messageType": "FILE"},
        {"content": "receipt", "messageType": "FILE", "metadata": {}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"name": "a.pdf"}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": FILE_URL}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": FILE_URL, "name": " \t"}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": FILE_URL, "name": "\x01"}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": "ftp://x.org/a", "name": "a"}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": "https:///a", "name": "a"}},
        # Schema and service now read the URL as sent: these were accepted, the first after stripping.
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": "\x01" + FILE_URL, "name": "a"}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": " " + FILE_URL, "name": "a"}},
        {"content": "receipt", "messageType": "FILE", "metadata": {"url": FILE_URL, "name": 5}},
        {"content": "hello", "metadata": {"url": "anything"}},
    ],
)
def test_the_schema_and_the_service_agree_on_file_messages(openapi, donor, conversation, body):
    documented = body_validator(openapi, "post", MESSAGES_PATH).is_valid(body)
    response = donor.post(messages_url(conversation), body, format="json")
    assert documented == (response.status_code == 201), response.json()
    if not documented:
        assert response.json()["code"] == "file_metadata_required"


def test_before_and_after_are_documented_as_exclusive(openapi, donor, conversation):
    parameters = {parameter["name"]: parameter for parameter in openapi["paths"][MESSAGES_PATH]["get"]["parameters"]}
    assert "Not together with `after`" in parameters["before"]["description"]
    assert "Not together with `before`" in parameters["after"]["description"]
    message = send(conversation)
    response = donor.get(messages_url(conversation, f"?after={message.pk}&before={message.pk}"))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_cursor")
    assert "invalid_cursor" in openapi["paths"][MESSAGES_PATH]["get"]["responses"]["400"]["description"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?status=", "invalid_choice"),  # was no filter at all
        ("?assigned=", "invalid_choice"),
        ("?limit=", "invalid"),
        ("?limit=abc", "invalid"),  # was the default page size
        ("?limit=0", "min_value"),
        ("?offset=x", "invalid"),
        ("?offset=-1", "min_value"),
        (f"?offset={2**63}", "max_value"),  # was a 500 from the database
    ],
)
def test_the_conversation_list_refuses_what_its_schema_refuses(agent, query, code):
    response = agent.get(LIST + query)
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_the_largest_documented_offset_is_an_empty_page(agent, conversation):
    response = agent.get(f"{LIST}?offset={2**63 - 1}")
    assert (response.status_code, response.json()["results"]) == (200, [])


@pytest.mark.parametrize(
    ("query", "code"),
    [("?before=", "blank"), ("?after=", "blank"), ("?limit=", "invalid"), ("?before=a%20b", "invalid")],
)
def test_message_history_refuses_empty_and_malformed_query_values(donor, conversation, query, code):
    response = donor.get(messages_url(conversation, query))
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_length_limits_count_the_text_as_sent(donor, conversation, openapi):
    """The schema's maxLength counts what is sent; so does the service now (it counted after stripping
    control characters, and took 201 characters as a 200-character subject). What is stored is shorter."""
    subject = openapi["components"]["schemas"]["ConversationCreateInputRequest"]["properties"]["subject"]
    assert subject["maxLength"] == 200
    response = donor.post(LIST, {"subject": "s" * 200 + "\x01"}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "max_length")
    response = donor.put(f"{LIST}/{conversation.pk}", {"subject": "\x01" + "s" * 200}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "max_length")
    assert donor.post(LIST, {"subject": "s" * 199 + "\x01"}, format="json").json()["subject"] == "s" * 199

    count = Message.objects.count()
    response = donor.post(messages_url(conversation), {"content": "x" * 10_000 + "\x07"}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "content_too_long")
    response = donor.post(messages_url(conversation), {"content": "x" * 9_999 + "\x07"}, format="json")
    assert (response.status_code, response.json()["content"]) == (201, "x" * 9_999)
    assert Message.objects.count() == count + 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/conversations/{conversation_id}/assign", {"adminId": "\x01\x02"}),  # was: assigned the caller
        ("put", "/api/conversations/{conversation_id}/read", {"messageId": "\x7f"}),  # was: read everything
        ("post", MESSAGES_PATH, {"content": "hi", "clientMessageId": "\x1b"}),  # was: stored as ""
        ("post", MESSAGES_PATH, {"content": "\x00\x01"}),
    ],
)
def test_text_of_only_control_characters_is_blank_as_the_schema_says(openapi, agent, conversation, method, path, body):
    assert not body_validator(openapi, method, path).is_valid(body)
    url = path.format(id=conversation.pk, conversation_id=conversation.pk)
    response = getattr(agent, method)(url, body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "blank")


def test_null_is_a_documented_code(openapi, donor, conversation):
    for body in ({"content": None}, {"content": "hi", "metadata": None}):
        response = donor.post(messages_url(conversation), body, format="json")
        assert (response.status_code, response.json()["code"]) == (400, "null")
    assert "null" in openapi["components"]["schemas"]["ValidationErrorCodeEnum"]["enum"]
    assert ERROR_CODES["null"].status == 400
