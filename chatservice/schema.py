"""What the OpenAPI schema says beyond what drf-spectacular reads from the code (loaded by
ChatServiceConfig.ready): the authentication schemes, every error response and its codes, and the input
rules a plain serializer mapping leaves out (what blank means, FILE metadata, bounded metadata, "at least
one field"), so that a request the schema accepts is one the service accepts and the reverse
(tests/test_schema.py runs schemathesis against it).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent, build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from chatservice.validation import (
    ATTACHMENT_ID_PATTERN,
    HTTP_URL_MAX_LENGTH,
    HTTP_URL_PATTERN,
    METADATA_MAX_BYTES,
    METADATA_MAX_DEPTH,
    METADATA_MAX_NUMBER,
    VISIBLE_CHAR_PATTERN,
)
from messaging.models import MessageType


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "chatservice.authentication.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict:
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 - a scheme name, not a secret
            bearer_format="JWT (RS256, issued by the Auth Service)",
        )


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "chatservice.authentication.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "Django admin session of a staff user (acts as ADMIN, user id = username).",
        }


def require_nonempty_bodies(result: dict, generator: object, request: object, public: bool) -> dict:
    """Mark a request body required when its schema needs a property (`minProperties`). drf-spectacular
    does so only for bodies with a required field; an update with none of its optional fields is refused
    (`empty_update`) just as surely when no body is sent at all."""
    schemas = result.get("components", {}).get("schemas", {})
    for item in result["paths"].values():
        for operation in item.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                if schemas.get(ref.rsplit("/", 1)[-1], {}).get("minProperties"):
                    operation["requestBody"]["required"] = True
    return result


def seed_paths(result: dict, generator: object, request: object, public: bool) -> dict:
    """Publish the seed's paths (no trailing slash); the router also accepts one."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result


# ---- error responses --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCode:
    status: int
    meaning: str


