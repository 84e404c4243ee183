"""Who has sockets open, across every worker: the per-user socket cap, and presence per conversation.

A person is their (role, user id) everywhere here, never the id alone.

* **Socket cap.** Each socket claims a place in its user's set before it is accepted; a claim beyond
  CHAT_WS_MAX_SOCKETS_PER_USER is refused (close code 4429), whichever workers hold the others.
* **Presence.** `user_joined` goes out when a user's first socket in a conversation opens. When their
  last one closes, `user_left` goes out only if none has opened again within CHAT_WS_PRESENCE_GRACE_S:
  a reload or a reconnect after a network blip announces nothing. The closing socket leaves a marker
  holding a token; a socket that opens in the grace period deletes it (and announces nothing), and the
  grace timer announces the departure only if its own token is still there.

With REDIS_URL each set is a Redis sorted set of socket ids scored by their expiry, and each step is one
atomic command (MULTI or a short Lua script), so exactly one socket sees "first", "last" or "over the
cap". Entries are refreshed while the socket lives (PresenceRefresher), so the sockets of a killed worker
drop out after PRESENCE_TTL_S instead of counting forever. Without Redis (one process), the same rules on
in-process sets.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from typing import Protocol

import redis
import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from django.conf import settings

from chatservice.authentication import Principal
from desk.services import agents_seen
from realtime import broadcast
from realtime.dbpool import db
from realtime.registry import PeriodicJob, SocketRegistry, per_loop

logger = logging.getLogger(__name__)

# A live socket refreshes its entries this often; a dead worker's sockets expire after the TTL.
PRESENCE_REFRESH_S = 30
PRESENCE_TTL_S = 3 * PRESENCE_REFRESH_S
# Presence commands share this many connections per worker; callers wait for one (up to the timeout)
# instead of failing when thousands of sockets open at once.
PRESENCE_CONNECTIONS = 32
PRESENCE_WAIT_S = 10


class Presence(Protocol):
    async def claim_socket(self, person: Principal, socket_id: str, limit: int) -> bool:
        """Count the socket against its user's cap; False (and nothing counted) when the cap is reached."""

    async def release_socket(self, person: Principal, socket_id: str) -> None: ...

    async def join(self, conversation_id: str, person: Principal, socket_id: str) -> bool:
        """True when the others should be told the person came: the first socket, not a quick return."""

    async def leave(self, conversation_id: str, person: Principal, socket_id: str, grace_s: float) -> str | None:
        """A token when this was the person's last socket there: confirm_leave(token) after the grace."""

    async def confirm_leave(self, conversation_id: str, person: Principal, token: str) -> bool:
        """True when the person is still gone after the grace (and nobody else announced it)."""

    async def refresh(self, conversation_id: str, person: Principal, socket_id: str) -> None: ...

    def online(self, person: Principal) -> bool:
        """Whether the person has a socket open, on any worker (blocking: for job threads, not the loop)."""


def _who(person: Principal) -> str:
    return f"{person.role}:{person.user_id}"


class LocalPresence:
    """One process: in-process sets with the same rules."""

    def __init__(self) -> None:
        self.sockets: defaultdict[str, set[str]] = defaultdict(set)
        self.present: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self.leaving: dict[tuple[str, str], str] = {}

    async def claim_socket(self, person: Principal, socket_id: str, limit: int) -> bool:
        owned = self.sockets[_who(person)]
        if socket_id not in owned and len(owned) >= limit:
            return False
        owned.add(socket_id)
        return True

    async def release_socket(self, person: Principal, socket_id: str) -> None:
        owned = self.sockets.get(_who(person))
        if owned is not None:
            owned.discard(socket_id)
            if not owned:
                del self.sockets[_who(person)]

    async def join(self, conversation_id: str, person: Principal, socket_id: str) -> bool:
        key = (conversation_id, _who(person))
        self.present[key].add(socket_id)
        returned = self.leaving.pop(key, None) is not None
        return len(self.present[key]) == 1 and not returned

    async def leave(self, conversation_id: str, person: Principal, socket_id: str, grace_s: float) -> str | None:
        key = (conversation_id, _who(person))
        sockets = self.present.get(key)
        if sockets is None or socket_id not in sockets:
            return None
        sockets.discard(socket_id)
        if sockets:
            return None
        del self.present[key]
        token = self.leaving[key] = secrets.token_hex(8)
        return token

    async def confirm_leave(self, conversation_id: str, person: Principal, token: str) -> bool:
        key = (conversation_id, _who(person))
        if self.leaving.get(key) != token:
            return False
        del self.leaving[key]
        return not self.present.get(key)

    async def refresh(self, conversation_id: str, person: Principal, socket_id: str) -> None:
        return None

    def online(self, person: Principal) -> bool:
        return bool(self.sockets.get(_who(person)))  # one dict read: safe from another thread


