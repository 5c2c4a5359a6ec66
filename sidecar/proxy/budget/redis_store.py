"""Token buckets in Redis, shared by every replica: one atomic Lua script per take.

The scripts are :func:`sidecar.gate.ratelimits.take` and :func:`~sidecar.gate.ratelimits.tighten`
written in Lua (tests run both on the same cases), on Redis's own clock (``TIME``), so replicas
whose clocks differ still agree. Since Redis 5 scripts replicate by effects, which is what makes
``TIME`` before a write allowed. Any Redis failure raises :class:`StoreUnavailable`; the caller
falls back to its local share (:mod:`sidecar.proxy.budget`). The connection and that error
mapping (:class:`RedisScripts`) also serve the rolling windows (:mod:`sidecar.proxy.windows`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.credentials import CredentialProvider
from redis.exceptions import RedisError

from sidecar.aio import task_from_here
from sidecar.gate.ratelimits import Bucket, Take
from sidecar.proxy.budget.redis_auth import CredentialFileUnreadable
from sidecar.proxy.budget.unavailable import StoreUnavailable

__all__ = ["RedisScripts", "RedisStore", "ScriptArg", "StoreUnavailable", "unavailable"]

_PRELUDE = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = cap
if held[1] then
  tokens = math.min(cap, tonumber(held[1]) + math.max(0, now - tonumber(held[2])) * rate)
end
"""
_SAVE = """
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
"""
TAKE_LUA = (
    _PRELUDE
    + """
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
"""
    + _SAVE
    + "return {allowed, tostring(tokens), tostring(retry), tostring(now)}\n"
)
TIGHTEN_LUA = (
    _PRELUDE
    + """
local remaining = tonumber(ARGV[4])
local target = 0
if remaining > 0 then
  target = remaining
elseif ARGV[5] ~= '' then
  target = 1 - math.max(0, tonumber(ARGV[5])) * rate
end
tokens = math.min(tokens, target)
"""
    + _SAVE
    + "return 1\n"
)


def unavailable(exc: BaseException) -> StoreUnavailable:
    # Only our own message is quoted (it names a field and a path); for anything else the type
    # alone, since a driver's message could echo what it was sent.
    if isinstance(exc, CredentialFileUnreadable):
        return StoreUnavailable(f"Redis unavailable: {exc}")
    return StoreUnavailable(f"Redis unavailable: {type(exc).__name__}")


ScriptArg = str | int | float
Script = Callable[[list[str], list[ScriptArg]], Awaitable[Any]]


class RedisScripts:
    """A connection to the shared Redis that runs Lua scripts (each one atomic): the rate
    budgets' buckets here and the rolling windows (sidecar.proxy.windows.redis_store). Short
    timeouts and no retry, since the caller serves from its local share instead of waiting;
    any Redis failure raises :class:`StoreUnavailable`."""

    def __init__(
        self, url: str, timeout_s: float, credentials: CredentialProvider | None = None
    ) -> None:
        # Older redis-py releases (down to the floor) leave from_url untyped: call it through Any
        # so every supported release type-checks alike.
        connect: Any = aioredis.from_url
        self._client: Any = connect(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            health_check_interval=0,
            credential_provider=credentials,
        )

    def script(self, source: str) -> Script:
        """``source`` registered once (redis-py sends its SHA, the source only when missing)."""
        registered = self._client.register_script(source)

        async def run(keys: list[str], args: list[ScriptArg]) -> Any:
            await task_from_here()  # redis-py's own timeouts need one
            try:
                return await registered(keys=keys, args=args)
            except (RedisError, OSError, TimeoutError) as exc:
                raise unavailable(exc) from None

        return run

    async def close(self) -> None:
        close = getattr(self._client, "aclose", None) or self._client.close
        await close()


def _ttl_ms(capacity: float, rate: float) -> int:
    # Long enough for an untouched bucket to refill entirely, then Redis forgets it.
    return int(capacity / rate * 1000) + 1000


class RedisStore:
    def __init__(
        self, url: str, timeout_s: float, credentials: CredentialProvider | None = None
    ) -> None:
        self.url = url
        self._redis = RedisScripts(url, timeout_s, credentials)
        self._take = self._redis.script(TAKE_LUA)
        self._tighten = self._redis.script(TIGHTEN_LUA)

    async def take(self, name: str, capacity: float, rate: float) -> Take:
        args: list[ScriptArg] = [capacity, rate, _ttl_ms(capacity, rate)]
        allowed, tokens, retry, now = await self._take([name], args)
        bucket = Bucket(float(tokens), float(now))
        return Take(int(allowed) == 1, bucket, float(retry))

    async def tighten(
        self, name: str, capacity: float, rate: float, remaining: int, reset_in_s: float | None
    ) -> None:
        reset: str | float = "" if reset_in_s is None else reset_in_s
        args: list[ScriptArg] = [capacity, rate, _ttl_ms(capacity, rate), remaining, reset]
        await self._tighten([name], args)

    async def close(self) -> None:
        await self._redis.close()
