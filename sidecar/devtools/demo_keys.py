"""The demo's key-manager step: ``gate-sidecar keys`` rotates the futures key by itself.

A main-account key goes to the demo's OpenBao; the key manager, given the futures bot's store,
finds a key there that Gate's sub-account list does not know, mints ``gs-futures-bot-1`` (the
exchange waits a second before accepting it, as Gate does for minutes), stores it, and the
sidecar switches to it. No secret is printed or typed by anyone.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp

from sidecar.devtools.bao import DevVault
from sidecar.devtools.exchange import ExchangeState
from sidecar.keymanager.loading import parse_manager_config
from sidecar.keymanager.manager import KeyManager
from sidecar.runtime.state import Sidecar

USER_ID = 10002345


async def automatic_rotation(
    number: int, state: ExchangeState, vault: DevVault, sidecar: Sidecar, exchange_url: str
) -> bool:
    print(f"\n{number}. The key manager (gate-sidecar keys) rotates the futures key by itself")
    main_key, main_secret = f"demo-main-{secrets.token_hex(4)}", secrets.token_hex(32)
    state.add_key(main_key, main_secret)
    state.sub_accounts.activation_delay_s = 1.0
    await asyncio.to_thread(vault.write, "demo/key-manager", main_key, main_secret)
    config = parse_manager_config(
        {
            "gate": {"base_url": exchange_url},
            "vault": {"address": vault.address, "refresh_interval_s": 1},
            "main_key": {"source": {"vault": {"path": "demo/key-manager"}}},
            "check_interval": "500ms",
            "accounts": [
                {
                    "name": "futures-bot",
                    "user_id": USER_ID,
                    "store": {"vault": {"path": "demo/futures-bot"}},
                    "policy": "futures-only",
                    "ip_whitelist": ["127.0.0.1"],
                    "rotate_every": "1h",
                    "retire_idle": "2s",
                    "retire_max_wait": "10s",
                }
            ],
        },
        environ={},
    )
    manager = KeyManager(config, environ={"VAULT_TOKEN": vault.token})
    slot = sidecar.keys["futures-bot"].runtime.slot
    started = time.monotonic()
    async with manager.started():
        task = asyncio.create_task(manager.run())
        minted = state.sub_accounts.keys
        while time.monotonic() - started < 20:
            creds = slot.credentials
            if creds is not None and creds.api_key in minted:
                break
            await asyncio.sleep(0.1)  # a demo polling a public attribute
        await manager.stop(task, 10)
    took = time.monotonic() - started
    creds = slot.credentials
    key = None if creds is None else minted.get(creds.api_key)
    url = sidecar.keys["futures-bot"].url + "/api/v4/futures/usdt/accounts"
    async with aiohttp.ClientSession() as bot, bot.get(url) as resp:
        status = resp.status
    ok = key is not None and status == 200 and state.requests[-1].api_key == key.key
    perms = (
        "none"
        if key is None
        else ", ".join(f"{p['name']}{'' if p['read_only'] else ' (rw)'}" for p in key.perms)
    )
    print(
        f"   minted {key.name if key else '?'} at Gate (perms: {perms}; whitelist "
        f"{','.join(key.ip_whitelist) if key else '?'}), waited for Gate to accept it, wrote it "
        f"to Vault; the sidecar switched in {took:.1f} s; signed with it: {'yes' if ok else 'NO'}"
    )
    return ok