# Every `code` the REST API answers with (chatservice.errors gives every error body this shape), its status
# and what it means. The schema's error components enumerate these, so a code missing here fails
# tests/test_schema.py as soon as schemathesis meets it; the README's table is written from this one.
ERROR_CODES: dict[str, ErrorCode] = {
    "parse_error": ErrorCode(400, "The body is not valid JSON (or nests too deeply to parse)."),
    "invalid": ErrorCode(
        400, "The body is not a JSON object, or a query value is not of its type (an integer, a message id)."
    ),
    "required": ErrorCode(400, "A required field is missing (`content`)."),
    "null": ErrorCode(
        400,
        "A field that may not be null is `null` (`content`, `metadata`, `messageType`, `status`, `adminId`), "
        "or the whole body is `null`.",
    ),
    "blank": ErrorCode(
        400,
        "A text field that needs text is empty, or has no visible character once control characters are "
        "stripped (`content`, `adminId`, `messageId`, `clientMessageId`, a cursor).",
    ),
    "not_a_string": ErrorCode(400, "A text field is a number, boolean, array or object."),
    "max_length": ErrorCode(
        400,
        "A text field is over its limit, counted as sent: `subject` 200, `adminId` 128, `messageId` and "
        "`clientMessageId` 64, a search's `q` 200.",
    ),
    "invalid_choice": ErrorCode(400, "Not one of the listed values (`status`, `assigned`, `messageType`)."),
    "min_value": ErrorCode(400, "`limit` below 1, or `offset` below 0."),
    "max_value": ErrorCode(400, "`offset` above 2^63 - 1."),
    "max_string_length": ErrorCode(400, "A number in the query string is over 1,000 characters long."),
    "content_too_long": ErrorCode(
        400, "`content` is over `CHAT_MAX_MESSAGE_LENGTH` (10,000) characters, counted as sent."
    ),
    "file_metadata_required": ErrorCode(
        400,
        "A FILE message without `metadata.attachmentId` (an id) or `metadata.url` (http or https, with a host) "
        "and `metadata.name`.",
    ),
    "metadata_not_object": ErrorCode(400, "`metadata` is not a JSON object."),
    "metadata_too_large": ErrorCode(400, f"`metadata` is over {METADATA_MAX_BYTES // 1024} KiB as compact JSON."),
    "metadata_too_deep": ErrorCode(400, f"`metadata` nests deeper than {METADATA_MAX_DEPTH} levels."),
    "metadata_number_out_of_range": ErrorCode(400, "A number in `metadata` is beyond -2^53 to 2^53."),
    "empty_update": ErrorCode(400, "An update names none of `subject`, `metadata` and `status`."),
    "invalid_cursor": ErrorCode(
        400,
        "More than one of `before`, `after` and `changedSince`: a page follows one cursor; or a search's `before` "
        "that is not a cursor the search returned.",
    ),
    "null_characters_not_allowed": ErrorCode(400, "A cursor (`before`, `after`) contains a NUL character."),
    "too_many_fields": ErrorCode(400, "More than 1,000 fields in the query string."),
    "bad_request": ErrorCode(400, "Refused before reaching the API, e.g. a `Host` that is not an allowed host."),
    "not_authenticated": ErrorCode(401, "No `Authorization` header (and no staff session)."),
    "token_invalid": ErrorCode(
        401,
        "The header is not `Bearer <token>`, or the token is malformed, signed with another key or algorithm, "
        "or has no usable subject.",
    ),
    "token_expired": ErrorCode(401, "The token has expired."),
    "permission_denied": ErrorCode(
        403, "Staff only (`assign`); or a staff session's unsafe request without a valid CSRF token."
    ),
    "status_forbidden": ErrorCode(403, "A donor may close a conversation, not reopen or archive it."),
    "system_message_forbidden": ErrorCode(403, "Only staff may send SYSTEM messages."),
    "not_found": ErrorCode(
        404,
        "No such conversation, or one a donor does not take part in (the same answer, so ids reveal nothing).",
    ),
    "chart_not_found": ErrorCode(404, "No such report chart (volume, responsiveness, backlog, csat, agents)."),
    "message_not_found": ErrorCode(
        404,
        "`messageId` (in the path, or `PUT …/read`) or the cursor (`before`, `after`) names no message of this "
        "conversation the caller may see.",
    ),
    "method_not_allowed": ErrorCode(405, "The path does not take this method (e.g. `DELETE`)."),
    "not_acceptable": ErrorCode(406, "The `Accept` header allows neither JSON nor the browsable API's HTML."),
    "conversation_closed": ErrorCode(409, "The conversation is not ACTIVE: messages can no longer be sent."),
    "participant_is_user": ErrorCode(409, "`adminId` already takes part in the conversation as a donor."),
    "idempotency_key_reused": ErrorCode(
        409, "The sender already used this `clientMessageId` for a different content, type or metadata."
    ),
    "request_too_large": ErrorCode(413, "The body is over 1 MiB; refused before it is read."),
    "unsupported_media_type": ErrorCode(415, "The body is not `application/json`."),
    "request_headers_too_large": ErrorCode(
        431, "The request line and headers are over 16 KiB (answered by the HTTP layer, before the API)."
    ),
    "server_error": ErrorCode(500, "A failure of the service; the details are in its log only."),
    # The support desk (issue 12).
    "not_a_list": ErrorCode(400, "`labels` is not a JSON array."),
    "not_staff": ErrorCode(404, "`adminId` of a transfer names no staff member the desk knows."),
    "transfer_to_self": ErrorCode(409, "A transfer to the caller: use assign."),
    "staff_only_field": ErrorCode(403, "A donor sent `labels`, `priority` or `snoozedUntil`: staff only."),
    "note_forbidden": ErrorCode(403, "A donor sent `messageType: NOTE`: internal notes are staff only."),
    "admin_only": ErrorCode(403, "Staff only."),
    "invalid_period": ErrorCode(
        400,
        "A report's `from` or `to` is not a date (YYYY-MM-DD), `from` is after `to`, or the period is longer "
        "than 366 days (14 days by hour).",
    ),
    "not_assigned": ErrorCode(409, "Unassign names a staff member who is not assigned to the conversation."),
    "short_code_taken": ErrorCode(409, "The caller already has a canned response with this `shortCode`."),
    "assignment_race": ErrorCode(409, "The assignment changed meanwhile; try again."),
    # The satisfaction survey (issue 13).
    "csat_donor_only": ErrorCode(403, "Staff sent a rating: only the donor rates a conversation."),
    "conversation_not_closed": ErrorCode(409, "A rating for a conversation that is not CLOSED."),
    "csat_already_submitted": ErrorCode(409, "The conversation was already rated since it was last closed."),
    # Attachments (issue 14).
    "file_required": ErrorCode(400, "The multipart body has no `file` part."),
    "attachment_empty": ErrorCode(400, "The file is empty."),
    "attachment_not_found": ErrorCode(
        404,
        "No such attachment, or one the caller may not fetch (the same answer, so ids reveal nothing); for a "
        "FILE message, `metadata.attachmentId` names no upload of the sender's to this conversation.",
    ),
    "attachment_link_expired": ErrorCode(
        403, "The signed link is older than `CHAT_ATTACHMENT_LINK_TTL_S`; ask for a new one."
    ),
    "attachment_too_large": ErrorCode(
        413, "The upload is over `CHAT_ATTACHMENT_MAX_BYTES` (10 MiB); refused while it streams in."
    ),
    "attachment_type_unsupported": ErrorCode(
        415, "The file's content (not its name) is not an accepted type: JPEG, PNG, WebP, GIF, PDF, plain text."
    ),
    "attachment_infected": ErrorCode(422, "The virus scanner found something; nothing was stored."),
    "attachment_image_too_large": ErrorCode(
        422, "The image decodes to more than `CHAT_ATTACHMENT_MAX_PIXELS` pixels (24 MP)."
    ),
    "attachment_unreadable": ErrorCode(422, "The image is corrupt or truncated."),
    "attachment_drafts_limit": ErrorCode(
        429, "The caller holds 20 uploads from the last 24 h that no message has sent; send them or wait."
    ),
    "attachment_scanner_unavailable": ErrorCode(
        503, "`CLAMAV_URL` is set and the scanner cannot be reached: uploads fail closed."
    ),
    "attachment_busy": ErrorCode(503, "Every image-processing slot stayed busy for 30 s; try again."),
    # Edits, deletions, reactions, replies (issue 15).
    "invalid_reply_to": ErrorCode(
        400,
        "`replyTo` names no message of this conversation the sender may quote (a message a donor sees cannot "
        "quote an internal note).",
    ),
    "reaction_not_allowed": ErrorCode(400, "The emoji is not one of the configured reactions (`CHAT_REACTIONS`)."),
    "edit_forbidden": ErrorCode(403, "Only the sender may edit a message, and only text, files and notes."),
    "edit_window_passed": ErrorCode(403, "The message is older than `CHAT_EDIT_WINDOW_S` (900 s): no more edits."),
    "delete_forbidden": ErrorCode(403, "A donor may delete only their own messages (staff may delete any)."),
    "message_deleted": ErrorCode(409, "The message is a tombstone: it cannot be edited or reacted to."),
}

