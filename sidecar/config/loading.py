"""Reading a config file: YAML, the schema, then the checks that span several fields.

Every problem becomes one readable line that names its field (``keys[0].source.vault.path:
required field is missing``); :class:`~sidecar.errors.ConfigError` carries them all at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sidecar.config import messages
from sidecar.config.listen import ListenAddress, parse_listen
from sidecar.config.models import Config, KeyConfig
from sidecar.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def format_errors(exc: ValidationError, root: type[BaseModel] = Config) -> list[str]:
    """One line per problem, naming its field (sidecar.config.messages); the key manager's own
    file passes its model as ``root`` (or gets the lines without suggestions)."""
    return messages.format_errors(exc, root)


def _cross_checks(cfg: Config) -> list[str]:
    """Problems that span several fields: duplicates, exposure, missing sections."""
    problems: list[str] = []
    claimed: dict[str, str] = {}  # "port 8081" or a socket path -> the field that took it

    def claim(addr: ListenAddress, field: str, raw: str) -> None:
        if addr.port == 0:  # any free port (tests): never a clash
            return
        ident = addr.path if addr.path is not None else f"port {addr.port}"
        if ident in claimed:
            problems.append(f"{field}: {raw!r} is already used by {claimed[ident]}")
        else:
            claimed[ident] = field

    admin = parse_listen(cfg.admin.listen)
    claim(admin, "admin.listen", cfg.admin.listen)
    if not admin.is_loopback and not cfg.admin.allow_remote:
        problems.append(
            f"admin.listen: {cfg.admin.listen!r} is not loopback; set admin.allow_remote: true"
        )
    first_index: dict[str, int] = {}
    for i, key in enumerate(cfg.keys):
        where = f"keys[{i}]"
        if key.name in first_index:
            first = first_index[key.name]
            problems.append(f"{where}.name: duplicate key name {key.name!r} (also keys[{first}])")
        first_index.setdefault(key.name, i)
        claim(key.address, f"{where}.listen", key.listen)
        if not key.address.is_loopback and not key.allow_remote:
            problems.append(
                f"{where}.listen: {key.listen!r} is not a loopback address or unix socket; "
                "set allow_remote: true only if you understand that anyone who can reach it "
                "trades with this key"
            )
        problems += _client_auth_checks(key, where)
        if key.source.source_kind.needs_vault and cfg.vault is None:
            problems.append(f"{where}.source: a {key.source.kind} source needs a vault: section")
        if not (key.policy.presets or key.policy.allow):
            problems.append(f"{where}.policy: allows nothing (name a preset or an allow rule)")
    return problems


def _client_auth_checks(key: KeyConfig, where: str) -> list[str]:
    """A listener other processes can reach needs client authentication; unix-only settings
    need a unix socket."""
    problems = []
    auth = key.client_auth
    if not key.address.is_loopback and not auth.authenticates:
        problems.append(
            f"{where}.client_auth: {key.listen!r} is reachable from other hosts; set "
            "client_auth.token_file, or client_auth.tls with a client_ca_file (mTLS)"
        )
    if not key.address.is_unix:
        for name, value in (
            ("socket_group", key.socket_group),
            ("client_auth.peer_uids", auth.peer_uids),
            ("client_auth.peer_gids", auth.peer_gids),
        ):
            if value is not None:
                problems.append(f"{where}.{name}: only applies to a unix socket listen address")
    return problems


def validate_document(
    data: Any,
    model: type[ModelT],
    checks: Callable[[ModelT], list[str]],
    environ: Mapping[str, str] | None = None,
) -> ModelT:
    """A parsed YAML/JSON document as ``model``, then ``checks`` (the problems that span
    several fields); ConfigError with one line per problem. An empty ``vault.address`` takes
    $VAULT_ADDR. The sidecar's file and the key manager's both come through here, so they
    report alike."""
    environ = os.environ if environ is None else environ
    if not isinstance(data, dict):
        raise ConfigError(["(top level): the config must be a mapping"])
    vault = data.get("vault")
    if isinstance(vault, dict) and not vault.get("address") and environ.get("VAULT_ADDR"):
        data = {**data, "vault": {**vault, "address": environ["VAULT_ADDR"]}}
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, model)) from None
    problems = checks(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _checks(cfg: Config) -> list[str]:
    problems = _cross_checks(cfg)
    if cfg.vault is not None and not cfg.vault.address:
        problems.append("vault.address: not set and $VAULT_ADDR is empty")
    return problems


def parse_config(data: Any, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed YAML/JSON document; raise ConfigError with one line per problem."""
    return validate_document(data, Config, _checks, environ)


def preflight(
    cfg: Config, environ: Mapping[str, str], names: Collection[str] | None = None
) -> list[str]:
    """What stops ``serve`` and ``check-config`` before anything starts, one line per key: a
    problem a running sidecar could only retry forever (an env source's unset variable).
    ``names``: only those keys (a reload checks the keys whose source is new)."""
    problems = []
    for i, key in enumerate(cfg.keys):
        if names is not None and key.name not in names:
            continue
        check = key.source.source_kind.preflight
        problem = None if check is None else check(key.source.spec, environ)
        if problem is not None:
            problems.append(f"keys[{i}].source.{key.source.kind} (key {key.name!r}): {problem}")
    return problems


def read_document(path: str | Path) -> Any:
    """The parsed YAML of a config file; ConfigError naming the file (and line) otherwise."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file ({exc.strerror})"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            [f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    return parse_config(read_document(path), environ)
