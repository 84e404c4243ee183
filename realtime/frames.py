"""Inbound WebSocket frames: from what the client sent to validated fields, or a FrameError.

Every check a frame can fail is here, before any state changes, and each failure carries the code the
client gets in its `error` frame. Message and read frames are validated by the REST serializers, so the
two transports accept exactly the same input and answer with the same codes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from rest_framework import serializers

from chatservice.errors import first_error
from conversations.serializers import ReadInput
from messaging.serializers import CHANGE_CURSOR_PATTERN, MessageInput

# Frames above this are not parsed: a chat frame with 10,000 characters of content is ~40 KiB at most.
# (Daphne refuses messages over 1 MiB itself, closing with 1009, before they reach the application.)
MAX_FRAME_BYTES = 64 * 1024
# Deeper JSON is not a chat frame, and the decoder recurses per level (10,000 levels overflow its stack).
MAX_FRAME_DEPTH = 32
FRAME_TYPES = ("message", "typing", "read", "ping")

# JSON strings (skipped, so brackets inside them do not count) or structural brackets.
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')

# A change cursor, as the REST query takes it (messaging.serializers.CHANGE_CURSOR_PATTERN).
CHANGE_CURSOR = re.compile(CHANGE_CURSOR_PATTERN)

# The REST serializers, instantiated once: validating a frame is the same as validating a REST body,
# without DRF deep-copying every field per frame (7 % of a worker under load). Event loop only.
MESSAGE_INPUT = MessageInput()
READ_INPUT = ReadInput()


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class MessageFields:
    content: str
    message_type: str
    metadata: dict[str, Any]
    client_message_id: str | None
    reply_to: str | None


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python's decoder accepts them by default


def _nesting_exceeds(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:  # the common case: too few brackets to nest that deep
        return False
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def decode(text_data: str | None, bytes_data: bytes | None) -> tuple[str, dict[str, Any]]:
    """The frame's type and its object, checked for size, nesting and type."""
    if text_data is None:
        raise FrameError("invalid_frame", "Frames must be JSON text.")
    if len(text_data) > MAX_FRAME_BYTES or len(text_data.encode()) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"Frames must be at most {MAX_FRAME_BYTES} bytes.")
    if _nesting_exceeds(text_data, MAX_FRAME_DEPTH):
        raise FrameError("invalid_frame", f"Frames must not nest deeper than {MAX_FRAME_DEPTH} levels.")
    try:
        frame = json.loads(text_data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise FrameError("invalid_json", "Frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise FrameError("invalid_frame", "Frame must be a JSON object.")
    frame_type = frame.get("type")
    if not isinstance(frame_type, str) or frame_type not in FRAME_TYPES:
        raise FrameError("unknown_type", f"type must be one of {', '.join(FRAME_TYPES)}.")
    return frame_type, frame


def _validated(serializer: serializers.Serializer, frame: dict[str, Any]) -> dict[str, Any]:
    try:
        return serializer.run_validation({k: v for k, v in frame.items() if k != "type"})
    except serializers.ValidationError as exc:
        message, code = first_error(exc.detail)  # the same wording and code as the REST answer
        raise FrameError(code, message) from None


def message_fields(frame: dict[str, Any]) -> MessageFields:
    fields = _validated(MESSAGE_INPUT, frame)
    return MessageFields(
        content=fields["content"],
        message_type=fields["messageType"],
        metadata=fields["metadata"],
        client_message_id=fields.get("clientMessageId"),
        reply_to=fields.get("replyTo"),
    )


def read_target(frame: dict[str, Any]) -> str | None:
    """The message id read up to, or None for "everything so far"."""
    return _validated(READ_INPUT, frame).get("messageId")


def typing_flag(frame: dict[str, Any]) -> bool:
    is_typing = frame.get("isTyping")
    if not isinstance(is_typing, bool):
        raise FrameError("invalid", "isTyping must be true or false.")
    return is_typing
