"""The service's own trace points for real-time traffic, one trace per message's path:

    chat.ws.connection                 a socket's whole life (SERVER), the parent of its frames
      chat.ws.frame message            one inbound frame, from arrival until it is stored and announced
        chat.messages.store            the group commit that stored it (links to the other frames of
          <database spans>             the batch), with the database calls beneath
        chat.publish conv.<id>         the fan-out to the conversation's group (PRODUCER), Redis beneath;
                                       its context travels in the layer event
    chat.ws.deliver                    on every receiving socket, any worker (CONSUMER): a child of the
                                       publish it received, linked to the receiving socket's connection

Tracing off (chatservice.telemetry never configured) costs one `None` test per call: every function here
returns at once, and the context managers are one shared no-op.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context, use_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# The key of a layer event that carries the publisher's trace context (W3C traceparent / tracestate).
TRACE_CONTEXT_KEY = "traceContext"
_NOTHING: AbstractContextManager[None] = nullcontext()
_propagator = TraceContextTextMapPropagator()
_tracer: Tracer | None = None


def enable(tracer: Tracer) -> None:
    global _tracer
    _tracer = tracer


def disable() -> None:
    global _tracer
    _tracer = None


def connection_started(path: str, conversation_id: str) -> Span | None:
    """The path only: the query string, where the token was, is never recorded."""
    if _tracer is None:
        return None
    return _tracer.start_span(
        "chat.ws.connection",
        kind=SpanKind.SERVER,
        attributes={"url.path": path, "network.protocol.name": "websocket", "chat.conversation.id": conversation_id},
    )


def connection_identified(span: Span | None, user_id: str, role: str) -> None:
    if span is not None:
        span.set_attributes({"enduser.id": user_id, "enduser.role": role})


def connection_ended(span: Span | None, close_code: int | None) -> None:
    if span is not None:
        if close_code is not None:
            span.set_attribute("chat.ws.close_code", close_code)
        span.end()


def frame_started(connection: Span | None) -> Span | None:
    if _tracer is None:
        return None
    return _tracer.start_span("chat.ws.frame", context=set_span_in_context(connection) if connection else None)


def frame_typed(span: Span | None, frame_type: str) -> None:
    if span is not None:
        span.update_name(f"chat.ws.frame {frame_type}")
        span.set_attribute("chat.frame.type", frame_type)


def frame_refused(span: Span | None, code: str) -> None:
    """An error frame answered this frame: the client's mistake is an attribute, the service's an error."""
    if span is not None:
        span.set_attribute("chat.error.code", code)
        if code == "unavailable":
            span.set_status(Status(StatusCode.ERROR, code))


def end(span: Span | None) -> None:
    if span is not None:
        span.end()


def active(span: Span | None) -> AbstractContextManager[Any]:
    """Make `span` the current span (its children attach to it) without ending it on exit."""
    return _NOTHING if span is None else use_span(span, end_on_exit=False)


def storing(frames: Sequence[Span | None]) -> AbstractContextManager[Any]:
    """The span of one group commit: a child of the batch's first frame, linked to the others."""
    if _tracer is None:
        return _NOTHING
    spans = [span for span in frames if span is not None]
    return _tracer.start_as_current_span(
        "chat.messages.store",
        context=set_span_in_context(spans[0]) if spans else None,
        links=[Link(span.get_span_context()) for span in spans[1:]],
        attributes={"chat.batch.size": len(frames)},
    )


@contextmanager
def _publishing(group: str, event: MutableMapping[str, Any]) -> Iterator[None]:
    assert _tracer is not None
    with _tracer.start_as_current_span(
        f"chat.publish {group}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "django-channels",
            "messaging.operation.type": "send",
            "messaging.destination.name": group,
        },
    ):
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        event[TRACE_CONTEXT_KEY] = carrier
        yield


def publishing(group: str, event: MutableMapping[str, Any]) -> AbstractContextManager[Any]:
    """The span of one fan-out; stores its context in `event` for the receivers."""
    return _NOTHING if _tracer is None else _publishing(group, event)


def delivering(event: Mapping[str, Any], connection: Span | None) -> AbstractContextManager[Any]:
    """A receiving socket's handling of a layer event: a child of the publish that sent it, so one trace
    holds sender and receivers, and linked to this socket's connection span."""
    if _tracer is None:
        return _NOTHING
    carrier = event.get(TRACE_CONTEXT_KEY)
    context = _propagator.extract(carrier) if isinstance(carrier, dict) else None
    return _tracer.start_as_current_span(
        "chat.ws.deliver",
        context=context,
        kind=SpanKind.CONSUMER,
        links=[Link(connection.get_span_context())] if connection is not None else None,
        attributes={"messaging.system": "django-channels", "messaging.operation.type": "process"},
    )
