"""Shared rate budgets on a Redis that requires AUTH: the password (and an ACL user name) come
from files named in the config, never from the config itself, are read at each new connection
(a rotated password needs no restart), and appear in no log line, message, repr or metric.
Against a real redis-server started with ``requirepass`` and an ACL user."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp
import pytest

from sidecar.config import parse_config
from sidecar.ops.report import render_config_report
from sidecar.proxy.budget.redis_auth import FileCredentials
from sidecar.proxy.budget.redis_store import RedisStore, StoreUnavailable
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import scrape
from tests.fixtures_redis import RedisServer
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.sync import eventually

ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "100"}


def secret_file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")  # as a mounted Secret may end: the newline is stripped
    path.chmod(0o600)
    return path


async def take_once(store: RedisStore) -> bool:
    try:
        return (await store.take("b", 5, 1.0)).allowed
    finally:
        await store.close()


async def test_the_password_file_opens_a_redis_that_requires_auth(
    redis_auth_server: RedisServer, tmp_path: Path
) -> None:
    assert redis_auth_server.password is not None
    password = secret_file(tmp_path, "password", redis_auth_server.password)
    url = redis_auth_server.url
    assert await take_once(RedisStore(url, 1.0, FileCredentials(password)))
    with pytest.raises(StoreUnavailable):
        await take_once(RedisStore(url, 1.0))  # no credentials: Redis says NOAUTH
    wrong = secret_file(tmp_path, "wrong", "not-the-password")
    with pytest.raises(StoreUnavailable) as caught:
        await take_once(RedisStore(url, 1.0, FileCredentials(wrong)))
    assert "not-the-password" not in str(caught.value)


async def test_an_acl_user_logs_in_with_its_name_and_password_files(
    redis_auth_server: RedisServer, tmp_path: Path
) -> None:
    assert redis_auth_server.acl_user is not None
    name, secret = redis_auth_server.acl_user
    credentials = FileCredentials(
        secret_file(tmp_path, "password", secret), secret_file(tmp_path, "username", name)
    )
    assert await take_once(RedisStore(redis_auth_server.url, 1.0, credentials))
    wrong_user = FileCredentials(
        secret_file(tmp_path, "password2", secret), secret_file(tmp_path, "username2", "nobody")
    )
    with pytest.raises(StoreUnavailable):
        await take_once(RedisStore(redis_auth_server.url, 1.0, wrong_user))
    assert secret not in repr(credentials)  # the repr names the files only
    assert str(tmp_path / "password") in repr(credentials)


async def test_a_rotated_password_is_read_at_the_next_connection(
    redis_auth_server: RedisServer, tmp_path: Path
) -> None:
    assert redis_auth_server.password is not None
    path = secret_file(tmp_path, "password", redis_auth_server.password)
    store = RedisStore(redis_auth_server.url, 1.0, FileCredentials(path))
    admin = redis_auth_server.client()
    try:
        assert (await store.take("b", 100, 1.0)).allowed
        rotated = "rotated-" + redis_auth_server.password
        admin.config_set("requirepass", rotated)
        secret_file(tmp_path, "password", rotated)
        admin = redis_auth_server.client()
        admin.connection_pool.connection_kwargs["password"] = rotated
        admin.client_kill_filter(_type="normal", skipme=True)  # the store must reconnect

        async def allowed() -> bool:  # the first call may meet the killed connection
            return (await store.take("b", 100, 1.0)).allowed

        await eventually(allowed, 5, "a take after reconnecting", ignoring=(StoreUnavailable,))
    finally:
        await store.close()


async def test_a_missing_password_file_names_the_field_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(StoreUnavailable) as caught:
        await take_once(RedisStore("unix:///tmp/no-such-redis.sock", 0.2, FileCredentials(missing)))
    # A socket that is not there fails before AUTH; a file that is not there, at AUTH: either way
    # the message says what, and only names.
    assert "Redis unavailable" in str(caught.value)
    empty = secret_file(tmp_path, "empty", "")
    with pytest.raises(Exception) as info:
        FileCredentials(empty).get_credentials()
    assert str(info.value) == f"rate_limit.shared_password_file {empty} is empty"
    with pytest.raises(Exception) as info:
        FileCredentials(missing).get_credentials()
    assert str(info.value) == (
        f"cannot read rate_limit.shared_password_file {missing} (No such file or directory)"
    )


async def test_a_sidecar_shares_its_budget_through_an_authenticated_redis_never_showing_it(
    exchange: RunningExchange,
    redis_auth_server: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert redis_auth_server.password is not None
    password = secret_file(tmp_path, "password", redis_auth_server.password)
    rate_limit = {
        "gate_defaults": False,
        "overrides": [{"group": "spot-order-place", "limit": 3, "per_s": 600}],
        "shared": redis_auth_server.url,
        "shared_password_file": str(password),
    }
    entry, environ, api_key, secret = env_key("bot", "spot-only", rate_limit=rate_limit)
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry])
    with caplog.at_level(logging.DEBUG):
        async with running_sidecar(config, environ) as sidecar, aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(5):
                async with http.post(
                    sidecar.url("bot") + "/api/v4/spot/orders",
                    data=json.dumps(ORDER),
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    statuses.append(resp.status)
            samples = await scrape(sidecar.admin_url)
            async with http.get(sidecar.admin_url + "/metrics") as resp:
                metrics = await resp.text()
    assert statuses == [201, 201, 201, 429, 429]
    assert samples[("gate_sidecar_rate_budget_fallback", (("key", "bot"),))] == 0
    buckets = redis_auth_server.client().keys("gate-sidecar:bot:*")
    assert buckets == [b"gate-sidecar:bot:spot-order-place"]  # the budget lives in Redis
    report = render_config_report(parse_config(config.model_dump(mode="json"), environ={}))
    shown = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    for text in (shown, metrics, report, repr(config)):
        assert redis_auth_server.password not in text
    assert f"AUTH from {password}" in report
