"""A cache of verdicts, so that the same question about the same bytes is answered once.

The key is ``(artifact digest, digests of every signature manifest listed for it, policy
fingerprint, expectation)``. Everything the verdict depends on is content-addressed or named by
the fingerprint: signature manifests name their blobs by digest, the policy fingerprint covers the
keys, identity rules and trusted root, and certificate validity is judged at the log's time, not
the wall clock's. So a key always maps to the same verdict; the TTL only bounds memory and how
long a removed trusted root keeps answering. A new signature changes the listing, hence the key.

Lookups are a dictionary access plus an LRU touch (well under 0.2 ms; see bench/verify.py).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from safeguard.verify.verdict import Verdict

CacheKey = tuple[Hashable, ...]


class VerdictCache:
    def __init__(
        self,
        max_entries: int = 10_000,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._items: OrderedDict[CacheKey, tuple[float, Verdict]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(
        artifact_digest: str,
        manifest_digests: tuple[str, ...],
        policy_fingerprint: str,
        expectation: Hashable = None,
    ) -> CacheKey:
        return (artifact_digest, manifest_digests, policy_fingerprint, expectation)

    def get(self, key: CacheKey) -> Verdict | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] < self._clock():
                if item is not None:
                    del self._items[key]
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key: CacheKey, verdict: Verdict) -> None:
        stored = dataclasses.replace(verdict, cached=True)
        with self._lock:
            self._items[key] = (self._clock() + self.ttl, stored)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
