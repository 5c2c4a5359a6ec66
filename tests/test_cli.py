"""`gate-sidecar check-config`: validates without starting anything; shows what keys may call."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sidecar.cli import main

GOOD = """
admin: {listen: "127.0.0.1:9901"}
keys:
  - name: spot-reader
    listen: 127.0.0.1:8081
    source: {env: {key_var: READER_KEY, secret_var: READER_SECRET}}
    policy: read-only
  - name: futures-bot
    listen: unix:/run/gate/futures.sock
    source: {file: {path: /vault/secrets/gate.json}}
    policy:
      presets: [futures-only]
      allow: [{methods: [POST], path: /api/v4/wallet/transfers}]
      deny: [{methods: ["*"], path: /api/v4/futures/*/positions/*/leverage}]
"""


#: The variables the configs below name (check-config refuses an env source whose are unset).
ENV = {"READER_KEY": "k", "READER_SECRET": "s", "GATE_KEY": "k", "GATE_SECRET": "s"}


@pytest.fixture(autouse=True)
def _env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sidecar.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_check_config_prints_each_keys_listener_source_and_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", _write(tmp_path, GOOD)]) == 0
    out = capsys.readouterr().out
    reader, futures = out.split("\nkey futures-bot\n")
    assert out.startswith("config OK: 2 key(s); admin on 127.0.0.1:9901")
    assert "key spot-reader\n  listen: 127.0.0.1:8081\n" in reader
    assert "source: env (key $READER_KEY, secret $READER_SECRET; read once)" in reader
    assert "GET      /api/v4/**  -          preset read-only" in reader
    assert "(no deny rules)" in reader
    assert "  listen: unix:/run/gate/futures.sock" in futures
    assert "source: file /vault/secrets/gate.json (checked every 2s)" in futures
    rows = [" ".join(line.split()) for line in futures.splitlines()]
    assert "* /api/v4/futures/** - preset futures-only" in rows  # the preset, expanded
    assert "POST /api/v4/wallet/transfers - allow[0]" in rows
    assert "* /api/v4/futures/*/positions/*/leverage deny[0]" in rows
    locked = "non-GET /api/v4/withdrawals/** withdrawals: moves funds out locked"
    assert locked in rows  # locked endpoints are named, with why
    escalation = "sub-accounts and their keys: privilege escalation locked"
    assert f"non-GET /api/v4/sub_accounts/** {escalation}" in rows


def test_a_spot_only_key_shows_the_account_condition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = GOOD.replace("presets: [futures-only]", "presets: [spot-only]")
    assert main(["check-config", "--config", _write(tmp_path, cfg)]) == 0
    rows = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "POST /api/v4/spot/orders spot account only preset spot-only" in rows


def test_an_explicitly_unlocked_withdrawal_is_shown_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = """
    keys:
      - name: treasury
        listen: 127.0.0.1:8081
        source: {env: {}}
        policy: {allow: [{methods: [POST], path: /api/v4/withdrawals}]}
        allow_withdrawals: true
    """
    assert main(["check-config", "--config", _write(tmp_path, cfg)]) == 0
    rows = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert (
        "non-GET /api/v4/withdrawals/** withdrawals: moves funds out "
        "open to allow[0] (allow_withdrawals)"
    ) in rows


BAD = """
admin: {listen: "0.0.0.0:9901"}
keys:
  - name: Bad Name
    listen: 127.0.0.1:8081
    source: {env: {}}
    policy: yolo
  - name: b
    listen: 127.0.0.1:8081
    source: {env: {}}
    policy: read-only
