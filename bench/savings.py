"""What each per-request change of the hot path saved, timed in process: the old way, the new.

    python bench/savings.py [--n 20000]

Each pair does one request's worth of the same work both ways, interleaved, best of 7 rounds
(the round least disturbed by other work on a shared machine). The old ways are written out
here as they were: the audit line through ``logging`` (JSON formatter, a stream handler that
flushes every line), the counters and histograms of prometheus_client, ``hmac.new`` per
signature, the policy decided afresh on every request, a semaphore and a timer around every
upstream exchange. Also the pause of a full garbage collection before and after ``gc.freeze()``.
Prints JSON: µs per request, old and new, for each.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote_plus

from micro import one_key_config, per_call_us  # bench/micro.py, beside this script
from prometheus_client import CollectorRegistry, Counter, Histogram
from savings_headers import headers  # bench/savings_headers.py, beside this script

from sidecar.gate.signing import HmacSha512, string_to_sign
from sidecar.ops.audit import audit_fields, audit_json
from sidecar.ops.logs import JsonFormatter
from sidecar.ops.metrics import ADDED_BUCKETS, UPSTREAM_BUCKETS, Metrics, endpoint_group
from sidecar.ops.reasons import denial_reason
from sidecar.policy.conditions import Body
from sidecar.proxy.record import RequestRecord

PATH = "/api/v4/futures/usdt/accounts"
BATCH = 8  # audit lines per write in the new way: a loop iteration's answers under load


def best_us(fn: Callable[[], object], n: int) -> float:
    return round(per_call_us(fn, n), 2)


def record() -> RequestRecord:
    r = RequestRecord("bot", "GET", PATH, 0)
    r.decision, r.rule, r.version = "allow", "preset full-trading: GET /api/v4/futures/**", "env"
    r.upstream_status, r.upstream_latency_s, r.upstream_date = 200, 0.000231, "x"
    r.finish(200)
    return r


def audit(n: int, work: Path) -> dict[str, float]:
    r = record()
    old_file = (work / "old.log").open("w")
    handler = logging.StreamHandler(old_file)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("savings.audit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    new_file = (work / "new.log").open("w")
    lines: list[str] = []

    def new() -> None:
        lines.append(audit_json(r))
        if len(lines) >= BATCH:
            new_file.write("".join(lines))
            new_file.flush()
            lines.clear()

    return {
        "old_us": best_us(lambda: logger.info("request", extra={"audit": audit_fields(r)}), n),
        "new_us": best_us(new, n),
    }


def metrics(n: int) -> dict[str, float]:
    r = record()
    reg = CollectorRegistry()
    requests = Counter("r", "d", ["key", "method", "group", "status"], registry=reg)
    denials = Counter("d", "d", ["key", "reason"], registry=reg)
    upstream = Histogram("u", "d", ["key"], buckets=UPSTREAM_BUCKETS, registry=reg)
    added = Histogram("a", "d", ["key"], buckets=ADDED_BUCKETS, registry=reg)

    def old() -> None:  # Metrics.observe as it was
        requests.labels(r.key, r.method, endpoint_group(r.path), str(r.status)).inc()
        reason = denial_reason(r)
        if reason is not None:
            denials.labels(r.key, reason).inc()
        upstream.labels(r.key).observe(r.upstream_latency_s or 0.0)
        added.labels(r.key).observe(max(0.0, r.added_latency_s or 0.0))

    return {"old_us": best_us(old, n), "new_us": best_us(lambda: Metrics.observe(m, r), n)}


m = Metrics()


def signing(n: int) -> dict[str, float]:
    secret = "bench-secret-" + "x" * 52
    key = secret.encode()
    mac = HmacSha512(key)

    def old() -> None:
        body_hash = hashlib.sha512(b"").hexdigest()
        message = "\n".join(("GET", PATH, unquote_plus(""), body_hash, "1700000000")).encode()
        hmac.new(key, message, hashlib.sha512).hexdigest()

    def new() -> None:
        mac.hexdigest(string_to_sign("GET", PATH, "", b"", "1700000000"))

    return {"old_us": best_us(old, n), "new_us": best_us(new, n)}


def policy(n: int) -> dict[str, float]:
    p = one_key_config().keys[0].compile_policy()
    return {
        "old_us": best_us(lambda: p._decide("GET", PATH, "", Body(b"")), n),
        "new_us": best_us(lambda: p.decide("GET", PATH, "", Body(b"")), n),
    }


def forwarder_plumbing(n: int) -> dict[str, float]:
    async def run() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(100)
        inflight: set[object] = set()
        busy = [0]
        conn = object()

        async def old() -> None:
            async with slots:
                timer = loop.call_at(loop.time() + 30.0, lambda: None)
                timer.cancel()

        async def new() -> None:
            if busy[0] < 100:
                busy[0] += 1
            deadline = loop.time() + 30.0
            inflight.add(conn)
            inflight.discard(conn)
            busy[0] -= 1
            del deadline

        out = {}
        for name, fn in (("old_us", old), ("new_us", new)):
            rounds = []
            for _ in range(7):
                t0 = time.perf_counter()
                for _ in range(n):
                    await fn()
                rounds.append((time.perf_counter() - t0) / n * 1e6)
            out[name] = round(min(rounds), 2)
        return out

    try:
        import uvloop

        return uvloop.run(run())
    except ImportError:
        return asyncio.run(run())


def callback_core(n: int) -> dict[str, float]:
    """A request's way through the listener, the four-deep coroutine chain (respond, forward,
    deliver, send) and the upstream's answer, without the work itself: the old way a Task per
    request, its first step a loop pass away and a future whose answer wakes it a loop pass
    later; the new way stepped by sidecar.proxy.drive from the callback and resumed by the
    Prompt's completer. The upstream's answer arrives a loop pass later both ways."""

    async def run() -> dict[str, float]:
        from sidecar.proxy.drive import drive, prompt

        loop = asyncio.get_running_loop()

        def upstream(waiter: asyncio.Future[int]) -> None:
            waiter.set_result(1)
            then = getattr(waiter, "then", None)
            if then is not None:
                then()

        async def send_old() -> int:
            waiter: asyncio.Future[int] = loop.create_future()
            loop.call_soon(upstream, waiter)
            return await waiter

        async def send_new() -> int:
            waiter = prompt(loop)
            loop.call_soon(upstream, waiter)
            value: int = await waiter
            return value

        async def deliver(send: Callable[[], Awaitable[int]]) -> int:
            return await send()

        async def forward(send: Callable[[], Awaitable[int]]) -> int:
            return await deliver(send)

        async def respond(send: Callable[[], Awaitable[int]]) -> int:
            return await forward(send)

        async def work(done: Callable[[object], None]) -> None:
            done(await respond(send_old))

        async def timed(start: Callable[[Callable[[object], None]], None]) -> float:
            finished: asyncio.Future[None] = loop.create_future()
            count = [0]

            def done(_: object) -> None:
                count[0] += 1
                if count[0] < n:
                    start(done)
                else:
                    finished.set_result(None)

            t0 = time.perf_counter()
            start(done)
            await finished
            return (time.perf_counter() - t0) / n * 1e6

        worker: list[asyncio.Task[None]] = []

        def old(done: Callable[[object], None]) -> None:
            worker[:] = [loop.create_task(work(done))]  # the listener kept it as self.worker

        def new(done: Callable[[object], None]) -> None:
            drive(respond(send_new), done)

        out: dict[str, list[float]] = {"old_us": [], "new_us": []}
        for _ in range(7):
            for name, start in (("old_us", old), ("new_us", new)):
                out[name].append(await timed(start))
        return {name: round(min(values), 2) for name, values in out.items()}

    try:
        import uvloop

        return uvloop.run(run())
    except ImportError:
        return asyncio.run(run())


def gc_pause() -> dict[str, float]:
    """A full collection's pause with everything a started sidecar holds (its modules and a
    compiled config), before and after gc.freeze(): ms per collection."""
    import sidecar.runtime.serve  # noqa: F401 (what a running sidecar has imported)

    def pause() -> float:
        t0 = time.perf_counter()
        gc.collect()
        return (time.perf_counter() - t0) * 1e3

    before = min(pause() for _ in range(5))
    gc.freeze()
    after = min(pause() for _ in range(5))
    gc.unfreeze()
    return {"old_ms": round(before, 2), "new_ms": round(after, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        out = {
            "audit_line": audit(n, Path(tmp)),
            "metrics": metrics(n),
            "signature": signing(n),
            "policy_decision": policy(n),
            "forwarder_semaphore_and_timer": forwarder_plumbing(n),
            "answering_without_a_task": callback_core(n),
            "full_gc_pause": gc_pause(),
            "headers": headers(n),
        }
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
