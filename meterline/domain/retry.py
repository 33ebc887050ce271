"""When a transient failure is tried again: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 2.0
    cap_seconds: float = 600.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        Full jitter (a uniform draw up to the exponential ceiling) spreads a burst of
        failures so they do not all come back at once; a provider's own Retry-After is a
        floor we never undercut.
        """
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** (attempt - 1)))
        wait = rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def gives_up_after(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
