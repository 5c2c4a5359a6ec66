"""Per-endpoint rate budgets count per endpoint template (``/options/orders/{order_id}``), never
per concrete path: a new id per request is the same endpoint to Gate, and to the budget. Pure
(a local store on a frozen clock); tests/test_guards_fail_closed_e2e.py shows it end to end."""

from __future__ import annotations

import pytest

from sidecar.errors import RateLimited
from sidecar.gate.ratelimits import GROUPS_BY_NAME, UNLISTED, bucket_scope, group_for
from sidecar.proxy.budget import ROUTE_CACHE_SIZE, KeyBudget
from sidecar.proxy.budget.settings import GroupOverride, RateLimitConfig

# (case, method, path, the bucket it takes from within its group)
SCOPES: list[tuple[str, str, str, str]] = [
    ("an options order read by id counts against its template",
     "GET", "/api/v4/options/orders/123", "GET /api/v4/options/orders/*"),
    ("a delivery cancel by id counts against its template",
     "DELETE", "/api/v4/delivery/usdt/orders/9", "DELETE /api/v4/delivery/*/orders/*"),
    ("a CrossEx amend by id counts against its template",
     "PUT", "/api/v4/crossex/orders/77", "PUT /api/v4/crossex/orders/*"),
    ("a literal segment is its own endpoint beside a templated one",
     "GET", "/api/v4/sub_accounts/unified_mode", "GET /api/v4/sub_accounts/unified_mode"),
    ("public market data counts per template too",
     "GET", "/api/v4/spot/currency_pairs/BTC_USDT", "GET /api/v4/spot/currency_pairs/*"),
    ("a path Gate does not publish shares one bucket with every such path",
     "GET", "/api/v4/made/up/123", UNLISTED),
    ("a whole-group budget has one bucket", "POST", "/api/v4/spot/orders", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "scope"), [pytest.param(*c[1:], id=c[0]) for c in SCOPES]
)
def test_a_request_takes_from_the_bucket_of_its_endpoint_template(
    method: str, path: str, scope: str
) -> None:
    assert bucket_scope(group_for(method, path), method, path) == scope


def test_no_bucket_name_forms_a_redis_cluster_hash_tag() -> None:
    for _, method, path, _ in SCOPES:
        scope = bucket_scope(group_for(method, path), method, path)
        assert "{" not in scope and "}" not in scope


VARIED = [
    ("GET", "/api/v4/options/orders/{}"),
    ("DELETE", "/api/v4/delivery/usdt/orders/{}"),
    ("PUT", "/api/v4/crossex/orders/{}"),
]


@pytest.mark.parametrize(("method", "template"), VARIED)
async def test_varying_ids_no_longer_dodge_a_per_endpoint_limit(method: str, template: str) -> None:
    assert GROUPS_BY_NAME["other-private"].per_endpoint
    cfg = RateLimitConfig(overrides=[GroupOverride(group="other-private", limit=3, per_s=60)])
    budget = KeyBudget("bot", cfg, monotonic=lambda: 1000.0)
    passed = 0
    for i in range(8):
        try:
            await budget.take(method, template.format(1000 + i))
            passed += 1
        except RateLimited as exc:
            assert exc.group == "other-private"
    await budget.close()
    assert passed == 3


async def test_two_endpoints_of_one_group_keep_their_own_buckets() -> None:
    cfg = RateLimitConfig(overrides=[GroupOverride(group="other-private", limit=1, per_s=60)])
    budget = KeyBudget("bot", cfg, monotonic=lambda: 1000.0)
    await budget.take("GET", "/api/v4/options/orders/1")
    await budget.take("DELETE", "/api/v4/options/orders/1")  # another method: another endpoint
    await budget.take("GET", "/api/v4/earn/uni/lends")
    with pytest.raises(RateLimited):
        await budget.take("GET", "/api/v4/options/orders/2")
    await budget.close()


async def test_the_route_cache_is_bounded_and_keeps_counting_per_template() -> None:
    """The (method, path) → bucket cache: ids vary per request, so it is emptied when full, and a
    remembered route counts against the same template bucket as a freshly worked out one."""
    cfg = RateLimitConfig(
        gate_defaults=False,
        overrides=[GroupOverride(group="other-private", limit=3, per_s=60)],
    )
    budget = KeyBudget("bot", cfg, monotonic=lambda: 1000.0)
    fresh = budget.route("GET", "/api/v4/options/orders/1")
    for i in range(ROUTE_CACHE_SIZE + 10):
        route = budget.route("GET", f"/api/v4/options/orders/{i}")
        assert route == fresh
        assert len(budget._routes) <= ROUTE_CACHE_SIZE
    assert budget.route("GET", "/api/v4/made/up/1").bucket.endswith(UNLISTED)
    assert budget.route("POST", "/api/v4/spot/orders").budget is None  # not budgeted by cfg
    await budget.take("GET", "/api/v4/options/orders/1")
    await budget.take("GET", "/api/v4/options/orders/1")  # remembered route, same bucket
    await budget.take("GET", "/api/v4/options/orders/2")
    with pytest.raises(RateLimited):
        await budget.take("GET", "/api/v4/options/orders/3")
    await budget.close()
