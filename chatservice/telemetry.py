"""OpenTelemetry tracing, set up once per process when OTEL_TRACES_ENABLED is true; otherwise nothing
is installed and the service's own trace points (realtime.tracing) are a flag test each.

What is traced: HTTP requests (the Django instrumentation, which traces ASGI requests because its ASGI
package is installed), WebSocket connections and frames, storage and fan-out (realtime.tracing), and
beneath them the database (sqlite3, psycopg, pymongo) and Redis calls. What never is: tokens (redacted
from every recorded URL), headers (header capture is switched off), message content (no statement
parameters, Redis arguments sanitised to `?`, MongoDB commands without their documents).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from chatservice.config import TracingConfig
from realtime import tracing

logger = logging.getLogger(__name__)

# Query parameters whose values never reach a span. `token` is how WebSocket clients authenticate (the
# seed's protocol); the others are the usual names of the same thing.
SECRET_QUERY_PARAMETERS = ("token", "access_token", "jwt")
_SECRET_IN_QUERY = re.compile(r"(?i)(^|[?&])(" + "|".join(SECRET_QUERY_PARAMETERS) + r")=[^&#]*")
REDACTED = "REDACTED"
# Attributes in which the HTTP instrumentations record the URL or its query string.
URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.query")
# Probes called every few seconds by orchestrators and scrapers: a trace each would drown the rest.
EXCLUDED_URLS = "/health,/live,/metrics"
# Header capture is opt-in through these variables; it would record Authorization, so it stays off.
HEADER_CAPTURE_VARIABLES = (
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
)

_provider: TracerProvider | None = None


def redact(value: str) -> str:
    return _SECRET_IN_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}={REDACTED}", value)


def _redact_request_urls(span: Any, request: Any) -> None:
    """Django instrumentation's request hook: it has already recorded the URL, query string included."""
    attributes = getattr(span, "attributes", None) or {}
    for name in URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and "=" in value:
            span.set_attribute(name, redact(value))


class DropOrphanClientCalls(Sampler):
    """Database and Redis calls made outside any request, frame or delivery are the channel layer's
    polling, the gap sweep and presence refreshes: background noise, dropped. Everything else is kept
    and follows its parent."""

    def __init__(self) -> None:
        self._inner = ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind == SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "DropOrphanClientCalls(ParentBased(ALWAYS_ON))"


def configure(config: TracingConfig, *, processor: SpanProcessor | None = None) -> bool:
    """Install tracing for this process if `config` enables it (or a `processor` is given, for tests).
    Must run before Django builds its middleware chain. Returns whether tracing is on."""
    global _provider
    if _provider is not None:
        return True
    if not config.enabled and processor is None:
        return False
    for name in HEADER_CAPTURE_VARIABLES:
        if os.environ.pop(name, None):
            logger.warning("%s ignored: headers carry credentials and are never recorded", name)
    if processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=config.endpoint))
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: config.service_name}), sampler=DropOrphanClientCalls()
    )
    provider.add_span_processor(processor)
    # Handed to every instrumentation rather than installed globally, so tests can configure and shut
    # tracing down more than once per process (the global provider can be set only once).
    _instrument(provider)
    _provider = provider
    tracing.enable(provider.get_tracer("careforall.chat"))
    # Spans still queued in the batch processor are sent when the worker exits (Daphne returns from
    # its main loop on SIGTERM, so exit handlers run).
    atexit.register(provider.shutdown)
    return True


def _instrumentors() -> tuple[Any, Any, Any, Any, Any]:
    """Django, Redis, SQLite, psycopg and PyMongo instrumentors (each class is a singleton), imported
    only when tracing is configured."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    return (
        DjangoInstrumentor(),
        RedisInstrumentor(),
        SQLite3Instrumentor(),
        PsycopgInstrumentor(),
        PymongoInstrumentor(),
    )


def _instrument(provider: TracerProvider) -> None:
    django, redis, sqlite3, psycopg, pymongo = _instrumentors()
    django.instrument(tracer_provider=provider, request_hook=_redact_request_urls, excluded_urls=EXCLUDED_URLS)
    redis.instrument(tracer_provider=provider)  # arguments are recorded as `?` only
    # Statements with placeholders; parameters are not captured.
    sqlite3.instrument(tracer_provider=provider)
    psycopg.instrument(tracer_provider=provider, enable_commenter=False, capture_parameters=False)
    # The command name, never its documents.
    pymongo.instrument(tracer_provider=provider, capture_statement=False)


def shutdown() -> None:
    """Flush and stop (tests; a worker does this at exit)."""
    global _provider
    if _provider is None:
        return
    for instrumentor in _instrumentors():
        instrumentor.uninstrument()
    tracing.disable()
    _provider.shutdown()
    _provider = None
