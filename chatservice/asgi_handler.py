"""Django's ASGI handler, with each request's synchronous work done in one hop to a pooled thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse

from chatservice.dbthreads import DatabaseThreads
from chatservice.flow_control import ResponseFlow

_threads = DatabaseThreads("http", lambda: settings.CHAT["HTTP_DB_THREADS"])


class OneHopASGIHandler(ASGIHandler):
    """Runs the middleware chain, the view and its view middleware synchronously, in one hop to one of
    the worker's HTTP threads, as WSGIHandler does in its thread.

    Every middleware and view of this service is synchronous. Django's ASGIHandler loads the chain in
    async mode and adapts each sync piece on its own: a hop to the request's thread for the chain, one
    back to the event loop for the view layer, one per view middleware (CSRF, ...), one for the view; and
    the request's thread is a new one with a new database connection. Here the whole chain is one call
    on a pooled thread that keeps its connection (chatservice.dbthreads). Async views (/health) still
    work: the sync chain calls them through async_to_sync, as under WSGI. Measured: README, "REST latency".
    """

    async def __call__(self, scope: dict[str, Any], receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponse:
        return await _threads.wrap(self.get_response)(request)


STREAM_BATCH_BYTES = 64 * 1024  # what one hop to a thread produces of a streamed body before it is sent


def streamed(chunks: Iterator[str], flow: ResponseFlow | None = None) -> AsyncIterator[bytes]:
    """A synchronous body generator (which may query the database) as the async iterator ASGI wants, pulled
    about 64 KiB at a time on the worker's HTTP threads, and only while the connection can take more
    (`flow`, chatservice.flow_control). Django's handler would otherwise take a synchronous iterator whole
    into memory before sending a byte (StreamingHttpResponse.__aiter__)."""

    def take() -> bytes:
        batch, size = [], 0
        for chunk in chunks:
            data = chunk.encode()
            batch.append(data)
            size += len(data)
            if size >= STREAM_BATCH_BYTES:
                break
        return b"".join(batch)

    async def pull() -> AsyncIterator[bytes]:
        try:
            while True:
                if flow is not None:
                    flow.start()
                    await flow.writable()
                part = await _threads.wrap(take)()
                if not part:
                    return
                yield part
        finally:
            if flow is not None:
                flow.stop()

    return pull()


def close_http_threads() -> None:
    """Close the HTTP threads' database connections (tests, before the test database is dropped)."""
    _threads.close()
