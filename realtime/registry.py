"""The sockets open in this worker, by conversation, and the periodic jobs that walk them.

Every per-process object of the real-time layer exists once per event loop (`per_loop`): a worker has
one loop, and the tests run one per test.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from chatservice.authentication import Principal

logger = logging.getLogger(__name__)

T = TypeVar("T")


def per_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter of one `factory()` instance per running event loop."""
    instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        instance = instances.get(loop)
        if instance is None:
            instance = instances[loop] = factory()
        return instance

    return get


class OpenSocket(Protocol):
    """What the periodic jobs know of a socket."""

    conversation_id: str
    channel_name: str
    principal: Principal

    def behind(self, last_seq: int) -> bool:
        """Whether the socket has not yet sent messages up to `last_seq`."""


class PeriodicJob:
    """Runs `body` every `interval()` seconds while the registry holds sockets. A failure is logged at
    WARNING with its message and traceback, and the job goes on at the next interval."""

    def __init__(
        self, name: str, interval: Callable[[], float], body: Callable[[], Awaitable[None]], registry: SocketRegistry
    ) -> None:
        self.name = name
        self.interval = interval
        self.body = body
        self.registry = registry
        self.task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._loop())

    async def run_once(self) -> bool:
        """One run of the body; False when it failed (and was logged)."""
        try:
            await self.body()
        except Exception as exc:  # Redis or the database away: the next run catches up
            logger.warning("%s failed: %s; retrying in %g s", self.name, exc, self.interval(), exc_info=True)
            return False
        return True

    async def _loop(self) -> None:
        while self.registry:
            await asyncio.sleep(self.interval())
            await self.run_once()


class SocketRegistry:
    def __init__(self, jobs: list[Callable[[SocketRegistry], PeriodicJob]]) -> None:
        self._by_conversation: dict[str, weakref.WeakSet[OpenSocket]] = {}
        self.jobs = [make(self) for make in jobs]

    def add(self, socket: OpenSocket) -> None:
        self._by_conversation.setdefault(socket.conversation_id, weakref.WeakSet()).add(socket)
        for job in self.jobs:
            job.ensure_running()

    def remove(self, socket: OpenSocket) -> None:
        members = self._by_conversation.get(socket.conversation_id)
        if members is not None:
            members.discard(socket)
            if not members:
                del self._by_conversation[socket.conversation_id]

    def conversation_ids(self) -> list[str]:
        return list(self._by_conversation)

    def sockets_of(self, conversation_id: str) -> list[OpenSocket]:
        return list(self._by_conversation.get(conversation_id, ()))

    def all(self) -> list[OpenSocket]:
        return [socket for members in list(self._by_conversation.values()) for socket in list(members)]

    def __bool__(self) -> bool:
        return bool(self._by_conversation)