# Claim a place in a user's socket set unless it is full. KEYS: the set. ARGV: now, expiry, limit, socket, ttl.
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[4]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
# Remove a socket; if it was the last, leave the marker. KEYS: presence set, marker. ARGV: socket, now, token, ms.
_LEAVE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if removed == 1 and redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0
"""
# After the grace: gone if the marker is still ours and no socket came back. KEYS: presence set, marker.
# ARGV: token, now.
_CONFIRM_LEAVE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) == 0 then
  return 1
end
return 0
"""


class RedisPresence:
    def __init__(self, url: str) -> None:
        self.url = url
        self._clients = per_loop(self._new_client)  # one client per event loop (tests run several loops)
        self._blocking: redis.Redis | None = None  # for `online`, from job threads

    def _new_client(self) -> aioredis.Redis:
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=PRESENCE_CONNECTIONS, timeout=PRESENCE_WAIT_S
        )
        return aioredis.Redis(connection_pool=pool)

    @staticmethod
    def _sockets_key(person: Principal) -> str:
        return f"chat:sockets:{_who(person)}"

    @staticmethod
    def _presence_key(conversation_id: str, person: Principal) -> str:
        return f"chat:presence:{conversation_id}:{_who(person)}"

    @staticmethod
    def _leaving_key(conversation_id: str, person: Principal) -> str:
        return f"chat:leaving:{conversation_id}:{_who(person)}"

    async def claim_socket(self, person: Principal, socket_id: str, limit: int) -> bool:
        now = time.time()
        claimed = await self._clients().eval(
            _CLAIM, 1, self._sockets_key(person), now, now + PRESENCE_TTL_S, limit, socket_id, PRESENCE_TTL_S
        )
        return bool(claimed)

    async def release_socket(self, person: Principal, socket_id: str) -> None:
        await self._clients().zrem(self._sockets_key(person), socket_id)

    async def join(self, conversation_id: str, person: Principal, socket_id: str) -> bool:
        key, now = self._presence_key(conversation_id, person), time.time()
        async with self._clients().pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)  # members of dead workers
            pipe.zadd(key, {socket_id: now + PRESENCE_TTL_S})
            pipe.zcard(key)
            pipe.expire(key, PRESENCE_TTL_S)
            pipe.delete(self._leaving_key(conversation_id, person))
            _, _, count, _, returned = await pipe.execute()
        return count == 1 and not returned

    async def leave(self, conversation_id: str, person: Principal, socket_id: str, grace_s: float) -> str | None:
        token = secrets.token_hex(8)
        # The marker outlives the grace by a TTL, so a late timer still finds it; a dead worker's expires.
        marker_ms = int((grace_s + PRESENCE_TTL_S) * 1000)
        keys = (self._presence_key(conversation_id, person), self._leaving_key(conversation_id, person))
        last = await self._clients().eval(_LEAVE, 2, *keys, socket_id, time.time(), token, marker_ms)
        return token if last else None

    async def confirm_leave(self, conversation_id: str, person: Principal, token: str) -> bool:
        keys = (self._presence_key(conversation_id, person), self._leaving_key(conversation_id, person))
        return bool(await self._clients().eval(_CONFIRM_LEAVE, 2, *keys, token, time.time()))

    def online(self, person: Principal) -> bool:
        if self._blocking is None:
            self._blocking = redis.Redis.from_url(self.url, socket_timeout=PRESENCE_WAIT_S)
        # Entries of a killed worker's sockets have expired scores: not counted.
        return bool(self._blocking.zcount(self._sockets_key(person), time.time(), "+inf"))

    async def refresh(self, conversation_id: str, person: Principal, socket_id: str) -> None:
        key, expiry = self._presence_key(conversation_id, person), time.time() + PRESENCE_TTL_S
        sockets_key = self._sockets_key(person)
        async with self._clients().pipeline(transaction=True) as pipe:
            pipe.zadd(key, {socket_id: expiry}, xx=True)
            pipe.expire(key, PRESENCE_TTL_S)
            pipe.zadd(sockets_key, {socket_id: expiry}, xx=True)
            pipe.expire(sockets_key, PRESENCE_TTL_S)
            await pipe.execute()