# What every operation can answer: each needs credentials and answers JSON (or the browsable API), and Django
# and the HTTP layer refuse some requests before the API sees them.
ALWAYS_ERRORS = (
    "not_authenticated",
    "token_invalid",
    "token_expired",
    "not_acceptable",
    "too_many_fields",
    "bad_request",
    "request_headers_too_large",
)
# What every operation that reads a JSON object can answer about the body as a whole.
BODY_ERRORS = ("parse_error", "invalid", "null", "unsupported_media_type", "request_too_large")
# Unsafe methods: a staff session's request must also pass Django's CSRF check (StaffSessionAuthentication).
UNSAFE_ERRORS = ("permission_denied",)
METADATA_ERRORS = ("metadata_not_object", "metadata_too_large", "metadata_too_deep", "metadata_number_out_of_range")

# Why each status is answered, heading the codes an operation lists under it.
STATUS_SUMMARIES = {
    400: "Bad input; nothing was changed.",
    401: "No or bad credentials.",
    403: "The caller may not do this.",
    404: "Unknown, or not the caller's.",
    406: "No acceptable representation.",
    409: "The conversation's state forbids it.",
    413: "Body too large.",
    415: "Body is not JSON, or (uploads) not an accepted kind of file.",
    422: "The upload was understood and refused.",
    429: "Too many at once; try again later.",
    431: "Headers too large.",
    503: "A service this operation needs is unavailable; try again later.",
}
# Component names of the error bodies per status.
ERROR_COMPONENT_NAMES = {
    400: "ValidationError",
    401: "AuthenticationError",
    403: "PermissionError",
    404: "NotFoundError",
    406: "NotAcceptableError",
    409: "ConflictError",
    413: "RequestTooLargeError",
    415: "UnsupportedMediaTypeError",
    422: "UnprocessableUploadError",
    429: "TooManyRequestsError",
    431: "RequestHeadersTooLargeError",
    503: "UnavailableError",
}


class FieldErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField()


def _error_serializer(status: int) -> type[serializers.Serializer]:
    """The body of an error with this status: `{detail, code}`, the code one of this status's codes (and
    `errors` per field for validation errors)."""
    choices = [(code, error.meaning) for code, error in ERROR_CODES.items() if error.status == status]
    fields: dict[str, Any] = {
        "detail": serializers.CharField(help_text="For people: a sentence; its wording may change."),
        "code": serializers.ChoiceField(choices=choices, help_text="For programs: stable."),
    }
    if status == 400:
        fields["errors"] = serializers.DictField(
            child=serializers.ListField(child=FieldErrorSerializer()),
            required=False,
            help_text="Every error per field (`non_field_errors` for the body as a whole); `detail` and "
            "`code` are the first of them.",
        )
    doc = f"The body of a {status} answer."
    return type(ERROR_COMPONENT_NAMES[status], (serializers.Serializer,), {**fields, "__doc__": doc})


ERROR_SERIALIZERS = {status: _error_serializer(status) for status in ERROR_COMPONENT_NAMES}


def error_responses(*code_groups: Iterable[str] | str) -> dict[int, OpenApiResponse]:
    """The error responses of an operation that answers with these codes (names or groups of names): one
    response per status, its description listing the operation's codes under that status."""
    by_status: dict[int, list[str]] = {}
    for group in code_groups:
        for code in (group,) if isinstance(group, str) else group:
            codes = by_status.setdefault(ERROR_CODES[code].status, [])
            if code not in codes:
                codes.append(code)
    return {
        status: OpenApiResponse(
            ERROR_SERIALIZERS[status],
            description="\n".join(
                [STATUS_SUMMARIES[status], ""] + [f"- `{code}`: {ERROR_CODES[code].meaning}" for code in codes]
            ),
        )
        for status, codes in sorted(by_status.items())
    }


# ---- input rules the plain mapping leaves out ------------------------------------------------------


class StrictCharFieldScheme(OpenApiSerializerFieldExtension):
    """A StrictCharField's limit is counted as sent (its `maxLength`), and a field that may not be blank
    needs a visible character (its `pattern`), as chatservice.validation applies them."""

    target_class = "chatservice.validation.StrictCharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        limit = self.target.length_limit()
        if limit is not None:
            schema["maxLength"] = limit
        if not self.target.allow_blank and direction == "request":
            schema["pattern"] = VISIBLE_CHAR_PATTERN
        return schema


# Any JSON value metadata may hold: numbers only within ±2^53 (chatservice.validation), at any level.
JSON_VALUE_COMPONENT = "JsonValue"
JSON_VALUE_REF = {"$ref": f"#/components/schemas/{JSON_VALUE_COMPONENT}"}
JSON_VALUE_SCHEMA = {
    "description": f"Any JSON value; numbers between -2^53 and 2^53 (exact in every JSON parser and in "
    f"BSON), nested at most {METADATA_MAX_DEPTH} levels.",
    "nullable": True,
    "anyOf": [
        {"type": "string"},
        {"type": "boolean"},
        {"type": "number", "minimum": -METADATA_MAX_NUMBER, "maximum": METADATA_MAX_NUMBER},
        {"type": "array", "items": JSON_VALUE_REF},
        {"type": "object", "additionalProperties": JSON_VALUE_REF},
    ],
}
METADATA_DESCRIPTION = (
    f"A JSON object of at most {METADATA_MAX_BYTES // 1024} KiB as compact JSON, nested at most "
    f"{METADATA_MAX_DEPTH} levels; control characters are stripped from its strings and keys."
)


