"""The key manager's pure parts and its config file: perms, drift, retry rule, progress, status."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.config.models import PolicyConfig
from sidecar.errors import ConfigError
from sidecar.keymanager.account import KeyView
from sidecar.keymanager.cli import render_status
from sidecar.keymanager.gate_keys import Limiter, Minted, Step, next_step
from sidecar.keymanager.loading import parse_manager_config
from sidecar.keymanager.perms import drift, least_perms, too_wide
from sidecar.keymanager.progress import Phase, Progress
from sidecar.keymanager.settings import parse_duration
from sidecar.policy.engine import compile_policy
from sidecar.policy.keyscope import judge


def _policy(preset: str) -> Any:
    return compile_policy("bot", PolicyConfig(presets=[preset]), allow_withdrawals=False)


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("futures-only", {"account": True, "futures": False}),
        ("futures-read-only", {"account": True, "futures": True}),
        ("spot-only", {"account": True, "spot": False}),
        ("read-only", None),  # every product readable: every perm read-only, wallet included
    ],
)
def test_least_perms_follow_the_policy(preset: str, expected: dict[str, bool] | None) -> None:
    perms = least_perms(_policy(preset))
    if expected is not None:
        assert perms == expected
    else:
        assert all(perms.values()) and "wallet" in perms
    # by construction the minted key passes the sidecar's own self-check
    info = {
        "state": 1,
        "ip_whitelist": ["192.0.2.1"],
        "perms": [{"name": n, "read_only": ro} for n, ro in perms.items()],
    }
    assert judge(_policy(preset), info).ok


def test_perms_wider_than_the_policy_and_a_read_write_wallet_are_refused() -> None:
    futures = _policy("futures-only")
    assert too_wide(futures, {"futures": False, "account": True}) == []
    assert any("'spot'" in p for p in too_wide(futures, {"futures": False, "spot": True}))
    assert any("wallet" in p for p in too_wide(_policy("full-trading"), {"wallet": False}))
    assert any("'account'" in p for p in too_wide(futures, {"account": False}))


def test_drift_names_each_change() -> None:
    key = {
        "perms": [{"name": "futures", "read_only": True}, {"name": "spot", "read_only": False}],
        "ip_whitelist": ["198.51.100.1"],
    }
    found = drift({"futures": False, "account": True}, ["203.0.113.7"], key)
    assert found.changes == (
        "perm account: add (read-only)",
        "perm futures: read-write",
        "perm spot: remove",
        "ip_whitelist: 198.51.100.1 -> 203.0.113.7",
    )
    same = {"perms": [{"name": "account", "read_only": True}], "ip_whitelist": ["203.0.113.7"]}
    assert not drift({"account": True}, ["203.0.113.7"], same).any


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (200, Step.DONE),
        (204, Step.DONE),
        (None, Step.RETRY),
        (429, Step.RETRY),
        (500, Step.RETRY),
        (503, Step.RETRY),
        (400, Step.REFUSED),
        (401, Step.REFUSED),
        (404, Step.REFUSED),
    ],
)
def test_retry_rule(status: int | None, step: Step) -> None:
    assert next_step(status) is step


def test_progress_round_trips_through_vault_data() -> None:
    p = Progress(Phase.RETIRING, 7, "new", "old", None, 3, 1700000000.5)
    data = p.to_data()
    assert all(isinstance(v, str) for v in data.values())
    assert Progress.from_data(data) == p
    assert Progress.from_data({"phase": "bogus"}) == Progress()
    assert Progress.from_data(None) == Progress()


def test_a_minted_secret_never_shows_in_a_repr() -> None:
    minted = Minted("k" * 32, {"key": "k" * 32}, "s3cr3t" * 10)
    assert "s3cr3t" not in repr(minted) and "s3cr3t" not in repr(minted.credentials())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604800.0), ("10m", 600.0), ("2h", 7200.0), ("250ms", 0.25), (5, 5.0)],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


# -- the config file ---------------------------------------------------------------------------


def _data(**account: Any) -> dict[str, Any]:
    return {
        "vault": {"address": "http://127.0.0.1:8200"},
        "main_key": {"source": {"vault": {"path": "gate/key-manager"}}},
        "accounts": [
            {
                "name": "futures-bot",
                "user_id": 10002345,
                "store": {"vault": {"path": "gate/futures-bot"}},
                "policy": "futures-only",
                "ip_whitelist": ["203.0.113.7"],
                **account,
            }
        ],
    }


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_manager_config(data, environ={})
    return caught.value.problems


def test_the_issue_example_is_valid() -> None:
    cfg = parse_manager_config(
        _data(rotate_every="7d", activation_timeout="10m", retire_idle="10m", retire_max_wait="2h"),
        environ={},
    )
    account = cfg.accounts[0]
    assert (account.rotate_every, account.retire_max_wait) == (604800.0, 7200.0)
    assert cfg.admin.listen == "127.0.0.1:9911"


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ({"ip_whitelist": []}, "ip_whitelist: required"),
        ({"ip_whitelist": ["10.0.0.0/8"]}, "IPv4 addresses only"),
        (
            {"perms": [{"name": "wallet", "read_only": False}]},
            "'wallet' read-write is never minted",
        ),
        ({"perms": [{"name": "spot", "read_only": False}]}, "accounts[0].perms: permission 'spot'"),
        ({"perms": [{"name": "withdraw"}]}, "accounts[0].perms[0].name"),
        ({"retire_max_wait": "1m"}, "retire_max_wait must be at least retire_idle"),
        ({"rotate_every": "soon"}, "accounts[0].rotate_every: must be a duration"),
        ({"store": {"vault": {"path": "p", "kv_version": 1}}}, "KV v2"),
        ({"store": {"vault_transit": {"key": "k", "api_key": "x"}}}, "api_key_path: required"),
        ({"store": {}}, "set exactly one of vault and vault_transit"),
        ({"policy": {"presets": []}}, "accounts[0].policy: allows nothing"),
    ],
)
def test_config_problems_name_the_field(account: dict[str, Any], expected: str) -> None:
    problems = _problems(_data(**account))
    assert any(expected in p for p in problems), problems


def test_no_whitelist_only_when_allowed() -> None:
    cfg = parse_manager_config(_data(ip_whitelist=[], allow_no_ip_whitelist=True), environ={})
    assert cfg.accounts[0].ip_whitelist == []


def test_status_table() -> None:
    views = [
        KeyView("futures-bot", "a" * 32, "normal", 90.0, 1000.0, 1300.0, "idle"),
        KeyView("spot-bot", None, "none stored", None, None, None, "idle"),
    ]
    lines = render_status(views, now=1030.0)
    assert lines[0].split() == [
        "ACCOUNT",
        "KEY",
        "AGE",
        "STATE",
        "LAST",
        "ACCESS",
        "NEXT",
        "ROTATION",
        "PHASE",
    ]
    assert "futures-bot" in lines[1] and "1.5m" in lines[1] and "30s ago" in lines[1]
    assert "in 4.5m" in lines[1] and "a" * 32 not in lines[1]
    assert lines[2].split()[:2] == ["spot-bot", "-"]


def test_check_config_command(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(_data()))
    run = [sys.executable, "-m", "sidecar", "keys", "check-config", "--config", str(path)]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "perms: account, futures (rw)" in out.stdout
    assert "ip_whitelist: 203.0.113.7" in out.stdout
    path.write_text(yaml.safe_dump(_data(ip_whitelist=[])))
    bad = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "accounts[0]: ip_whitelist: required" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_docs_example_loads_with_the_managers_loader() -> None:
    page = (Path(__file__).parent.parent / "docs" / "key-lifecycle.md").read_text()
    [example] = [block.split("```", 1)[0] for block in page.split("```yaml\n")[1:]]
    cfg = parse_manager_config(yaml.safe_load(example), environ={})
    assert [a.name for a in cfg.accounts] == ["futures-bot", "spot-bot"]
    assert cfg.accounts[1].store.vault_transit is not None


async def test_the_limiter_keeps_gates_sub_account_budget() -> None:
    """80 per 10 s at Gate; here 4 per 0.4 s: the 5th and 6th calls wait for their tokens."""
    limiter = Limiter(4, 0.4)
    started = time.monotonic()
    for _ in range(6):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.15  # two tokens at 10 per second
