"""Token buckets for inbound frames: per socket, and per user across the sockets of one process."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """`rate` tokens per second refill a bucket of `burst`; a frame costs one token."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.updated = time.monotonic()

    def take(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens are available."""
        return max(0.0, (cost - self.tokens) / self.rate)


class SharedBuckets:
    """One bucket per key, shared by every socket of that key in this process (a user's tabs), and
    dropped when the last of them releases it."""

    def __init__(self) -> None:
        self._buckets: dict[object, tuple[TokenBucket, int]] = {}

    def acquire(self, key: object, *, rate: float, burst: float) -> TokenBucket:
        bucket, holders = self._buckets.get(key, (None, 0))
        if bucket is None:
            bucket = TokenBucket(rate=rate, burst=burst)
        self._buckets[key] = (bucket, holders + 1)
        return bucket

    def release(self, key: object) -> None:
        bucket, holders = self._buckets.get(key, (None, 0))
        if bucket is None:
            return
        if holders <= 1:
            del self._buckets[key]
        else:
            self._buckets[key] = (bucket, holders - 1)

    def __len__(self) -> int:
        return len(self._buckets)


# Per-user message buckets of this process, keyed by (role, user id).
user_buckets = SharedBuckets()
