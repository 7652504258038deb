"""Per-identity token buckets in front of the HSM.

An identity's ``rateLimit: {perMinute: N}`` is a token bucket (the classic shaping algorithm of
RFC 2697's single-rate meter, without colours): it holds at most ``N`` tokens, refills at ``N/60``
tokens per second, and each signing request takes one. An identity can therefore burst up to a
minute's worth at once and sustain ``N`` per minute; an empty bucket refuses with HTTP 429 and a
``Retry-After`` (RFC 9110 §10.2.3, whole seconds, rounded up) saying when the next token arrives.
Identities without ``rateLimit`` are not limited here.

Buckets live in the process: each ``safeguard serve`` node limits what it sends to its HSM. With N
nodes behind a load balancer an identity gets up to N times its rate in total, which still bounds
each HSM; a shared budget would need a round trip to the database per signature.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from safeguard.signing.errors import RateLimited


@dataclass
class TokenBucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; return 0 on success, else the seconds until one is available."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per identity name; a changed limit starts a fresh, full bucket."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[int, TokenBucket]] = {}

    def acquire(self, identity: str, per_minute: int | None) -> None:
        """Take a token of ``identity``'s bucket or raise ``RateLimited``."""
        if per_minute is None:
            return
        now = self._clock()
        with self._lock:
            held = self._buckets.get(identity)
            if held is None or held[0] != per_minute:
                bucket = TokenBucket(float(per_minute), per_minute / 60.0, float(per_minute), now)
                self._buckets[identity] = (per_minute, bucket)
            else:
                bucket = held[1]
            wait = bucket.take(now)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(
                f"identity {identity!r} exceeded its rate limit of {per_minute} signatures per "
                f"minute; retry in {retry_after} s",
                retry_after=retry_after,
                hint="spread signing over time, or raise the identity's rateLimit in the policy",
            )
