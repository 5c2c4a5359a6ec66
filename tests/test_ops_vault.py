"""Vault state in /metrics and /readyz, against a real OpenBao (the shared dev server)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.fixtures_bao import DevBao, unique
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import call, scrape
from tests.fixtures_sidecar import make_config, running_sidecar
from tests.sync import eventually


async def test_metrics_show_the_vault_token_logins_and_secret_version(
    exchange: RunningExchange, bao_dev: DevBao, tmp_path: Path
) -> None:
    path = unique("gate/ops")
    api_key, secret = f"v-{secrets.token_hex(6)}", secrets.token_hex(32)
    exchange.state.add_key(api_key, secret)
    version = bao_dev.put(path, {"key": api_key, "secret": secret})
    token_file = tmp_path / "token"
    token_file.write_text(bao_dev.child_token([bao_dev.policy(unique("ops"), path)], ttl="1h"))
    config = make_config(
        exchange.url,
        [{"name": "bot", "source": {"vault": {"path": path}}, "policy": "read-only"}],
        vault={
            "address": bao_dev.addr,
            "timeout_s": 5,
            "auth": {"method": "token", "token_file": str(token_file)},
        },
    )
    async with running_sidecar(config) as sidecar:
        await eventually(lambda: sidecar.sidecar.keys["bot"].runtime.slot.ready, 10, "loaded")
        assert (await call("GET", sidecar.url("bot") + "/api/v4/spot/accounts"))[0] == 200
        samples = await scrape(sidecar.admin_url)
    assert samples[("gate_sidecar_vault_ready", ())] == 1
    assert 0 < samples[("gate_sidecar_vault_token_ttl_seconds", ())] <= 3600
    assert samples[("gate_sidecar_vault_logins_total", ())] >= 1
    key_version = ("gate_sidecar_secret_version_info", (("key", "bot"), ("version", str(version))))
    assert samples[key_version] == 1
    assert not any(
        value for (name, _), value in samples.items() if name == "gate_sidecar_vault_errors_total"
    )


@pytest.fixture(autouse=True)
def _no_vault_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
