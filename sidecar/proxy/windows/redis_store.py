"""Rolling windows in Redis, shared by every replica of a key: one atomic Lua script per call.

Each counter is a sorted set of the amounts counted (scored by the time, on Redis's own clock,
``TIME``, so replicas whose clocks differ agree) and a running total beside it. The script drops
what left the window, checks every counter the call concerns and counts the call in all of them
or in none. Any Redis failure raises
:class:`~sidecar.proxy.budget.unavailable.StoreUnavailable`; the caller then judges by this
replica's own share (:mod:`sidecar.proxy.windows`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from decimal import Decimal

from redis.credentials import CredentialProvider

from sidecar.policy.windows import Charge, Full
from sidecar.proxy.budget.redis_store import RedisScripts, ScriptArg

# KEYS: per counter, its sorted set then its total. ARGV: the count of counters, the call's
# member id, 1 to count the call even when it does not fit (warn mode), then per counter: window
# seconds, limit, amount. Returns {the first counter it does not fit (0: none), its use, seconds
# until enough frees up ("" when never)}.
TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local id = ARGV[2]
local force = ARGV[3] == '1'
local totals = {}
for i = 1, n do
  local z, tk = KEYS[2 * i - 1], KEYS[2 * i]
  local per = tonumber(ARGV[3 * i + 1])
  local cutoff = '(' .. tostring(now - per)
  local total = tonumber(redis.call('GET', tk) or '0')
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)) do
    total = total - tonumber(string.match(m, ':([^:]*)$'))
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
  if redis.call('ZCARD', z) == 0 or total < 0 then total = 0 end
  totals[i] = total
end
local result = {0, '', ''}
for i = 1, n do
  local z = KEYS[2 * i - 1]
  local per = tonumber(ARGV[3 * i + 1])
  local limit = tonumber(ARGV[3 * i + 2])
  local amount = tonumber(ARGV[3 * i + 3])
  if totals[i] + amount > limit * (1 + 1e-12) then
    local wait = ''
    if amount <= limit then
      local need = totals[i] + amount - limit
      local freed = 0
      wait = tostring(per)
      local held = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
      for j = 1, #held, 2 do
        freed = freed + tonumber(string.match(held[j], ':([^:]*)$'))
        if freed >= need then
          wait = tostring(tonumber(held[j + 1]) + per - now)
          break
        end
      end
    end
    result = {i, tostring(totals[i]), wait}
    break
  end
end
if result[1] ~= 0 and not force then return result end
for i = 1, n do
  local z, tk = KEYS[2 * i - 1], KEYS[2 * i]
  local ttl = math.floor(tonumber(ARGV[3 * i + 1]) * 1000) + 1000
  local amount = ARGV[3 * i + 3]
  redis.call('ZADD', z, now, id .. ':' .. amount)
  redis.call('SET', tk, tostring(totals[i] + tonumber(amount)), 'PX', ttl)
  redis.call('PEXPIRE', z, ttl)
end
return result
"""


class RedisWindows:
    def __init__(
        self,
        url: str,
        timeout_s: float,
        prefix: str,
        credentials: CredentialProvider | None = None,
    ) -> None:
        self.prefix = prefix  # "gate-sidecar:{mm-bot}": one hash slot per key (Redis Cluster)
        self._redis = RedisScripts(url, timeout_s, credentials)
        self._take = self._redis.script(TAKE_LUA)

    def _names(self, charge: Charge) -> list[str]:
        counter = charge.counter
        scope = ",".join(sorted(counter.instruments)) if counter.instruments is not None else "*"
        base = f"{self.prefix}:window:{counter.name}:{scope}"
        return [base, base + ":total"]

    async def take(self, charges: Sequence[Charge], *, force: bool = False) -> Full | None:
        """Check and count the call in every counter at once; the first counter it does not fit
        (None: counted). ``force`` counts it even then (warn mode forwards it)."""
        keys: list[str] = []
        args: list[ScriptArg] = [len(charges), secrets.token_hex(8), int(force)]
        for charge in charges:
            keys += self._names(charge)
            args += [charge.counter.per_s, str(charge.counter.limit), str(charge.amount)]
        index, use, wait = await self._take(keys, args)
        if int(index) == 0:
            return None
        charge = charges[int(index) - 1]
        text = wait.decode() if isinstance(wait, bytes) else str(wait)
        used = use.decode() if isinstance(use, bytes) else str(use)
        return Full(charge, Decimal(used), float(text) if text else None)

    async def close(self) -> None:
        await self._redis.close()
