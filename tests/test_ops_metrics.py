"""Prometheus metrics: bounded labels, what each request records, and /metrics end to end."""

from __future__ import annotations

import json

import aiohttp
import pytest

from sidecar.ops.metrics import Metrics, endpoint_group
from sidecar.ops.reasons import denial_reason
from sidecar.policy.origin import NO_RULE, UNKNOWN_METHOD, Origin, OriginKind
from sidecar.proxy.record import RequestRecord
from sidecar.vault.session import VaultStatus
from tests.doubles import StubView
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import Samples, call, ops_setup, parse_samples, scrape


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("/api/v4/spot/orders", "spot"),
        ("/api/v4/futures/usdt/orders/123", "futures"),
        ("/api/v4/wallet/transfers", "wallet"),
        ("/api/v4/withdrawals", "withdrawals"),
        ("/api/v4/sub_accounts/1/keys", "sub_accounts"),
        ("/api/v4/some_new_product/x", "other"),  # unknown products share one label
        ("/api/v4/t-123456789", "other"),  # ids never become labels
        ("/api/v3/spot/orders", "invalid"),
        ("/x", "invalid"),
    ],
)
def test_a_path_is_reduced_to_a_bounded_endpoint_group(path: str, group: str) -> None:
    assert endpoint_group(path) == group


def _record(
    decision: str = "allow", origin: Origin | None = None, label: str | None = None
) -> RequestRecord:
    record = RequestRecord("k", "GET", "/api/v4/spot/accounts", 0)
    record.decision, record.origin, record.label = decision, origin, label
    return record


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (_record("deny", Origin(OriginKind.DENY, index=0)), "deny_rule"),
        (_record("deny", Origin(OriginKind.LOCKED, name="withdrawals")), "locked"),
        (_record("deny", NO_RULE), "no_rule"),
        (_record("deny", Origin(OriginKind.PRESET, preset="spot-only")), "condition"),
        (_record("deny", Origin(OriginKind.ALLOW, index=2)), "condition"),
        (_record("deny", UNKNOWN_METHOD), "unknown_method"),
        (_record("error", label="SIDECAR_BAD_REQUEST"), "bad_path"),
        (_record("error", label="SIDECAR_NOT_FOUND"), "outside_api"),
        (_record("error", label="SIDECAR_KEY_UNAVAILABLE"), None),  # the sidecar's trouble
        (_record("error", label="SIDECAR_FORBIDDEN_ORIGIN"), "browser"),
        (_record("error", label="SIDECAR_MISDIRECTED"), "host"),
        (_record("error", label="SIDECAR_UNAUTHENTICATED"), "unauthenticated"),
        (_record("error", label="SIDECAR_FORBIDDEN_PEER"), "peer"),
        (_record("error", label="SIDECAR_UNSUPPORTED_MEDIA_TYPE"), "media_type"),
        (_record("error", label="SIDECAR_OVERLOADED"), "overloaded"),
        (_record("error", label="SIDECAR_REQUEST_TIMEOUT"), "timeout"),
        (_record("error", label="SIDECAR_HEADERS_TOO_LARGE"), "headers_too_large"),
        (_record("error", label="SIDECAR_HTTP_VERSION_NOT_SUPPORTED"), "http_version"),
        (_record("allow", Origin(OriginKind.PRESET, preset="read-only")), None),
    ],
)
def test_denials_are_counted_by_a_bounded_reason(record: RequestRecord, reason: str | None) -> None:
    assert denial_reason(record) == reason


def _samples(metrics: Metrics) -> Samples:
    return parse_samples(metrics.scrape({})[0].decode())


