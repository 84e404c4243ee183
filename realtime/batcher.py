"""Group commit for one worker: message frames that arrive while a batch is being written are stored
together in the next one, one transaction for all of them (messaging.services.messages_store).

Nothing waits on a timer, so a lone message is written at once; under load, batches grow and the cost
per message falls. Each sender is told its result (synchronously, in order) before the batch's events are
published, so a socket always knows its own message before its event can arrive (realtime.delivery
relies on this).

One message never fails the others: the service answers each request on its own (a refusal is that
request's result), and if storing the whole batch raises, its requests are stored again one by one, so
only the one that fails again gets `unavailable`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.trace import Span

from chatservice.errors import ServiceError
from messaging.services import NO_ROUTING, Publication, Routing, SendRequest, Sent, messages_store
from realtime import tracing
from realtime.broadcast import publish_all_now
from realtime.dbpool import db
from realtime.registry import per_loop

logger = logging.getLogger(__name__)

# Messages written in one transaction at most: bounds a batch's lock time and its event size.
MAX_SEND_BATCH = 200

SendResult = Sent | ServiceError | Exception
ResultHandler = Callable[[SendResult], None]


@dataclass(frozen=True)
class _Pending:
    request: SendRequest
    on_result: ResultHandler
    span: Span | None


class SendBatcher:
    def __init__(self) -> None:
        self.queue: list[_Pending] = []
        self.task: asyncio.Task[None] | None = None

    def submit(self, request: SendRequest, on_result: ResultHandler, span: Span | None = None) -> None:
        """Queue a send; `on_result` gets a Sent, a ServiceError or another exception, on the event loop.
        The batcher ends the frame's `span` once the message is stored and announced."""
        self.queue.append(_Pending(request, on_result, span))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[:MAX_SEND_BATCH], self.queue[MAX_SEND_BATCH:]
            spans = [pending.span for pending in batch]
            with tracing.storing(spans):
                results, publications, routing = await self._store([pending.request for pending in batch])
            for pending, result in zip(batch, results, strict=True):
                if isinstance(result, ServiceError):
                    tracing.frame_refused(pending.span, result.code)
                elif isinstance(result, Exception):
                    tracing.frame_refused(pending.span, "unavailable")
                try:
                    pending.on_result(result)
                except Exception as exc:
                    logger.warning("send result handler failed: %s", exc, exc_info=True)
            # The fan-out belongs to the frame that opened the batch (the store span links the others).
            with tracing.active(next((span for span in spans if span is not None), None)):
                await publish_all_now(publications)
            for span in spans:
                tracing.end(span)
            # Follow-up work (auto-assignment, reopen routing), not part of storing the frames: their
            # spans have ended, as they did before it existed.
            if routing is not NO_ROUTING:
                await db(routing.run)()

    async def _store(self, requests: list[SendRequest]) -> tuple[list[SendResult], list[Publication], Routing]:
        try:
            results, publications, routing = await db(messages_store)(requests)
            return list(results), publications, routing
        except Exception as exc:
            if len(requests) == 1:
                logger.warning("storing a message failed: %s", exc, exc_info=True)
                return [exc], [], NO_ROUTING
            logger.warning("storing a batch of %d failed (%s); storing them one by one", len(requests), exc)
        results: list[SendResult] = []
        publications: list[Publication] = []
        reopened: frozenset[str] = frozenset()
        queued: frozenset[str] = frozenset()
        for request in requests:
            (result,), more, routing = await self._store([request])
            results.append(result)
            publications += more
            reopened, queued = reopened | routing.reopened, queued | routing.queued
        return results, publications, Routing(reopened, queued) if reopened or queued else NO_ROUTING


send_batcher = per_loop(SendBatcher)
