"""The key self-check: Gate's answer to GET /account/main_keys against the key's policy; a wide
key is held (503, readiness false, a log line saying what to change on Gate), a narrow key is
served, and a rotation to a wide key is refused while the old pair keeps serving."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.config import parse_config
from sidecar.policy.keyscope import judge
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.sync import eventually

WIDE = {p: False for p in ("spot", "futures", "delivery", "wallet", "account", "options")}
FUTURES_ONLY = {"futures": False, "account": True}
WHITELIST = ["203.0.113.7"]


def key_info(perms: dict[str, bool], whitelist: list[str] | None = None, state: int = 1) -> Any:
    return {
        "state": state,
        "ip_whitelist": whitelist if whitelist is not None else WHITELIST,
        "perms": [{"name": n, "read_only": ro} for n, ro in perms.items()],
    }


def policy(name: str, **extra: Any) -> Any:
    entry = {"name": "bot", "listen": "127.0.0.1:0", "source": {"env": {}}, "policy": name}
    return parse_config({"keys": [{**entry, **extra}]}, environ={}).keys[0].compile_policy()


# (case, preset, Gate's answer, a part of each expected problem; none = the key passes)
CASES: list[tuple[str, str, Any, list[str]]] = [
    ("a futures key with only futures and account read", "futures-only",
     key_info(FUTURES_ONLY), []),
    ("a futures key that can withdraw", "futures-only",
     key_info({**FUTURES_ONLY, "wallet": False}),
     ["permission 'wallet' is read-write (it allows withdrawals and transfers), but the policy "
      "of bot writes nothing under /api/v4/wallet or /api/v4/withdrawals: on Gate, remove "
      "'wallet'"]),
    ("a futures key that may trade spot", "futures-only",
     key_info({**FUTURES_ONLY, "spot": False}), ["on Gate, remove 'spot'"]),
    ("a futures key with spot read", "futures-only", key_info({**FUTURES_ONLY, "spot": True}),
     ["permission 'spot' is granted, but the policy of bot uses nothing"]),
    ("a read-only key that may write spot", "read-only", key_info({"spot": False}),
     ["on Gate, set 'spot' to read-only"]),
    ("a read-only key that reads everything", "read-only",
     key_info({"spot": True, "futures": True, "wallet": True}), []),
    ("a key with no IP whitelist", "futures-only", key_info(FUTURES_ONLY, []),
     ["no IP whitelist: on Gate, add the sidecar's outbound IP address(es)"]),
    ("a locked key", "futures-only", key_info(FUTURES_ONLY, state=2), ["the key is locked"]),
    ("a full-trading key with every permission but withdrawals closed", "full-trading",
     key_info(WIDE), []),
    ("an answer that is not an object", "futures-only", [], ["not a JSON object"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("preset", "info", "problems"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_the_self_check_names_what_to_change_on_gate(
    preset: str, info: Any, problems: list[str]
) -> None:
    scope = judge(policy(preset), info)
    assert scope.ok == (not problems)
    for expected in problems:
        assert any(expected in p for p in scope.problems), scope.problems


def test_a_key_that_opens_withdrawals_explicitly_needs_wallet_write() -> None:
    opened = policy(
        "futures-only",
        allow_withdrawals=True,
        policy={
            "presets": ["futures-only"],
            "allow": [{"methods": ["POST"], "path": "/api/v4/withdrawals"}],
        },
    )
    assert judge(opened, key_info({**FUTURES_ONLY, "wallet": False})).ok


async def status_of(
    sidecar: RunningSidecar, path: str = "/api/v4/futures/usdt/accounts"
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(sidecar.url("bot") + path) as resp:
        return resp.status, await resp.json()


async def readyz(sidecar: RunningSidecar) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(sidecar.admin_url + "/readyz") as resp:
        return resp.status, await resp.json()


async def until(check: Any, timeout: float = 10.0) -> None:
    await eventually(check, timeout, getattr(check, "__name__", "check"), step=0.02)


async def test_a_wide_key_is_refused_until_fixed_on_gate_and_a_narrow_key_is_served(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    entry, environ, api_key, secret = env_key("bot", "futures-only", self_check=True)
    exchange.state.add_key(api_key, secret)
    exchange.state.set_key_info(api_key, {**FUTURES_ONLY, "wallet": False}, [])
    with caplog.at_level(logging.DEBUG):
        async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:

            async def refused() -> bool:
                status, doc = await status_of(sidecar)
                return status == 503 and "self-check refused" in doc["message"]

            await until(refused)  # "self-check pending" until Gate answered
            _, doc = await status_of(sidecar)
            assert doc["label"] == "SIDECAR_KEY_UNAVAILABLE"
            assert "self-check refused the key" in doc["message"]
            assert "remove 'wallet'" in doc["message"] and "IP whitelist" in doc["message"]
            ready, body = await readyz(sidecar)
            assert ready == 503 and body["missing"] == ["bot"]
            assert "self-check refused the key" in body["problems"][0]
            lines = [r for r in caplog.records if r.getMessage().startswith("self-check refused")]
            assert len(lines) == 1
            assert "remove 'wallet'" in lines[0].__dict__["change_on_gate"]
            # Only the self-check itself reached the exchange with this key.
            assert {r.raw_path for r in exchange.state.verified(api_key)} == {
                "/api/v4/account/main_keys"
            }

            exchange.state.set_key_info(api_key, FUTURES_ONLY, WHITELIST)  # fixed on Gate
            sidecar.sidecar.keys.refresh_all()  # what SIGHUP does; else within a minute

            async def served() -> bool:
                return (await status_of(sidecar))[0] == 200

            await until(served)
            assert (await readyz(sidecar))[0] == 200
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert secret not in logged  # the self-check signs with the key, never logs it


async def test_a_rotation_to_a_wide_key_is_refused_and_the_old_key_keeps_serving(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    old_key, old_secret = exchange.new_key()
    new_key, new_secret = exchange.new_key()
    exchange.state.set_key_info(old_key, FUTURES_ONLY, WHITELIST)
    exchange.state.set_key_info(new_key, WIDE, WHITELIST)
    secret_file = tmp_path / "gate.json"
    secret_file.write_text(json.dumps({"key": old_key, "secret": old_secret}))
    entry = {
        "name": "bot",
        "source": {"file": {"path": str(secret_file), "poll_interval_s": 0.05}},
        "policy": "futures-only",
        "self_check": True,
    }
    async with running_sidecar(make_config(exchange.url, [entry]), {}) as sidecar:

        async def served() -> bool:
            return (await status_of(sidecar))[0] == 200

        await until(served)
        secret_file.write_text(json.dumps({"key": new_key, "secret": new_secret}))
        slot = sidecar.sidecar.keys["bot"].runtime.slot

        async def refused_rotation() -> bool:
            return "refused" in (slot.last_error or "")

        await until(refused_rotation)
        assert "remove 'wallet'" in (slot.last_error or "")
        assert (await status_of(sidecar))[0] == 200
        signed = [r for r in exchange.state.verified() if r.raw_path.startswith("/api/v4/futures")]
        assert {r.api_key for r in signed} == {old_key}