def test_each_request_feeds_the_counters_and_histograms() -> None:
    metrics = Metrics()
    ok = RequestRecord("bot", "POST", "/api/v4/futures/usdt/orders", 0)
    ok.decision, ok.upstream_status, ok.upstream_latency_s = "allow", 201, 0.05
    ok.finish(201)
    expired = RequestRecord("bot", "GET", "/api/v4/spot/accounts", 0)
    expired.decision, expired.upstream_status, expired.upstream_latency_s = "allow", 401, 0.01
    expired.label = "REQUEST_EXPIRED"
    expired.finish(401)
    denied = RequestRecord("bot", "BREW", "/api/v4/withdrawals", 0)
    denied.decision, denied.origin, denied.label = "deny", NO_RULE, "SIDECAR_POLICY_DENIED"
    denied.finish(403)
    for record in (ok, expired, denied):
        metrics.observe(record)
    metrics.on_credential_event("bot", "rotated", "v2")
    s = _samples(metrics)
    req = "gate_sidecar_requests_total"
    assert s[(req, (("group", "futures"), ("key", "bot"), ("method", "POST"), ("status", "201")))]
    assert s[
        (req, (("group", "withdrawals"), ("key", "bot"), ("method", "OTHER"), ("status", "403")))
    ]
    assert s[("gate_sidecar_denials_total", (("key", "bot"), ("reason", "no_rule")))] == 1
    errors = ("gate_sidecar_upstream_errors_total", (("key", "bot"), ("label", "REQUEST_EXPIRED")))
    assert s[errors] == 1
    assert s[("gate_sidecar_upstream_latency_seconds_count", (("key", "bot"),))] == 2
    assert s[("gate_sidecar_added_latency_seconds_count", (("key", "bot"),))] == 3
    events = ("gate_sidecar_credential_events_total", (("event", "rotated"), ("key", "bot")))
    assert s[events] == 1
    assert s[("gate_sidecar_build_info", (("version", __import__("sidecar").__version__),))] == 1


def test_two_apps_never_share_a_registry() -> None:
    a, b = Metrics(), Metrics()
    a.on_credential_event("k", "installed", "1")
    events = ("gate_sidecar_credential_events_total", (("event", "installed"), ("key", "k")))
    assert _samples(a)[events] == 1 and events not in _samples(b)


async def test_metrics_show_requests_denials_latency_and_key_state(
    exchange: RunningExchange,
) -> None:
    async with ops_setup(exchange, {"bot": "spot-only", "gone": "read-only"}) as s:
        assert (await call("GET", s.url("bot", "/api/v4/spot/accounts")))[0] == 200
        assert (await call("POST", s.url("bot", "/api/v4/withdrawals"), b"{}"))[0] == 403
        body = json.dumps({"currency_pair": "BTC_USDT", "account": "margin"}).encode()
        assert (await call("POST", s.url("bot", "/api/v4/spot/orders"), body))[0] == 403
        assert (await call("GET", s.url("bot", "/api/v4/spot/../withdrawals")))[0] == 400
        exchange.state.remove_key(s.api_keys["gone"])
        assert (await call("GET", s.url("gone", "/api/v4/spot/accounts")))[0] == 401
        async with aiohttp.ClientSession() as held:  # one keep-alive connection stays open
            async with held.get(s.url("bot", "/api/v4/spot/tickers")) as resp:
                await resp.read()
            samples = await scrape(s.sidecar.admin_url)
    req = "gate_sidecar_requests_total"
    spot_ok = (req, (("group", "spot"), ("key", "bot"), ("method", "GET"), ("status", "200")))
    assert samples[spot_ok] == 2
    withdrawal = (("group", "withdrawals"), ("key", "bot"), ("method", "POST"), ("status", "403"))
    assert samples[(req, withdrawal)] == 1
    denials = "gate_sidecar_denials_total"
    assert samples[(denials, (("key", "bot"), ("reason", "locked")))] == 1
    assert samples[(denials, (("key", "bot"), ("reason", "condition")))] == 1
    assert samples[(denials, (("key", "bot"), ("reason", "bad_path")))] == 1
    errors = ("gate_sidecar_upstream_errors_total", (("key", "gone"), ("label", "INVALID_KEY")))
    assert samples[errors] == 1
    assert samples[("gate_sidecar_upstream_latency_seconds_count", (("key", "bot"),))] == 2
    assert samples[("gate_sidecar_added_latency_seconds_count", (("key", "bot"),))] == 5
    for key in ("bot", "gone"):
        assert samples[("gate_sidecar_key_ready", (("key", key),))] == 1
        assert samples[("gate_sidecar_secret_version_info", (("key", key), ("version", "env")))]
        assert samples[("gate_sidecar_secret_age_seconds", (("key", key),))] >= 0
        assert samples[("gate_sidecar_secret_stale_seconds", (("key", key),))] >= 0
    assert samples[("gate_sidecar_open_connections", (("key", "bot"),))] >= 1
    installed = ("gate_sidecar_credential_events_total", (("event", "installed"), ("key", "bot")))
    assert samples[installed] == 1
    assert samples[("gate_sidecar_clock_offset_seconds", ())] == 0
    assert not any("/api/v4/spot/accounts" in str(labels) for _, labels in samples)