def metadata_schema(auto_schema: AutoSchema) -> dict[str, Any]:
    """The schema of a metadata object, registering the JsonValue component it refers to."""
    auto_schema.registry.register_on_missing(
        ResolvedComponent(
            name=JSON_VALUE_COMPONENT,
            type=ResolvedComponent.SCHEMA,
            object=JSON_VALUE_COMPONENT,
            schema=JSON_VALUE_SCHEMA,
        )
    )
    return {"type": "object", "additionalProperties": JSON_VALUE_REF, "description": METADATA_DESCRIPTION}


class MetadataFieldScheme(OpenApiSerializerFieldExtension):
    """Metadata is an object (any other JSON value is refused), not just "any value"."""

    target_class = "chatservice.validation.MetadataField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict:
        return metadata_schema(auto_schema)


# The message types of the two shapes of a new message; named in SPECTACULAR_SETTINGS' ENUM_NAME_OVERRIDES
# (two choice sets of one property of one component would otherwise get the same enum name).
TEXT_MESSAGE_TYPES = [MessageType.TEXT.value, MessageType.SYSTEM.value, MessageType.NOTE.value]
FILE_MESSAGE_TYPES = [MessageType.FILE.value]


class MessageInputScheme(OpenApiSerializerExtension):
    """Two shapes: a TEXT or SYSTEM message, and a FILE message, whose metadata must name the file
    (messaging.serializers.MessageInput refuses one without with `file_metadata_required`)."""

    target_class = "messaging.serializers.MessageInput"

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict:
        base = auto_schema._map_basic_serializer(self.target, direction)
        text = copy.deepcopy(base)
        text["description"] = "A TEXT message (the default), a SYSTEM one or an internal NOTE (both staff only)."
        text["properties"]["messageType"] = {
            "type": "string",
            "enum": TEXT_MESSAGE_TYPES,
            "default": MessageType.TEXT.value,
        }
        file = copy.deepcopy(base)
        file["description"] = "A FILE message: its metadata names the file (a link to it, and its name)."
        file["properties"]["messageType"] = {"type": "string", "enum": FILE_MESSAGE_TYPES}
        file["properties"]["metadata"] = {
            **metadata_schema(auto_schema),
            "description": (
                "Either `attachmentId`, an upload to this conversation (POST …/attachments), which the server "
                "describes (`url`, `name`, `contentType`, `size`), or a file hosted elsewhere: `url` and `name`."
            ),
            "anyOf": [
                {
                    "required": ["attachmentId"],
                    "properties": {"attachmentId": {"type": "string", "pattern": ATTACHMENT_ID_PATTERN}},
                },
                {
                    "required": ["url", "name"],
                    "properties": {
                        "url": {"type": "string", "maxLength": HTTP_URL_MAX_LENGTH, "pattern": HTTP_URL_PATTERN},
                        "name": {"type": "string", "pattern": VISIBLE_CHAR_PATTERN},
                    },
                },
            ],
        }
        file["required"] = sorted({*file.get("required", []), "messageType", "metadata"})
        # `required` here too (every shape has it): drf-spectacular marks a request body required from it. (No
        # `type` beside it: drf-spectacular discards an object component without properties.)
        return {
            "required": base["required"],
            "oneOf": [text, file],
            "description": base.get("description", ""),
        }


class ConversationUpdateInputScheme(OpenApiSerializerExtension):
    """An update names at least one of its fields (else 400 `empty_update`). Other properties are ignored,
    so "at least one property" (`minProperties`) alone would be true of `{"x": 1}`, which is refused:
    `anyOf` says which."""

    target_class = "conversations.serializers.ConversationUpdateInput"

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["minProperties"] = 1
        schema["anyOf"] = [{"required": [name]} for name in schema["properties"]]
        return schema


class AgentUpdateInputScheme(ConversationUpdateInputScheme):
    """PUT /api/agents/me names at least one of availability, capacity, displayName."""

    target_class = "desk.serializers.AgentUpdateInput"


class MessageEditInputScheme(OpenApiSerializerExtension):
    """An edit (PATCH) replaces the content, so it is required, which drf-spectacular's partial PATCH
    bodies would otherwise drop."""

    target_class = "messaging.serializers.MessageEditInput"

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["required"] = ["content"]
        return schema
