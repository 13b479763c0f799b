"""Slow down repeated failed password checks for one login.

After a few free failures each further attempt for that login waits longer (doubling up to a cap)
before its password is even checked; attempts for one login are also taken one at a time, so running
them in parallel does not get around the delay. A success clears the count.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LoginThrottle:
    # Failures older than this are forgotten.
    WINDOW_SECONDS = 15 * 60

    def __init__(self, free_attempts: int, base_delay: float, max_delay: float) -> None:
        self.free_attempts = free_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[str, _Failures] = {}

    def _state(self, login: str) -> _Failures:
        key = login.lower()
        state = self._failures.get(key)
        if state is None or time.monotonic() - state.last > self.WINDOW_SECONDS:
            state = self._failures[key] = _Failures(lock=state.lock if state else asyncio.Lock())
        return state

    def delay_for(self, login: str) -> float:
        excess = self._state(login).count - self.free_attempts
        if excess < 0:
            return 0.0
        return min(self.base_delay * (2**excess), self.max_delay)

    def lock(self, login: str) -> asyncio.Lock:
        return self._state(login).lock

    def failed(self, login: str) -> None:
        if len(self._failures) > 10_000:  # a spray over many logins must not grow this forever
            cutoff = time.monotonic() - self.WINDOW_SECONDS
            self._failures = {k: v for k, v in self._failures.items() if v.last > cutoff}
        state = self._state(login)
        state.count += 1
        state.last = time.monotonic()

    def succeeded(self, login: str) -> None:
        self._failures.pop(login.lower(), None)