async def test_metrics_follow_the_keys_a_reload_leaves(exchange: RunningExchange) -> None:
    async with ops_setup(exchange, {"a": "read-only", "b": "read-only"}) as s:
        await s.sidecar.sidecar.keys.stop("b")
        samples = await scrape(s.sidecar.admin_url)
    assert ("gate_sidecar_key_ready", (("key", "a"),)) in samples
    assert ("gate_sidecar_key_ready", (("key", "b"),)) not in samples


class FakeView(StubView):
    """A SidecarView with no keys and a given Vault status."""

    def __init__(self, vault: VaultStatus | None) -> None:
        self.vault = vault

    def vault_status(self) -> VaultStatus | None:
        return self.vault


def _state_samples(vault: VaultStatus | None) -> Samples:
    metrics = Metrics()
    metrics.watch(FakeView(vault))
    return _samples(metrics)


def test_vault_token_ttl_and_errors_are_exported_when_a_session_exists() -> None:
    vault = VaultStatus(
        ready=True, token_ttl_s=1234.5, logins=2, renewals=3, errors={"unavailable": 4, "login": 1}
    )
    s = _state_samples(vault)
    assert s[("gate_sidecar_vault_ready", ())] == 1
    assert s[("gate_sidecar_vault_token_ttl_seconds", ())] == 1234.5
    assert s[("gate_sidecar_vault_logins_total", ())] == 2
    assert s[("gate_sidecar_vault_renewals_total", ())] == 3
    assert s[("gate_sidecar_vault_errors_total", (("kind", "unavailable"),))] == 4
    assert s[("gate_sidecar_vault_errors_total", (("kind", "login"),))] == 1


def test_vault_metrics_are_absent_without_a_session_or_a_token() -> None:
    assert not any(name.startswith("gate_sidecar_vault") for name, _ in _state_samples(None))
    no_token = _state_samples(VaultStatus(False, None, 0, 0, {}))
    assert no_token[("gate_sidecar_vault_ready", ())] == 0
    assert ("gate_sidecar_vault_token_ttl_seconds", ()) not in no_token


def test_the_plain_counters_render_as_prometheus_clients_own_would() -> None:
    """Counts and Histograms keep integers and render on scrape; the text a scraper reads is
    the one prometheus_client's Counter and Histogram write for the same events."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from sidecar.ops.metrics import ADDED_BUCKETS, Counts, Histograms

    values = [0.0, 0.0001, 0.00010001, 0.0003, 0.001, 0.7, 3.0]  # on, around and past bounds
    ours_h = Histograms("t_latency_seconds", "doc", ADDED_BUCKETS)
    ours_c = Counts("t_requests", "doc", ["key", "status"])
    registry = CollectorRegistry()
    theirs_h = Histogram(
        "t_latency_seconds", "doc", ["key"], buckets=ADDED_BUCKETS, registry=registry
    )
    theirs_c = Counter("t_requests", "doc", ["key", "status"], registry=registry)
    for i, value in enumerate(values):
        key = "ab"[i % 2]
        ours_h.observe(key, value)
        theirs_h.labels(key).observe(value)
        ours_c.inc(key, 200 + i % 3)
        theirs_c.labels(key, str(200 + i % 3)).inc()
    theirs = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in registry.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }
    ours = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in (ours_h, ours_c)
        for m in family.collect()
        for s in m.samples
    }
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value), name