"""


def test_a_bad_config_exits_2_with_one_line_per_problem_naming_field_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", _write(tmp_path, BAD)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert all(line.startswith("config error: ") for line in lines)
    assert any("keys[0].name" in line and "'Bad Name'" in line for line in lines)
    assert any("keys[0].policy" in line and "'yolo'" in line for line in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keys: [", "invalid YAML"),
        ("[]", "(top level): the config must be a mapping"),
        ("keys: []", "keys"),
    ],
)
def test_unparseable_files_are_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    assert main(["check-config", "--config", _write(tmp_path, text)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: ") and expected in err


def test_a_policy_glob_that_can_never_match_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = GOOD.replace("path: /api/v4/wallet/transfers", "path: /api/v4/wallet/trans**")
    assert main(["check-config", "--config", _write(tmp_path, bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: ") and err.count("\n") == 1
    assert "policy.allow[0].path: " in err and "'/api/v4/wallet/trans**'" in err


def test_a_missing_file_is_reported_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", "/nonexistent/sidecar.yaml"]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_check_config_runs_as_a_command_and_starts_nothing(tmp_path: Path) -> None:
    # Port 8081 and the unix socket directory need not exist or be free: nothing is opened.
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar", "check-config", "--config", _write(tmp_path, GOOD)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "key futures-bot" in proc.stdout and proc.stderr == ""


AUTH = """
admin: {listen: "127.0.0.1:9901", metrics_token_file: METRICS}
server: {header_timeout_s: 5, body_timeout_s: 7.5, idle_timeout_s: 20, max_connections: 64,
         max_header_bytes: 4096, max_headers: 30, max_body_bytes: 2048}
keys:
  - name: remote
    listen: 0.0.0.0:8443
    allow_remote: true
    source: {env: {}}
    policy: read-only
    client_auth:
      token_file: TOKEN
      tls: {cert_file: /tls/tls.crt, key_file: /tls/tls.key, client_ca_file: /tls/ca.crt}
    allowed_hosts: [sidecar.trading.svc]
    forward_headers: [X-Trace-Id]
  - name: local
    listen: unix:/run/gate/local.sock
    socket_group: trading
    source: {env: {}}
    policy: read-only
    client_auth: {peer_uids: [1000, 1001], peer_gids: [2000]}
  - name: open
    listen: 127.0.0.1:8081
    source: {env: {}}
    policy: read-only
"""


def _report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, str]]:
    token, metrics = tmp_path / "bot-token", tmp_path / "metrics-token"
    token.write_text("client-token-value-1234\n")
    metrics.write_text("metrics-token-value-5678\n")
    cfg = AUTH.replace("METRICS", str(metrics)).replace("TOKEN", str(token))
    assert main(["check-config", "--config", _write(tmp_path, cfg)]) == 0
    out = capsys.readouterr().out
    head, *keys = out.split("\nkey ")
    return head, {k.split("\n", 1)[0]: k for k in keys}


def test_check_config_shows_who_may_use_each_key_and_never_a_tokens_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head, keys = _report(tmp_path, capsys)
    assert "token-value" not in head + "".join(keys.values())
    assert f"admin: /metrics needs a bearer token (the file {tmp_path}/metrics-token)" in head
    remote = keys["remote"]
    assert "  listen: 0.0.0.0:8443 (TLS)\n  client_auth:\n" in remote
    assert f"    token: X-Sidecar-Token must match the file {tmp_path}/bot-token\n" in remote
    assert "    tls: certificate /tls/tls.crt, key /tls/tls.key\n" in remote
    assert "    client certificate: required, signed by /tls/ca.crt (mTLS)\n" in remote
    assert "  allowed_hosts: sidecar.trading.svc (and the listener's own address forms)" in remote
    assert "  forward_headers: X-Trace-Id (and the headers Gate uses)" in remote
    local = keys["local"]
    assert "  listen: unix:/run/gate/local.sock (mode 0660, group trading)" in local
    assert "    local peers (SO_PEERCRED): uid 1000, 1001 or gid 2000" in local
    assert "  allowed_hosts: not checked on a unix socket" in local
    opened = keys["open"]
    assert "  client_auth: none (whoever can connect may use the key)" in opened
    assert "  allowed_hosts: - (only the listener's own address forms)" in opened
    assert "  forward_headers: - (only the headers Gate uses)" in opened


def test_check_config_shows_the_listener_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head, _ = _report(tmp_path, capsys)
    assert head.splitlines()[2:] == [
        "listener limits (every key listener and the admin listener):",
        "  request head: within 5 s, at most 4096 bytes and 30 header fields",
        "  request body: within 7.5 s, at most 2048 bytes",
        "  idle keep-alive connection: closed after 20 s",
        "  open connections: at most 64 per listener (503 beyond)",
        "  shutdown: in-flight requests get 10 s",
    ]


def test_check_config_says_when_metrics_are_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", _write(tmp_path, GOOD)]) == 0
    assert "\nadmin: /metrics open (no admin.metrics_token_file)\n" in capsys.readouterr().out
