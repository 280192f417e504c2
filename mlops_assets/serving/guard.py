"""What protects the service: API keys, a per-key rate limit, and a bound on work in flight.

All three are plain objects driven by the app's single event loop (one uvicorn worker), so none needs a lock.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class KeysError(ValueError):
    """The API-key setting is malformed; the message names the variable, never a key."""


@dataclass(frozen=True)
class ApiKeys:
    """Client name -> key, from ``SERVING_API_KEYS="name=key,name2=key2"``. Empty means authentication is off,
    which the service allows on a loopback address only."""

    keys: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def parse(cls, raw: str | None, variable: str = "SERVING_API_KEYS") -> ApiKeys:
        pairs = []
        for i, item in enumerate(p.strip() for p in (raw or "").split(",")):
            if not item:
                continue
            name, sep, key = item.partition("=")
            if not sep or not name.strip() or len(key.strip()) < 8:
                raise KeysError(
                    f"{variable}: entry {i + 1} must be name=key with a key of at least 8 characters"
                )
            pairs.append((name.strip(), key.strip().encode()))
        names = [n for n, _ in pairs]
        if len(set(names)) != len(names):
            raise KeysError(f"{variable}: client names must be unique")
        return cls(tuple(pairs))

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def client(self, presented: str | None) -> str | None:
        """The client a presented key belongs to, or None. Compares against every key in constant time, so
        the answer's timing says nothing about which key, or how much of one, matched."""
        if presented is None:
            return None
        candidate = presented.encode()
        found = None
        for name, key in self.keys:
            if hmac.compare_digest(candidate, key):
                found = name
        return found

    def __repr__(self) -> str:  # never print a key
        return f"ApiKeys(clients={[n for n, _ in self.keys]})"


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0 when a request may go ahead, else the seconds until it could."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class RateLimiter:
    """A token bucket per client: ``rate`` requests per second sustained, ``burst`` at once."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def retry_after(self, client: str) -> int:
        """0 when the client may go ahead, else whole seconds to wait (for ``Retry-After``)."""
        now = self.clock()
        bucket = self.buckets.get(client)
        if bucket is None:
            bucket = self.buckets[client] = TokenBucket(self.rate, self.burst, self.burst, now)
        wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))


@dataclass
class InFlight:
    """At most ``limit`` requests being worked on; the next is refused at once (503) instead of queueing
    behind them, so a burst costs the excess clients a fast retry, not everyone a slow answer."""

    limit: int
    current: int = 0

    def try_enter(self) -> bool:
        if self.current >= self.limit:
            return False
        self.current += 1
        return True

    def leave(self) -> None:
        self.current -= 1
