"""Config parsing: every problem is one readable line naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.config import load_config, parse_config
from sidecar.errors import ConfigError

GOOD_KEY = {
    "name": "spot-reader",
    "listen": "127.0.0.1:8081",
    "source": {"env": {"key_var": "GATE_KEY", "secret_var": "GATE_SECRET"}},
    "policy": "read-only",
}

ISSUE_EXAMPLE = """
upstream:
  base_url: https://api.gateio.ws
  connect_timeout_s: 5
  timeout_s: 30
  ca_file: null
admin:
  listen: 127.0.0.1:9901
keys:
  - name: spot-reader
    listen: 127.0.0.1:8081
    source: {env: {key_var: GATE_KEY, secret_var: GATE_SECRET}}
    policy: read-only
  - name: futures-bot
    listen: 127.0.0.1:8082
    source: {file: {path: /vault/secrets/gate.json}}
    policy:
      presets: [futures-only]
      allow: [{methods: [POST], path: /api/v4/wallet/transfers}]
      deny:  [{methods: ["*"], path: /api/v4/futures/*/positions/*/leverage}]
"""


def _key(**changes: Any) -> dict[str, Any]:
    return {**GOOD_KEY, **changes}


def test_the_example_from_the_config_contract_parses() -> None:
    cfg = parse_config(yaml.safe_load(ISSUE_EXAMPLE), environ={})
    assert [k.name for k in cfg.keys] == ["spot-reader", "futures-bot"]
    assert cfg.keys[0].policy.presets == ["read-only"]
    assert cfg.keys[1].source.kind == "file"
    assert cfg.keys[1].policy.deny[0].methods == ["*"]
    assert cfg.upstream.base_url == "https://api.gateio.ws"


def test_defaults_point_at_real_gate_with_tls_and_a_loopback_admin() -> None:
    cfg = parse_config({"keys": [GOOD_KEY]}, environ={})
    assert cfg.upstream.base_url == "https://api.gateio.ws"
    assert cfg.admin.listen == "127.0.0.1:9901"
    assert cfg.server.max_body_bytes == 1024 * 1024
    assert cfg.server.event_loop == "auto"
    assert cfg.upstream.max_response_bytes == 64 * 1024 * 1024


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    (
        "an unknown top-level field",
        {"keys": [GOOD_KEY], "upstrem": {}},
        "upstrem: unknown field 'upstrem' (did you mean 'upstream'?)",
    ),
    (
        "an unknown key field",
        {"keys": [_key(polcy="x")]},
        "keys[0].polcy: unknown field 'polcy' (did you mean 'policy'?)",
    ),
    (
        "a missing policy",
        {"keys": [{k: v for k, v in GOOD_KEY.items() if k != "policy"}]},
        "keys[0].policy: required field is missing",
    ),
    (
        "an unknown preset",
        {"keys": [_key(policy="yolo")]},
        "keys[0].policy.presets[0]: unknown preset 'yolo'",
    ),
    (
        "an unknown preset in the object form",
        {"keys": [_key(policy={"presets": ["read-only", "x"]})]},
        "keys[0].policy.presets[1]: unknown preset 'x'",
    ),
    (
        "a duplicate name",
        {"keys": [GOOD_KEY, _key(listen="127.0.0.1:8082")]},
        "keys[1].name: duplicate key name 'spot-reader'",
    ),
    (
        "a duplicate port",
        {"keys": [GOOD_KEY, _key(name="b")]},
        "keys[1].listen: '127.0.0.1:8081' is already used by keys[0].listen",
    ),
    (
        "a key on the admin port",
        {"keys": [_key(listen="127.0.0.1:9901")]},
        "keys[0].listen: '127.0.0.1:9901' is already used by admin.listen",
    ),
    (
        "a non-loopback listener",
        {"keys": [_key(listen="0.0.0.0:8081")]},
        "keys[0].listen: '0.0.0.0:8081' is not a loopback address",
    ),
    ("a bad key name", {"keys": [_key(name="Spot Reader")]}, "keys[0].name: must match"),
    ("a bad listen address", {"keys": [_key(listen="8081")]}, "keys[0].listen: expected host:port"),
    (
        "two sources",
        {"keys": [_key(source={"env": {}, "file": {"path": "/x"}})]},
        "keys[0].source: set exactly one of",
    ),
    (
        "an unknown source kind",
        {"keys": [_key(source={"ssm": {}})]},
        "keys[0].source.ssm: unknown field 'ssm' (known fields: env, file",
    ),
    (
        "a vault source without a vault section",
        {"keys": [_key(source={"vault": {"path": "g/b"}})]},
        "keys[0].source: a vault source needs a vault: section",
    ),
    (
        "a rule outside /api/v4",
        {"keys": [_key(policy={"allow": [{"methods": ["GET"], "path": "/x"}]})]},
        "keys[0].policy.allow[0].path: must start with /api/v4/",
    ),
    (
        "an unknown method",
        {"keys": [_key(policy={"allow": [{"methods": ["GIT"], "path": "/api/v4/x"}]})]},
        "keys[0].policy.allow[0].methods: unknown method 'GIT'",
    ),
    ("an empty policy", {"keys": [_key(policy={})]}, "keys[0].policy: allows nothing"),
    (
        "a wrong type",
        {"keys": [GOOD_KEY], "upstream": {"timeout_s": "soon"}},
        "upstream.timeout_s:",
    ),
    (
        "a base_url with a path",
        {"keys": [GOOD_KEY], "upstream": {"base_url": "https://x/api/v4"}},
        "upstream.base_url: must be scheme://host",
    ),
    ("no keys", {"keys": []}, "keys: List should have at least 1 item"),
    (
        "a zero response limit",
        {"keys": [GOOD_KEY], "upstream": {"max_response_bytes": 0}},
        "upstream.max_response_bytes:",
    ),
    (
        "the removed server.listener",
        {"keys": [GOOD_KEY], "server": {"listener": "aiohttp"}},
        "server: server.listener was removed: every key listener is the lean one",
    ),
    (
        "the removed upstream.transport",
        {"keys": [GOOD_KEY], "upstream": {"transport": "lean"}},
        "upstream: upstream.transport was removed: the lean forwarder is the only one",
    ),
    (
        "an unknown event loop",
        {"keys": [GOOD_KEY], "server": {"event_loop": "trio"}},
        "server.event_loop:",
    ),
    (
        "a zero header timeout",
        {"keys": [GOOD_KEY], "server": {"header_timeout_s": 0}},
        "server.header_timeout_s:",
    ),
    (
        "a tiny head limit",
        {"keys": [GOOD_KEY], "server": {"max_header_bytes": 10}},
        "server.max_header_bytes:",
    ),
    (
        "no connections",
        {"keys": [GOOD_KEY], "server": {"max_connections": 0}},
        "server.max_connections:",
    ),
    ("vault without an address", {"keys": [GOOD_KEY], "vault": {}}, "vault.address: not set"),
]


@pytest.mark.parametrize(("case", "data", "expected"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_a_bad_config_fails_with_one_line_naming_the_field(
    case: str, data: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data, environ={})
    assert any(line.startswith(expected) for line in err.value.problems), err.value.problems


def test_several_problems_are_reported_together_one_per_line() -> None:
    data = {"keys": [_key(policy="yolo"), _key(name="B", listen="0.0.0.0:1")]}
    with pytest.raises(ConfigError) as err:
        parse_config(data, environ={})
    assert len(err.value.problems) >= 2
    assert all("\n" not in p for p in err.value.problems)


def test_vault_address_defaults_to_the_vault_addr_environment_variable() -> None:
    cfg = parse_config({"keys": [GOOD_KEY], "vault": {}}, environ={"VAULT_ADDR": "http://v:8200"})
    assert cfg.vault is not None and cfg.vault.address == "http://v:8200"


def test_remote_listeners_need_an_explicit_opt_in() -> None:
    remote = _key(
        listen="0.0.0.0:8081", allow_remote=True, client_auth={"token_file": "/run/gate/token"}
    )
    cfg = parse_config({"keys": [remote]}, environ={})
    assert not cfg.keys[0].address.is_loopback


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("keys:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "line" in err.value.problems[0]


def test_check_config_exits_non_zero_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"keys": [_key(policy="yolo"), _key(name="x", listen="bad")]}))
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert any("keys[0].policy.presets[0]: unknown preset 'yolo'" in line for line in lines)
    assert any("keys[1].listen" in line for line in lines)
    assert "Traceback" not in proc.stderr


def test_the_config_path_may_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(ISSUE_EXAMPLE)
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar", "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GATE_SIDECAR_CONFIG": str(path), "GATE_KEY": "k", "GATE_SECRET": "s"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "spot-reader" in proc.stdout
