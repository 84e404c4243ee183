"""The gap sweep: each worker checks, every CHAT_WS_GAP_SWEEP_S, whether its sockets are behind the
database, for messages whose event never arrived (lost by the channel layer, or published while Redis
was away) with nothing after them to reveal the gap.

One query per 500 conversations with an open socket here; a socket that is behind gets a `chat.catchup`
on its own channel, so the catch-up is handled in order with its other events.
"""

from __future__ import annotations

from channels.layers import get_channel_layer
from django.conf import settings

from conversations import selectors
from realtime.dbpool import db
from realtime.registry import PeriodicJob, SocketRegistry

# Conversations per last_seq query: one IN list a database plans as an index lookup.
SWEEP_QUERY_SIZE = 500


class GapSweeper:
    def __init__(self, registry: SocketRegistry) -> None:
        self.registry = registry

    async def sweep(self) -> None:
        conversation_ids = self.registry.conversation_ids()
        layer = get_channel_layer()
        for start in range(0, len(conversation_ids), SWEEP_QUERY_SIZE):
            last_seqs = await db(selectors.last_seqs)(conversation_ids[start : start + SWEEP_QUERY_SIZE])
            for conversation_id, last_seq in last_seqs.items():
                for socket in self.registry.sockets_of(conversation_id):
                    if socket.behind(last_seq):
                        await layer.send(socket.channel_name, {"type": "chat.catchup", "upto": last_seq})


def gap_sweep_job(registry: SocketRegistry) -> PeriodicJob:
    return PeriodicJob("gap sweep", lambda: settings.CHAT["WS_GAP_SWEEP_S"], GapSweeper(registry).sweep, registry)
