"""Config errors a person understands: each message quoted whole, as `check-config` prints it.

An unknown field names its closest known field; a missing field, a wrong type and a bad duration
say what is expected, with an example (the field's default where it has one); an env source's
unset variable stops check-config at once (exit 2) naming the variable and the key. Each
subcommand's --help has a description and an example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import build_parser, main
from sidecar.config import parse_config
from sidecar.errors import ConfigError

KEY: dict[str, Any] = {
    "name": "spot-reader",
    "listen": "127.0.0.1:8081",
    "source": {"env": {"key_var": "GATE_KEY", "secret_var": "GATE_SECRET"}},
    "policy": "read-only",
}


def _problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config, environ={})
    return caught.value.problems


def _without(field: str) -> dict[str, Any]:
    return {k: v for k, v in KEY.items() if k != field}


MESSAGES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "a typo of a required field: one line, with the suggestion (no 'missing policy' beside)",
        {"keys": [{**_without("policy"), "polciy": "read-only"}]},
        ["keys[0].polciy: unknown field 'polciy' (did you mean 'policy'?)"],
    ),
    (
        "a typo of a section",
        {"keys": [KEY], "upstrem": {}},
        ["upstrem: unknown field 'upstrem' (did you mean 'upstream'?)"],
    ),
    (
        "a typo inside a nested section",
        {"keys": [{**KEY, "guards": {"max_size": 1}}]},
        ["keys[0].guards.max_size: unknown field 'max_size' (did you mean 'max_order_size'?)"],
    ),
    (
        "an unknown field like no known one: the known ones are listed",
        {
            "keys": [KEY],
            "vault": {"address": "http://127.0.0.1:8200", "auth": {"method": "token", "tokn": "x"}},
        },
        ["vault.auth.token.tokn: unknown field 'tokn' (known fields: method, token_file)"],
    ),
    (
        "a missing required field, with an example",
        {"keys": [_without("listen")]},
        ["keys[0].listen: required field is missing, e.g. listen: 127.0.0.1:8081"],
    ),
    (
        "no keys at all",
        {},
        [
            "keys: required field is missing, e.g. keys: [{name: spot-reader, "
            "listen: 127.0.0.1:8081, source: {...}, policy: read-only}]"
        ],
    ),
    (
        "a wrong type: a word for a number, the default as the example",
        {"keys": [KEY], "server": {"max_connections": "lots"}},
        ["server.max_connections: expected a whole number, e.g. max_connections: 512 (got 'lots')"],
    ),
    (
        "a wrong type: a word for a boolean",
        {"keys": [KEY], "logging": {"audit": "perhaps"}},
        ["logging.audit: expected true or false, e.g. audit: true (got 'perhaps')"],
    ),
    (
        "a duration with a unit",
        {"keys": [KEY], "clock": {"interval_s": "5m"}},
        [
            "clock.interval_s: expected a duration in seconds (a number), "
            "e.g. interval_s: 300 (got '5m')"
        ],
    ),
    (
        "a duration of zero",
        {"keys": [KEY], "server": {"header_timeout_s": 0}},
        [
            "server.header_timeout_s: expected a duration in seconds (a number greater than 0), "
            "e.g. header_timeout_s: 10 (got 0)"
        ],
    ),
    (
        "an auth section without its method",
        {
            "keys": [KEY],
            "vault": {"address": "http://127.0.0.1:8200", "auth": {"token_file": "/t"}},
        },
        ["vault.auth: expected method: one of 'token', 'approle', 'kubernetes'"],
    ),
    (
        "a value outside a choice",
        {"keys": [KEY], "logging": {"format": "xml"}},
        ["logging.format: expected 'json' or 'text' (got 'xml')"],
    ),
]


@pytest.mark.parametrize(
    ("config", "expected"), [c[1:] for c in MESSAGES], ids=[c[0] for c in MESSAGES]
)
def test_each_config_error_says_what_is_expected(
    config: dict[str, Any], expected: list[str]
) -> None:
    assert _problems(config) == expected


def test_an_env_source_with_unset_variables_stops_check_config_naming_them_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sidecar.yaml"
    reader = {**KEY, "source": {"env": {"key_var": "READER_KEY", "secret_var": "READER_SECRET"}}}
    path.write_text(
        yaml.safe_dump({"keys": [KEY, {**reader, "name": "b", "listen": "127.0.0.1:8082"}]})
    )
    monkeypatch.delenv("GATE_KEY", raising=False)
    monkeypatch.delenv("GATE_SECRET", raising=False)
    monkeypatch.setenv("READER_KEY", "k")
    monkeypatch.delenv("READER_SECRET", raising=False)
    assert main(["check-config", "--config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "config error: keys[0].source.env (key 'spot-reader'): environment variables $GATE_KEY "
        "and $GATE_SECRET are not set: export them before starting",
        "config error: keys[1].source.env (key 'b'): environment variable $READER_SECRET is not "
        "set: export it before starting",
    ]
    monkeypatch.setenv("GATE_KEY", "k")
    monkeypatch.setenv("GATE_SECRET", "s")
    monkeypatch.setenv("READER_SECRET", "s")
    assert main(["check-config", "--config", str(path)]) == 0


@pytest.mark.parametrize("command", ["serve", "check-config", "demo", "import-key", "injector"])
def test_each_subcommand_help_has_a_description_and_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    usage, _, rest = out.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert usage.startswith(f"usage: gate-sidecar {command}")
    assert len(description.split()) >= 15, description  # a real description, not only flags
    example = out.split("example:\n", 1)[1].splitlines()[0]
    assert f"gate-sidecar {command}" in example or "export" in example, out
    assert "docs/" in out
