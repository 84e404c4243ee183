"""Who has a socket open on a conversation, across every worker.

`user_joined` goes out when a user's first socket opens and `user_left` when their last one closes,
wherever those sockets live. With REDIS_URL each socket is a member of a Redis sorted set per
(conversation, user) scored by its expiry; joins and leaves are atomic (MULTI) so exactly one socket
sees "first" or "last". Members are refreshed while the socket lives, so the sockets of a killed worker
drop out after PRESENCE_TTL_S instead of counting forever. Without Redis (one process), a counter.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Protocol

import redis.asyncio as aioredis
from django.conf import settings

# A live socket refreshes its membership this often; a dead worker's sockets expire after the TTL.
PRESENCE_REFRESH_S = 30
PRESENCE_TTL_S = 3 * PRESENCE_REFRESH_S
# Presence commands share this many connections per worker; callers wait for one (up to the timeout)
# instead of failing when thousands of sockets open at once.
PRESENCE_CONNECTIONS = 32
PRESENCE_WAIT_S = 10


class Presence(Protocol):
    async def join(self, conversation_id: str, user_id: str, socket_id: str) -> bool: ...
    async def leave(self, conversation_id: str, user_id: str, socket_id: str) -> bool: ...
    async def refresh(self, conversation_id: str, user_id: str, socket_id: str) -> None: ...


class LocalPresence:
    """One process: a count of open sockets per (conversation, user)."""

    def __init__(self) -> None:
        self.sockets: Counter[tuple[str, str]] = Counter()

    async def join(self, conversation_id: str, user_id: str, socket_id: str) -> bool:
        self.sockets[conversation_id, user_id] += 1
        return self.sockets[conversation_id, user_id] == 1

    async def leave(self, conversation_id: str, user_id: str, socket_id: str) -> bool:
        key = (conversation_id, user_id)
        self.sockets[key] -= 1
        if self.sockets[key] <= 0:
            del self.sockets[key]
            return True
        return False

    async def refresh(self, conversation_id: str, user_id: str, socket_id: str) -> None:
        return None


class RedisPresence:
    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: dict[int, aioredis.Redis] = {}  # one client per event loop (tests run several loops)

    def _client(self) -> aioredis.Redis:
        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=PRESENCE_CONNECTIONS, timeout=PRESENCE_WAIT_S
            )
            self._clients[loop] = aioredis.Redis(connection_pool=pool)
        return self._clients[loop]

    @staticmethod
    def _key(conversation_id: str, user_id: str) -> str:
        return f"chat:presence:{conversation_id}:{user_id}"

    async def join(self, conversation_id: str, user_id: str, socket_id: str) -> bool:
        key, now = self._key(conversation_id, user_id), time.time()
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)  # members of dead workers
            pipe.zadd(key, {socket_id: now + PRESENCE_TTL_S})
            pipe.zcard(key)
            pipe.expire(key, PRESENCE_TTL_S)
            _, _, count, _ = await pipe.execute()
        return count == 1

    async def leave(self, conversation_id: str, user_id: str, socket_id: str) -> bool:
        key, now = self._key(conversation_id, user_id), time.time()
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.zrem(key, socket_id)
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zcard(key)
            removed, _, count = await pipe.execute()
        return bool(removed) and count == 0

    async def refresh(self, conversation_id: str, user_id: str, socket_id: str) -> None:
        key = self._key(conversation_id, user_id)
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.zadd(key, {socket_id: time.time() + PRESENCE_TTL_S}, xx=True)
            pipe.expire(key, PRESENCE_TTL_S)
            await pipe.execute()


_presence: Presence | None = None


def get_presence() -> Presence:
    global _presence
    if _presence is None:
        url = settings.CHAT.get("REDIS_URL")
        _presence = RedisPresence(url) if url else LocalPresence()
    return _presence
