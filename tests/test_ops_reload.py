"""Config reload: what a new file changes (pure), and applying it to a running sidecar."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from sidecar.config import Config, parse_config
from sidecar.runtime.reload import Reloader, ReloadRefused, apply_config, plan_reload
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import OpsSetup, call, exchange_keys, ops_setup, scrape
from tests.fixtures_sidecar import make_config
from tests.fixtures_ws import recv_json, ws_bench


def _config(keys: list[dict[str, Any]], **sections: Any) -> Config:
    data: dict[str, Any] = {"keys": keys, **sections}
    return parse_config(data, environ={})


def _key(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "listen": f"127.0.0.1:{8000 + len(name)}",
        "source": {"env": {"key_var": f"{name.upper()}_K", "secret_var": f"{name.upper()}_S"}},
        "policy": "read-only",
        **overrides,
    }


BASE = [_key("a"), _key("bb")]


@pytest.mark.parametrize(
    ("new_keys", "summary"),
    [
        (BASE, {"added": [], "removed": [], "changed": {}, "unchanged": ["a", "bb"]}),
        (
            [_key("a", policy="futures-only"), _key("bb")],
            {"added": [], "removed": [], "changed": {"a": ["policy"]}, "unchanged": ["bb"]},
        ),
        (
            [_key("a", allow_withdrawals=True), _key("bb")],
            {"added": [], "removed": [], "changed": {"a": ["policy"]}, "unchanged": ["bb"]},
        ),
        (
            [_key("a", listen="127.0.0.1:9999"), _key("bb")],
            {"added": [], "removed": [], "changed": {"a": ["listener"]}, "unchanged": ["bb"]},
        ),
        (
            [_key("a", source={"file": {"path": "/s.json"}}), _key("bb")],
            {
                "added": [],
                "removed": [],
                "changed": {"a": ["secret"]},
                "unchanged": ["bb"],
            },
        ),
        (
            [_key("a", max_stale_s=60), _key("bb")],
            {
                "added": [],
                "removed": [],
                "changed": {"a": ["secret"]},
                "unchanged": ["bb"],
            },
        ),
        (
            [_key("bb"), _key("ccc")],
            {"added": ["ccc"], "removed": ["a"], "changed": {}, "unchanged": ["bb"]},
        ),
        (  # allow_remote only matters when the file is validated
            [_key("a", allow_remote=True), _key("bb")],
            {"added": [], "removed": [], "changed": {}, "unchanged": ["a", "bb"]},
        ),
        (
            [_key("a", allowed_hosts=["bots.internal"], forward_headers=["X-Trace"]), _key("bb")],
            {"added": [], "removed": [], "changed": {"a": ["admission"]}, "unchanged": ["bb"]},
        ),
        (
            [_key("a", ws={"max_connections": 2, "on_rotation": "close"}), _key("bb")],
            {"added": [], "removed": [], "changed": {"a": ["ws"]}, "unchanged": ["bb"]},
        ),
        (
            [_key("a", client_auth={"token_file": "/run/t"}), _key("bb")],
            {"added": [], "removed": [], "changed": {"a": ["admission"]}, "unchanged": ["bb"]},
        ),
        (
            [_key("a", client_auth={"tls": {"cert_file": "/c", "key_file": "/k"}}), _key("bb")],
            {
                "added": [],
                "removed": [],
                "changed": {"a": ["listener", "admission"]},
                "unchanged": ["bb"],
            },
        ),
    ],
)
def test_a_reload_changes_only_what_differs_key_by_key(
    new_keys: list[dict[str, Any]], summary: dict[str, Any]
) -> None:
    assert plan_reload(_config(BASE), _config(new_keys)).summary() == summary


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        ({"upstream": {"base_url": "https://fx-api.gateio.ws"}}, "upstream: changed; restart"),
        ({"admin": {"listen": "127.0.0.1:9999"}}, "admin: changed; restart"),
        ({"server": {"max_body_bytes": 10}}, "server: changed; restart"),
    ],
)
def test_process_wide_sections_need_a_restart(sections: dict[str, Any], problem: str) -> None:
    with pytest.raises(ReloadRefused) as info:
        plan_reload(_config(BASE), _config(BASE, **sections))
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(problem)


def test_logging_and_clock_sections_apply_without_a_restart() -> None:
    new = _config(BASE, logging={"level": "debug", "audit": False}, clock={"interval_s": 60})
    assert plan_reload(_config(BASE), new).summary()["unchanged"] == ["a", "bb"]


def _running_config(s: OpsSetup, entries: list[dict[str, Any]], **sections: Any) -> Config:
    return make_config(s.exchange.url, entries, **sections)


async def test_an_added_key_opens_and_a_removed_key_closes(exchange: RunningExchange) -> None:
    async with ops_setup(exchange, {"a": "read-only", "b": "read-only"}) as s:
        new_entries, env, _ = exchange_keys(exchange, {"c": "futures-only"})
        s.environ.update(env)  # the sidecar reads the same mapping
        old_b = s.sidecar.url("b")
        plan = await apply_config(
            s.sidecar.sidecar, _running_config(s, [s.entries[0], *new_entries])
        )
        assert plan.summary() == {
            "added": ["c"],
            "removed": ["b"],
            "changed": {},
            "unchanged": ["a"],
        }
        assert set(s.sidecar.sidecar.keys) == {"a", "c"}
        assert (await call("GET", s.url("c", "/api/v4/futures/usdt/accounts")))[0] == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            await call("GET", old_b + "/api/v4/spot/accounts")
        assert (await call("GET", s.url("a", "/api/v4/spot/accounts")))[0] == 200


async def test_a_policy_change_applies_to_the_next_request_on_the_same_listener(
    exchange: RunningExchange,
) -> None:
    async with ops_setup(exchange, {"a": "full-trading"}) as s:
        url, runtime = s.sidecar.url("a"), s.sidecar.sidecar.keys["a"].runtime
        assert (await call("POST", url + "/api/v4/spot/orders", b"{}"))[0] != 403
        await apply_config(
            s.sidecar.sidecar, _running_config(s, [{**s.entries[0], "policy": "read-only"}])
        )
        assert (await call("POST", url + "/api/v4/spot/orders", b"{}"))[0] == 403
        assert s.sidecar.url("a") == url and s.sidecar.sidecar.keys["a"].runtime is runtime


async def test_a_client_token_added_by_a_reload_applies_to_the_next_request(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("reload-token-0123456789")
    async with ops_setup(exchange, {"a": "read-only"}) as s:
        url = s.url("a", "/api/v4/spot/accounts")
        assert (await call("GET", url))[0] == 200
        new = [{**s.entries[0], "client_auth": {"token_file": str(token)}}]
        plan = await apply_config(s.sidecar.sidecar, _running_config(s, new))
        assert plan.summary()["changed"] == {"a": ["admission"]}
        assert (await call("GET", url))[0] == 401
        assert s.sidecar.url("a") + "/api/v4/spot/accounts" == url


async def test_a_moved_listener_opens_before_the_old_one_closes(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    async with ops_setup(exchange, {"a": "read-only"}) as s:
        old = s.sidecar.url("a")
        sock = str(tmp_path / "a.sock")
        plan = await apply_config(
            s.sidecar.sidecar, _running_config(s, [{**s.entries[0], "listen": f"unix:{sock}"}])
        )
        assert plan.summary()["changed"] == {"a": ["listener"]}
        assert s.sidecar.url("a") == f"unix:{sock}"
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as http,
            http.get("http://sidecar/api/v4/spot/accounts") as resp,
        ):
            assert resp.status == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            await call("GET", old + "/api/v4/spot/accounts")


async def test_a_changed_source_is_loaded_then_swapped_in(exchange: RunningExchange) -> None:
    async with ops_setup(exchange, {"a": "read-only"}) as s:
        entries, env, api_keys = exchange_keys(exchange, {"a2": "read-only"})
        s.environ.update(env)
        moved = {**s.entries[0], "source": entries[0]["source"]}  # key a, now from A2_* variables
        plan = await apply_config(s.sidecar.sidecar, _running_config(s, [moved]))
        assert plan.summary()["changed"] == {"a": ["secret"]}
        assert (await call("GET", s.url("a", "/api/v4/spot/accounts")))[0] == 200
        assert exchange.state.requests[-1].api_key == api_keys["a2"]


async def test_a_listener_that_cannot_open_refuses_the_whole_reload(
    exchange: RunningExchange,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with ops_setup(exchange, {"a": "full-trading"}) as s:
            new_entries, env, _ = exchange_keys(exchange, {"b": "read-only", "c": "read-only"})
            s.environ.update(env)
            new = _running_config(
                s,
                [
                    {**s.entries[0], "policy": "read-only"},
                    new_entries[0],
                    {**new_entries[1], "listen": f"127.0.0.1:{port}"},
                ],
            )
            before = s.sidecar.sidecar.config
            with pytest.raises(ReloadRefused) as info:
                await apply_config(s.sidecar.sidecar, new)
            (problem,) = info.value.problems
            assert (
                problem.startswith("keys[2] (c): OSError") and "address already in use" in problem
            )
            # Nothing changed: not the policy, not the key b that did open.
            assert s.sidecar.sidecar.config is before and set(s.sidecar.sidecar.keys) == {"a"}
            assert (await call("POST", s.url("a", "/api/v4/spot/orders"), b"{}"))[0] != 403


async def test_the_reloader_rejects_a_broken_file_and_counts_it(
    exchange: RunningExchange, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with ops_setup(exchange, {"a": "read-only"}) as s:
        path = tmp_path / "sidecar.yaml"
        path.write_text("keys: [")
        reloader = Reloader(s.sidecar.sidecar, str(path))
        assert await reloader.reload() is False
        rejected = next(r for r in caplog.records if r.msg.startswith("config reload rejected"))
        assert "invalid YAML" in rejected.problems[0]  # type: ignore[attr-defined]
        path.write_text(yaml.safe_dump(s.sidecar.sidecar.config.model_dump(mode="json")))
        assert await reloader.reload() is True
        samples = await scrape(s.sidecar.admin_url)
    assert samples[("gate_sidecar_config_reloads_total", (("result", "rejected"),))] == 1
    assert samples[("gate_sidecar_config_reloads_total", (("result", "applied"),))] == 1


async def test_turning_the_audit_log_off_applies_at_once(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.audit")
    async with ops_setup(exchange, {"a": "read-only"}) as s:
        await call("GET", s.url("a", "/api/v4/spot/accounts"))
        assert len([r for r in caplog.records if r.name == "sidecar.audit"]) == 1
        await apply_config(
            s.sidecar.sidecar, _running_config(s, s.entries, logging={"audit": False})
        )
        await call("GET", s.url("a", "/api/v4/spot/accounts"))
        assert len([r for r in caplog.records if r.name == "sidecar.audit"]) == 1
        samples = await scrape(s.sidecar.admin_url)  # metrics still observe every request
    spot = (("group", "spot"), ("key", "a"), ("method", "GET"), ("status", "200"))
    assert samples[("gate_sidecar_requests_total", spot)] == 2


async def test_a_reload_of_keys_ws_alone_keeps_the_keys_parts_and_limits_new_connections(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    async with ws_bench(exchange, {"a": "full-trading"}, ws={"max_connections": 1}) as bench:
        sidecar = bench.sidecar.sidecar
        handle = sidecar.keys["a"]
        parts = (handle.runtime, handle.runtime.slot, handle.source, handle.task, handle.listener)
        policy, ws = handle.runtime.policy, handle.runtime.ws
        assert ws is not None
        async with aiohttp.ClientSession() as http, http.ws_connect(bench.ws_url("a")) as first:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(bench.ws_url("a"))
            assert info.value.status == 429
            # What SIGHUP runs: the file is read again and applied.
            data = sidecar.config.model_dump(mode="json")
            data["keys"][0]["ws"]["max_connections"] = 2
            path = tmp_path / "sidecar.yaml"
            path.write_text(yaml.safe_dump(data))
            assert await Reloader(sidecar, str(path)).reload() is True
            handle = sidecar.keys["a"]
            assert (
                handle.runtime,
                handle.runtime.slot,
                handle.source,
                handle.task,
                handle.listener,
            ) == parts
            assert handle.runtime.policy is policy and handle.runtime.ws is ws
            assert ws.settings.max_connections == 2
            async with http.ws_connect(bench.ws_url("a")) as second:  # the new limit applies
                await second.send_str('{"time": 1, "channel": "spot.ping"}')
                assert (await recv_json(second))["channel"] == "spot.pong"
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await http.ws_connect(bench.ws_url("a"))
                assert info.value.status == 429
            await first.send_str('{"time": 1, "channel": "spot.ping"}')
            assert (await recv_json(first))["channel"] == "spot.pong"  # never dropped


async def test_an_added_env_key_whose_variables_are_unset_refuses_the_reload(
    exchange: RunningExchange,
) -> None:
    # As serve refuses it at start: a source that could only retry forever is not taken.
    async with ops_setup(exchange, {"a": "read-only"}) as s:
        new_entries, _, _ = exchange_keys(exchange, {"c": "read-only"})  # its env never set
        before = s.sidecar.sidecar.config
        with pytest.raises(ReloadRefused) as info:
            await apply_config(s.sidecar.sidecar, _running_config(s, [*s.entries, *new_entries]))
        (problem,) = info.value.problems
        assert problem.startswith("keys[1].source.env (key 'c'): environment variables $")
        assert problem.endswith("are not set: export them before starting")
        assert s.sidecar.sidecar.config is before and set(s.sidecar.sidecar.keys) == {"a"}
