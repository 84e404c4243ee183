"""The hash chain: what a record's hash covers, computed alike when it is written and when it is checked.

A record's hash is sha256 over one canonical JSON document (sorted keys, no spaces, UTF-8) of its
sequence number, the previous record's hash, the actor (id and role), the action, the target (type and
id), its time and its details. Anything else about a row (its primary key, the database's own fields) is
not covered: a record is identified by its place in the chain.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

# The `prev_hash` of record 1: no record comes before it.
GENESIS_HASH = "0" * 64


def chain_time(at: datetime) -> datetime:
    """`at` in UTC, to the millisecond: MongoDB keeps no finer time, and the hash covers the time as it
    is read back from the database."""
    at = at.astimezone(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def canonical_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """`details` as JSON reads them back (tuples become lists, keys strings), so the hash computed now is
    the one computed from the stored row. Refuses what JSON cannot carry exactly (NaN, infinities, other
    types): a ValueError or TypeError here means the caller passed something that is not plain data."""
    if not details:
        return {}
    if not isinstance(details, dict):
        raise TypeError("audit details are a dict")
    return json.loads(json.dumps(details, allow_nan=False))


def record_hash(
    *,
    seq: int,
    prev_hash: str,
    actor_id: str,
    actor_role: str,
    action: str,
    target_type: str,
    target_id: str,
    at: datetime,
    details: dict[str, Any],
) -> str:
    document = {
        "seq": seq,
        "prevHash": prev_hash,
        "actor": {"id": actor_id, "role": actor_role},
        "action": action,
        "target": {"type": target_type, "id": target_id},
        "at": chain_time(at).isoformat(timespec="milliseconds"),
        "details": details,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
