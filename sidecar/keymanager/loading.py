"""Reading the key manager's file: the schema, then the checks that need the policy engine.

Problems are reported as the sidecar's own file reports them: one line each, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidecar.config.listen import parse_listen
from sidecar.config.loading import read_document, validate_document
from sidecar.keymanager.perms import too_wide
from sidecar.keymanager.settings import ManagerConfig
from sidecar.policy.engine import compile_policy


def _checks(cfg: ManagerConfig) -> list[str]:
    problems = []
    if not parse_listen(cfg.admin.listen).is_loopback and not cfg.admin.allow_remote:
        problems.append(
            f"admin.listen: {cfg.admin.listen!r} is not loopback; set admin.allow_remote: true"
        )
    if not cfg.vault.address:
        problems.append("vault.address: not set and $VAULT_ADDR is empty")
    for i, account in enumerate(cfg.accounts):
        where = f"accounts[{i}]"
        if not (account.policy.presets or account.policy.allow):
            problems.append(f"{where}.policy: allows nothing (name a preset or an allow rule)")
            continue
        policy = compile_policy(account.name, account.policy, allow_withdrawals=False)
        if account.perms is not None:
            asked = {p.name: p.read_only for p in account.perms}
            problems += [f"{where}.perms: {p}" for p in too_wide(policy, asked)]
    return problems


def parse_manager_config(data: Any, environ: Mapping[str, str] | None = None) -> ManagerConfig:
    return validate_document(data, ManagerConfig, _checks, environ)


def load_manager_config(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> ManagerConfig:
    return parse_manager_config(read_document(path), environ)
