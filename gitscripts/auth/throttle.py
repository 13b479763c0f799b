"""Slow password guessing down, without letting a guesser slow anyone else down.

Two limits, both keyed by the client's address (the connection's peer; behind a reverse proxy,
uvicorn puts the address the proxy forwarded there when the proxy is trusted: FORWARDED_ALLOW_IPS):

- Per login and client: after a few free failures, each further attempt for that login from that
  client waits longer (doubling up to a cap) before its password is even checked, and these
  attempts are taken one at a time, so running them in parallel does not get around the delay. A
  success clears the count. The owner signing in from another address has a count and a queue of
  its own: an attacker's failures never make the owner's right password wait.
- Per client: a client with `client_max_failures` failed attempts in the window (attempts still
  being checked count as failures until they are not) is refused at once with 429, whatever login
  it tries, until its oldest failures age out. Spraying many logins from one address then costs
  the service a refusal, not a password hash.

Unknown logins take exactly the steps known ones take (same delays, same refusals), so neither the
answer nor its timing tells which logins exist.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from gitscripts import errors
from gitscripts.auth.logins import login_key

# Failures older than this are forgotten.
WINDOW_SECONDS = 15 * 60
# A flood over many logins or addresses must not grow the tables forever: past this many entries,
# the ones with nothing recent are dropped.
_PRUNE_ABOVE = 10_000


def client_address(request: HTTPConnection) -> str:
    """The address a request came from, as the server saw it: what the throttle keys on."""
    return request.client.host if request.client else "unknown"


@dataclass
class _Failures:
    """Failed attempts for one login from one client."""

    count: int = 0
    last: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Client:
    failures: deque[float] = field(default_factory=deque)  # when each failure happened
    in_flight: int = 0


@dataclass
class Attempt:
    """One password check under way; the caller reports how it went."""

    throttle: LoginThrottle
    key: tuple[str, str]
    client: _Client
    delay: float

    def failed(self) -> None:
        now = time.monotonic()
        state = self.throttle._state(self.key)
        state.count += 1
        state.last = now
        self.client.failures.append(now)

    def succeeded(self) -> None:
        self.throttle._failures.pop(self.key, None)


class LoginThrottle:
    def __init__(
        self, free_attempts: int, base_delay: float, max_delay: float, client_max_failures: int
    ) -> None:
        self.free_attempts = free_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.client_max_failures = client_max_failures
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._clients: dict[str, _Client] = {}

    @asynccontextmanager
    async def attempt(self, login: str, client: str) -> AsyncIterator[Attempt]:
        """Admit one password check for `login` from the address `client`, after its delay;
        TooManyLoginAttempts when that client has failed too often."""
        address = self._client(client)
        self._admit(address)
        address.in_flight += 1
        try:
            key = (login_key(login), client)
            async with self._state(key).lock:
                delay = self._delay(self._state(key))
                if delay:
                    await asyncio.sleep(delay)
                yield Attempt(self, key, address, delay)
        finally:
            address.in_flight -= 1

    def _admit(self, client: _Client) -> None:
        now = time.monotonic()
        while client.failures and client.failures[0] < now - WINDOW_SECONDS:
            client.failures.popleft()
        if len(client.failures) + client.in_flight >= self.client_max_failures:
            oldest = client.failures[0] if client.failures else now
            retry_after = max(1, math.ceil(oldest + WINDOW_SECONDS - now))
            raise errors.TooManyLoginAttempts(
                "Too many failed sign-in attempts from your address; try again in a few minutes",
                retry_after=retry_after,
            )

    def _delay(self, state: _Failures) -> float:
        excess = state.count - self.free_attempts
        if excess < 0:
            return 0.0
        return min(self.base_delay * float(2**excess), self.max_delay)

    def _state(self, key: tuple[str, str]) -> _Failures:
        state = self._failures.get(key)
        if state is None or time.monotonic() - state.last > WINDOW_SECONDS:
            if len(self._failures) > _PRUNE_ABOVE:
                cutoff = time.monotonic() - WINDOW_SECONDS
                self._failures = {k: v for k, v in self._failures.items() if v.last > cutoff}
            # A state that aged out keeps its lock: someone may be holding it.
            state = self._failures[key] = _Failures(lock=state.lock if state else asyncio.Lock())
        return state

    def _client(self, address: str) -> _Client:
        client = self._clients.get(address)
        if client is None:
            if len(self._clients) > _PRUNE_ABOVE:
                cutoff = time.monotonic() - WINDOW_SECONDS
                self._clients = {
                    k: v
                    for k, v in self._clients.items()
                    if v.in_flight or (v.failures and v.failures[-1] > cutoff)
                }
            client = self._clients[address] = _Client()
        return client
