"""Token buckets per identity: burst up to a minute's worth, refill at N/60 per second, 429 with
the seconds until the next token; a changed limit starts afresh; no limit means no bucket."""

from __future__ import annotations

import pytest

from safeguard.signing.errors import RateLimited
from safeguard.signing.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_bursts_then_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    for _ in range(6):
        limiter.acquire("a", 6)
    with pytest.raises(RateLimited) as info:
        limiter.acquire("a", 6)
    assert info.value.retry_after == 10  # 6 per minute: one token every 10 s
    assert info.value.http_status == 429 and info.value.detail == {"retryAfter": 10}
    clock.now += 9.9
    with pytest.raises(RateLimited) as again:
        limiter.acquire("a", 6)
    assert again.value.retry_after == 1  # rounded up, never 0
    clock.now += 0.2
    limiter.acquire("a", 6)


def test_identities_have_their_own_buckets_and_no_limit_is_free() -> None:
    limiter = RateLimiter(Clock())
    limiter.acquire("a", 1)
    limiter.acquire("b", 1)
    with pytest.raises(RateLimited):
        limiter.acquire("a", 1)
    for _ in range(10_000):
        limiter.acquire("c", None)


def test_a_changed_limit_starts_a_full_bucket() -> None:
    limiter = RateLimiter(Clock())
    limiter.acquire("a", 1)
    with pytest.raises(RateLimited):
        limiter.acquire("a", 1)
    limiter.acquire("a", 2)
    limiter.acquire("a", 2)
    with pytest.raises(RateLimited):
        limiter.acquire("a", 2)


def test_a_clock_going_backwards_adds_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limiter.acquire("a", 1)
    clock.now -= 3600
    with pytest.raises(RateLimited):
        limiter.acquire("a", 1)
