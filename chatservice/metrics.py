"""Prometheus metrics of one worker process, served as text at GET /metrics (chatservice.views.metrics).

Pull, not OTLP: each Daphne worker is its own scrape target and Prometheus sums across them, so no
collector has to run beside the service and a worker that stops answering shows up as a failed scrape
(`up == 0`). Values are per process and start at zero when the process starts; counters are meant for
`rate()` / `increase()`, which handle those restarts.

Call sites are one line: each hook below takes plain arguments. Label children are bound once (at import,
or the first time an error code is seen), so a hook on the message path is a dict lookup and an increment
under prometheus_client's lock: no label dict and no string formatting per message.
"""

from __future__ import annotations

import logging
import time
from typing import Literal, get_args

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# The `_created` series (one more timestamp per counter and histogram) double what a scrape carries and
# tell nothing `process_start_time_seconds` does not: every series here is created at start-up.
disable_created_metrics()

# Upper bounds in seconds: fine around the 50 ms p99 target of the WebSocket benchmark, coarse beyond
# one second, where a socket is being served from the gap sweep rather than live.
FANOUT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

OPEN_SOCKETS = Gauge("chat_ws_connections", "WebSocket connections open on this worker (accepted and authorized).")
MESSAGES_PERSISTED = Counter(
    "chat_messages_persisted", "Messages committed to the database by this worker, whatever the transport."
)
FANOUT_LATENCY = Histogram(
    "chat_fanout_latency_seconds",
    "From publishing a stored message's event (after commit) to a receiving socket sending it to its client.",
    buckets=FANOUT_BUCKETS_S,
)
ERROR_FRAMES = Counter("chat_ws_error_frames", "`error` frames sent to WebSocket clients, by code.", ["code"])
RATE_LIMITED = Counter(
    "chat_ws_rate_limited_frames",
    "Inbound WebSocket frames refused by a rate limit, by the bucket that refused them.",
    ["kind"],
)
SLOW_SOCKETS = Counter(
    "chat_ws_slow_closed",
    "WebSocket connections closed (4008) because their client did not read and their unsent frames exceeded "
    "CHAT_WS_MAX_BUFFERED_BYTES or CHAT_WS_MAX_BUFFERED_FRAMES.",
)
LAYER_DROPS = Counter(
    "chat_channel_layer_drops",
    "Events the channel layer did not deliver: publishes that failed after the retry (reason=publish_failed, "
    "one per event) and deliveries refused at a full channel, as channels-redis counts them (reason=over_capacity).",
    ["reason"],
)
ATTACHMENTS = Counter(
    "chat_attachments_stored", "Attachments accepted and stored, by content type (the service's own list).", ["type"]
)
ATTACHMENT_REFUSALS = Counter(
    "chat_attachments_refused",
    "Uploads refused, by error code (too large, type, infected, scanner down, ...).",
    ["code"],
)

# First response (a conversation's creation to the first staff reply), from a minute to two days.
FIRST_RESPONSE_BUCKETS_S = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0)
FIRST_RESPONSE = Histogram(
    "chat_first_response_seconds",
    "Time from a conversation's creation to its first staff reply, observed once per conversation when "
    "the reply commits (by the worker that stored it).",
    buckets=FIRST_RESPONSE_BUCKETS_S,
)

# The buckets of realtime.consumers: the per-socket one on message frames and on read frames, the
# per-user one (message frames, shared by a user's sockets), the typing one.
RateLimitKind = Literal["message", "read", "user", "typing"]
RATE_LIMIT_KINDS: tuple[RateLimitKind, ...] = get_args(RateLimitKind)
LayerDropReason = Literal["publish_failed", "over_capacity"]

_rate_limited = {kind: RATE_LIMITED.labels(kind) for kind in RATE_LIMIT_KINDS}
_layer_drops = {reason: LAYER_DROPS.labels(reason) for reason in get_args(LayerDropReason)}
# Codes are the service's own (frame, validation and service errors), never client text, so the label
# set stays small; each code's child is bound the first time it is used.
_error_frames: dict[str, Counter] = {}


