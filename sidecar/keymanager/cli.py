"""``gate-sidecar keys``: the key manager's commands.

``run`` (the controller and its admin listener), ``rotate NAME``, ``status``, ``retire NAME``,
``lock NAME``, ``unlock NAME``, ``check-config``; all take ``--config`` (default
``$GATE_KEYS_CONFIG``). The Vault token or login comes from the file's ``vault.auth`` exactly as
for the sidecar. Output never holds a secret: keys appear as fingerprints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TextIO

from aiohttp import web

from sidecar.config.listen import parse_listen
from sidecar.credentials.slot import fingerprint
from sidecar.errors import ConfigError
from sidecar.keymanager.account import AccountKeeper, KeyView, RotationFailed
from sidecar.keymanager.commands import CONFIG_ENV
from sidecar.keymanager.gate_keys import GateError
from sidecar.keymanager.loading import load_manager_config
from sidecar.keymanager.manager import KeyManager, NotLeader, admin_app, perms_of
from sidecar.keymanager.perms import as_body
from sidecar.keymanager.progress import Phase
from sidecar.keymanager.settings import ManagerConfig
from sidecar.ops.logs import setup_logging
from sidecar.vault.errors import VaultError


def _load(args: argparse.Namespace) -> ManagerConfig:
    path = args.config or os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError([f"--config: no config file given (or set ${CONFIG_ENV})"])
    return load_manager_config(path)


def cmd_keys(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    cfg = _load(args)
    command: str = args.keys_command
    if command == "check-config":
        for line in describe(cfg):
            print(line, file=out)
        return 0
    account = getattr(args, "account", None)
    if account is not None and cfg.account(account) is None:
        print(f"keys {command}: no account named {account!r} in the file", file=sys.stderr)
        return 2
    setup_logging(cfg.logging.format, cfg.logging.level)
    if command == "run":
        return asyncio.run(run(cfg))
    return asyncio.run(one_shot(cfg, command, account, out))


def describe(cfg: ManagerConfig) -> list[str]:
    lines = [
        f"gate: {cfg.gate.base_url}",
        f"vault: {cfg.vault.address}",
        f"admin: {cfg.admin.listen}",
    ]
    lines.append(f"main key: {cfg.main_key.source.source_kind.describe(cfg.main_key.source.spec)}")
    for a in cfg.accounts:
        store = a.store.vault or a.store.vault_transit
        kind = "vault kv" if a.store.vault is not None else "vault transit"
        perms = ", ".join(
            f"{p['name']}{'' if p['read_only'] else ' (rw)'}" for p in as_body(perms_of(a))
        )
        lines += [
            f"account {a.name} (user {a.user_id}, mode {a.mode}): store {kind} {store}",
            f"  perms: {perms}",
            f"  ip_whitelist: {', '.join(a.ip_whitelist) or 'none (allow_no_ip_whitelist)'}",
            f"  rotate every {a.rotate_every:g}s; activation within {a.activation_timeout:g}s; "
            f"retire after {a.retire_idle:g}s idle or {a.retire_max_wait:g}s",
        ]
    return lines


async def run(cfg: ManagerConfig) -> int:
    manager = KeyManager(cfg, environ=os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(admin_app(manager), access_log=None)
    await runner.setup()
    addr = parse_listen(cfg.admin.listen)
    site = web.TCPSite(runner, addr.host, addr.port)
    try:
        await site.start()
        async with manager.started():
            task = asyncio.create_task(manager.run(), name="key-manager")
            await stop.wait()
            await manager.stop(task, manager.grace_s)
    finally:
        await runner.cleanup()
    return 0


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render_status(views: list[KeyView], now: float) -> list[str]:
    rows = [("ACCOUNT", "KEY", "AGE", "STATE", "LAST ACCESS", "NEXT ROTATION", "PHASE")]
    for v in views:
        rows.append(
            (
                v.account,
                "-" if v.key is None else fingerprint(v.key),
                _ago(v.age_s),
                v.state,
                "-" if v.last_access is None else f"{_ago(now - v.last_access)} ago",
                "-" if v.next_rotation is None else f"in {_ago(max(0.0, v.next_rotation - now))}",
                v.phase,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


async def one_shot(
    cfg: ManagerConfig,
    command: str,
    account: str | None,
    out: TextIO,
    *,
    environ: Mapping[str, str] | None = None,
) -> int:
    manager = KeyManager(cfg, environ=os.environ if environ is None else environ)
    async with manager.started():
        try:
            if command == "status":
                await manager.wait_main_key()
                views = [await k.view() for k in manager.keepers.values()]
                for line in render_status(views, time.time()):
                    print(line, file=out)
                return 0
            await manager.lead()
            assert account is not None
            keeper = manager.keepers[account]
            actions: dict[str, Callable[[AccountKeeper], Awaitable[str]]] = {
                "rotate": _rotate,
                "retire": _retire,
                "lock": lambda k: _lock(k, True),
                "unlock": lambda k: _lock(k, False),
            }
            print(await actions[command](keeper), file=out)
            return 0
        except (NotLeader, RotationFailed, GateError, VaultError, RuntimeError) as exc:
            print(f"keys {command}: {exc}", file=sys.stderr)
            return 1


async def _rotate(keeper: AccountKeeper) -> str:
    progress = await keeper.tick(rotate=False)  # resume, sweep, retire an idle previous key
    if progress.phase is not Phase.IDLE:
        raise RotationFailed(
            "the previous key is still being retired (it may still be in use); try again later"
        )
    progress = await keeper.rotate(progress)
    assert progress.current is not None
    return f"rotated {keeper.cfg.name}: new key {fingerprint(progress.current)} stored"


async def _retire(keeper: AccountKeeper) -> str:
    await keeper.retire()
    return f"retired {keeper.cfg.name}: deleted at Gate and in the store"


async def _lock(keeper: AccountKeeper, locked: bool) -> str:
    await keeper.lock(locked=locked)
    return f"{'locked' if locked else 'unlocked'} sub-account of {keeper.cfg.name}"
