"""In-process cost of the decision and the signature: path check, policy, SIGN (µs per request).

    python bench/micro.py [--n 20000]

Times the same calls the pipeline makes for a futures order (POST with a JSON body and a query)
and a GET, under the ``full-trading`` preset, with the local HMAC signer, and a rate budget's
take (Gate's default groups, memory store). Prints JSON: for each step the best of 7 rounds (the
round least disturbed by other work on a shared machine) and, per request kind, their sum.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from sidecar.config import Config, parse_config
from sidecar.gate.paths import check_path, split_target
from sidecar.gate.signing import HmacSigner, signed_headers
from sidecar.policy.conditions import Body
from sidecar.proxy.budget import KeyBudget
from sidecar.proxy.budget.settings import RateLimitConfig

CASES = {
    "GET": ("GET", "/api/v4/futures/usdt/accounts", b""),
    "POST": (
        "POST",
        "/api/v4/futures/usdt/orders?settle=usdt",
        b'{"contract":"BTC_USDT","size":1,"price":"65000.1","tif":"gtc","text":"t-bot"}',
    ),
}


def one_key_config() -> Config:
    """The benchmarks' sidecar: one key, ``full-trading``, env source, no clock sync."""
    key = {"name": "bot", "listen": "127.0.0.1:0", "source": {"env": {}}, "policy": "full-trading"}
    return parse_config({"clock": {"sync": False}, "keys": [key]}, environ={})


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """µs per call of ``fn``: the best of 7 rounds of ``n`` calls."""
    rounds = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t0) / n * 1e6)
    return min(rounds)


def _run(coro: Coroutine[Any, Any, object]) -> None:
    """Run a coroutine that never suspends (a local signer, the memory budget) to its end."""
    try:
        coro.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - a store that suspends cannot be timed this way
        raise RuntimeError("the coroutine suspended")


def measure(n: int) -> dict[str, dict[str, float]]:
    policy = one_key_config().keys[0].compile_policy()
    signer = HmacSigner("s" * 64)
    out: dict[str, dict[str, float]] = {}
    for name, (method, target, body) in CASES.items():
        path, query = split_target(target)
        assert policy.decide(method, path, query, body).allowed

        def sign(
            method: str = method, path: str = path, query: str = query, body: bytes = body
        ) -> None:
            _run(signed_headers(signer, "k", method, path, query, body, 1700000000))

        def check(target: str = target) -> None:
            check_path(split_target(target)[0])

        def decide(
            method: str = method, path: str = path, query: str = query, body: bytes = body
        ) -> None:
            policy.decide(method, path, query, Body(body))  # as the pipeline: one Body each

        steps = {
            "path_check_us": per_call_us(check, n),
            "policy_us": per_call_us(decide, n),
            "sign_us": per_call_us(sign, n),
        }
        steps["total_us"] = sum(steps.values())
        out[name] = {k: round(v, 2) for k, v in steps.items()}
    # Each take one second after the last on the budget's clock: the bucket never runs dry.
    clock = itertools.count(0.0, 1.0)
    budget = KeyBudget("bot", RateLimitConfig(), monotonic=lambda: next(clock))
    order = "/api/v4/futures/usdt/orders"
    out["budget"] = {"take_us": round(per_call_us(lambda: _run(budget.take("POST", order)), n), 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    json.dump(measure(ap.parse_args().n), sys.stdout)


if __name__ == "__main__":
    main()