def socket_opened() -> None:
    OPEN_SOCKETS.inc()


def socket_closed() -> None:
    OPEN_SOCKETS.dec()


def slow_socket_closed() -> None:
    SLOW_SOCKETS.inc()


def messages_persisted(count: int) -> None:
    """Call once a transaction that stored `count` messages has committed."""
    MESSAGES_PERSISTED.inc(count)


def fanout_delivered(published_at: float) -> None:
    """A receiving socket has just sent a live message; `published_at` is the event's wall-clock time
    (time.time() of the publisher, maybe another worker: clocks of different hosts add their skew)."""
    FANOUT_LATENCY.observe(max(0.0, time.time() - published_at))


def first_responses(seconds: list[float]) -> None:
    for value in seconds:
        FIRST_RESPONSE.observe(value)


def error_frame(code: str) -> None:
    child = _error_frames.get(code)
    if child is None:
        child = _error_frames[code] = ERROR_FRAMES.labels(code)
    child.inc()


def attachment_stored(content_type: str) -> None:
    ATTACHMENTS.labels(content_type).inc()


def attachment_refused(code: str) -> None:
    ATTACHMENT_REFUSALS.labels(code).inc()


def rate_limited(kind: RateLimitKind) -> None:
    _rate_limited[kind].inc()


def layer_dropped(reason: LayerDropReason, count: int = 1) -> None:
    _layer_drops[reason].inc(count)


# channels-redis reports deliveries refused at a full channel (RedisChannelLayer's group_send) only by
# logging this message, the count as its first argument; the handler below turns it into the counter.
CHANNELS_REDIS_OVER_CAPACITY = "%s of %s channels over capacity in group %s"


class ChannelLayerDropCounter(logging.Handler):
    """Attached (settings.LOGGING) to the `channels_redis.core` logger, which is opened to INFO so the
    over-capacity record is created at all. A handler rather than a filter: configuring logging again
    replaces a logger's handlers but adds to its filters, which would count every drop twice. The record
    goes on to the console handler, whose level is LOG_LEVEL."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == CHANNELS_REDIS_OVER_CAPACITY and isinstance(record.args, tuple) and record.args:
            layer_dropped("over_capacity", int(record.args[0]))


# ---- business figures, read from the database at scrape time ------------------------------------------

logger = logging.getLogger(__name__)


class SupportQueueCollector(Collector):
    """The support queue as it stands (reports.selectors.waiting_now: three reads on indexes), for alerts
    such as "someone has waited over an hour". Every worker reports the same database-wide values: take
    max(), not sum(), across instances. A scrape while the database is unreachable leaves these out and
    logs why; the worker's own metrics are still served."""

    def describe(self) -> list[GaugeMetricFamily]:
        # Declared without a query (registration would otherwise collect, at import).
        return list(self._families(0, 0, 0.0))

    def collect(self) -> list[GaugeMetricFamily]:
        from django.utils import timezone

        from reports.selectors import waiting_now

        try:
            state = waiting_now()
        except Exception as exc:  # whatever the database says, the scrape goes on
            logger.warning("support queue metrics unavailable: %s: %s", type(exc).__name__, exc)
            return []
        oldest = state.oldest["waiting_since"] if state.oldest else None
        age = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0
        return list(self._families(state.waiting, state.unassigned, age))

    @staticmethod
    def _families(waiting: int, unassigned: int, age: float) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "chat_conversations_waiting",
                "ACTIVE conversations with a donor message no staff reply answered yet.",
                value=waiting,
            ),
            GaugeMetricFamily(
                "chat_conversations_unassigned",
                "ACTIVE conversations with nobody assigned (the queue).",
                value=unassigned,
            ),
            GaugeMetricFamily(
                "chat_oldest_waiting_seconds",
                "How long the longest-waiting conversation has waited (0: nobody waits).",
                value=age,
            ),
        )


REGISTRY.register(SupportQueueCollector())