_presence: Presence | None = None


def get_presence() -> Presence:
    global _presence
    if _presence is None:
        url = settings.CHAT.get("REDIS_URL")
        _presence = RedisPresence(url) if url else LocalPresence()
    return _presence


# ---- announcing ------------------------------------------------------------------------------------

# Grace timers of sockets that have closed: held here so they run to the end (the event loop keeps only
# weak references to tasks), on the worker where the socket closed.
_departures = per_loop(set)


async def socket_joined(conversation_id: str, person: Principal, socket_id: str, *, announce: bool) -> None:
    """Record the socket; tell the others when the person arrived (or when `announce`: newly staff)."""
    if await get_presence().join(conversation_id, person, socket_id) or announce:
        await broadcast.presence_changed(conversation_id, person, joined=True)


async def socket_left(conversation_id: str, person: Principal, socket_id: str) -> None:
    """Record the socket's end; if it was the person's last there, announce it after the grace."""
    grace_s = settings.CHAT["WS_PRESENCE_GRACE_S"]
    token = await get_presence().leave(conversation_id, person, socket_id, grace_s)
    if token is None:
        return
    departure = asyncio.get_running_loop().create_task(_depart_after(grace_s, conversation_id, person, token))
    pending = _departures()
    pending.add(departure)
    departure.add_done_callback(pending.discard)


async def _depart_after(grace_s: float, conversation_id: str, person: Principal, token: str) -> None:
    try:
        if grace_s > 0:
            await asyncio.sleep(grace_s)
        if await get_presence().confirm_leave(conversation_id, person, token):
            await broadcast.presence_changed(conversation_id, person, joined=False)
    except Exception as exc:
        logger.warning("announcing that %s left %s failed: %s", person, conversation_id, exc, exc_info=True)


# ---- keeping live sockets' entries alive -----------------------------------------------------------


class PresenceRefresher:
    """Every PRESENCE_REFRESH_S: each open socket of this worker renews its presence and socket-cap
    entries and re-joins its conversation's group (the core layer expires group members too)."""

    def __init__(self, registry: SocketRegistry) -> None:
        self.registry = registry

    async def refresh(self) -> None:
        presence, layer = get_presence(), get_channel_layer()
        staff: set[str] = set()
        for socket in self.registry.all():
            await presence.refresh(socket.conversation_id, socket.principal, socket.channel_name)
            await layer.group_add(broadcast.conversation_group(socket.conversation_id), socket.channel_name)
            if socket.principal.is_admin:
                staff.add(socket.principal.user_id)
        if staff:  # an agent with a staff socket open is not away (desk.assignment.mark_away)
            await db(agents_seen)(sorted(staff))


def presence_refresh_job(registry: SocketRegistry) -> PeriodicJob:
    return PeriodicJob("presence refresh", lambda: PRESENCE_REFRESH_S, PresenceRefresher(registry).refresh, registry)
