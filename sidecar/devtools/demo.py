"""`gate-sidecar demo`: a local verifying exchange, a sidecar with two keys, and a walk-through.

Everything runs on loopback with throw-away keys: no account, no network. The bot side of the
walk-through is a plain HTTP client that holds no key and no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from sidecar.config import parse_config
from sidecar.devtools.bao import DevVault, dev_vault, find_bao
from sidecar.devtools.demo_keys import automatic_rotation
from sidecar.devtools.exchange import ExchangeState, create_exchange_app
from sidecar.runtime.admin_listener import open_admin
from sidecar.runtime.app import running
from sidecar.runtime.state import Sidecar


@dataclass
class Step:
    title: str
    key: str
    method: str
    path: str
    body: dict[str, Any] | None
    expect: int


STEPS = [
    Step(
        "The futures bot reads its futures balance (Gate's key-guide check)",
        "futures-bot",
        "GET",
        "/api/v4/futures/usdt/accounts",
        None,
        200,
    ),
    Step(
        "The futures bot places a futures order",
        "futures-bot",
        "POST",
        "/api/v4/futures/usdt/orders",
        {"contract": "BTC_USDT", "size": 1, "price": "60000", "tif": "gtc"},
        201,
    ),
    Step(
        "The futures bot sends an order 50 times larger than its guard allows: refused",
        "futures-bot",
        "POST",
        "/api/v4/futures/usdt/orders",
        {"contract": "BTC_USDT", "size": 50, "price": "60000", "tif": "gtc"},
        403,
    ),
    Step(
        "The futures bot tries a spot order: refused by its futures-only policy",
        "futures-bot",
        "POST",
        "/api/v4/spot/orders",
        {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "60000"},
        403,
    ),
    Step(
        "The futures bot tries a withdrawal: locked for every key",
        "futures-bot",
        "POST",
        "/api/v4/withdrawals",
        {"currency": "USDT", "amount": "1000", "address": "attacker"},
        403,
    ),
    Step(
        "The read-only reporter lists spot balances",
        "spot-reader",
        "GET",
        "/api/v4/spot/accounts",
        None,
        200,
    ),
    Step(
        "The read-only reporter tries to cancel all orders: refused",
        "spot-reader",
        "DELETE",
        "/api/v4/spot/orders?currency_pair=BTC_USDT",
        None,
        403,
    ),
]


class Narration:
    """Numbers the walk-through's steps as they are printed: a step added anywhere (a request,
    a rotation, anything else) gets the next number without renumbering the others."""

    def __init__(self) -> None:
        self.count = 0

    def next_number(self) -> int:
        """The next step's number, for a step that prints its own title."""
        self.count += 1
        return self.count

    def step(self, title: str, *, gap: bool = False) -> None:
        number = self.next_number()
        if gap:
            print()
        print(f"{number}. {title}")


def _short(body: bytes, limit: int = 240) -> str:
    text = body.decode(errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def _new_pair(state: ExchangeState, name: str) -> tuple[str, str]:
    api_key, secret = f"demo-{name}-{secrets.token_hex(4)}", secrets.token_hex(32)
    state.add_key(api_key, secret)
    return api_key, secret


def _key_entry(name: str, policy: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "listen": "127.0.0.1:0", "source": source, "policy": policy}


async def _demo(once: bool) -> int:
    with contextlib.ExitStack() as stack:
        bao = find_bao()
        vault = None
        if bao is not None:
            vault = await asyncio.to_thread(stack.enter_context, dev_vault(bao))
        return await _walkthrough(once, vault)
    raise AssertionError("unreachable")


async def _walkthrough(once: bool, vault: DevVault | None) -> int:
    state = ExchangeState()
    environ: dict[str, str] = {}
    reader_key, reader_secret = _new_pair(state, "spot-reader")
    environ.update(SPOT_READER_KEY=reader_key, SPOT_READER_SECRET=reader_secret)
    reader_source = {"env": {"key_var": "SPOT_READER_KEY", "secret_var": "SPOT_READER_SECRET"}}
    futures_key, futures_secret = _new_pair(state, "futures-bot")
    sections: dict[str, Any] = {}
    if vault is not None:
        await asyncio.to_thread(vault.write, "demo/futures-bot", futures_key, futures_secret)
        environ["VAULT_TOKEN"] = vault.token
        futures_source: dict[str, Any] = {"vault": {"path": "demo/futures-bot"}}
        sections["vault"] = {"address": vault.address, "refresh_interval_s": 1}
    else:
        environ.update(FUTURES_BOT_KEY=futures_key, FUTURES_BOT_SECRET=futures_secret)
        futures_source = {"env": {"key_var": "FUTURES_BOT_KEY", "secret_var": "FUTURES_BOT_SECRET"}}
    exchange_runner, exchange_port = await _start(create_exchange_app(state))
    exchange_url = f"http://127.0.0.1:{exchange_port}"
    config = parse_config(
        {
            "upstream": {"base_url": exchange_url},
            "admin": {"listen": "127.0.0.1:0"},
            "logging": {"audit": False},
            **sections,
            "keys": [
                {
                    **_key_entry("futures-bot", "futures-only", futures_source),
                    # Trading guards: what its orders may look like, not only where they go.
                    "guards": {"instruments": ["BTC_USDT"], "max_order_size": 10},
                },
                _key_entry("spot-reader", "read-only", reader_source),
            ],
        },
        environ={},
    )
    sidecar_stack = contextlib.AsyncExitStack()
    sidecar = await sidecar_stack.enter_async_context(running(config, environ=environ))
    admin = await open_admin(sidecar, config)
    sidecar_stack.push_async_callback(admin.close)
    for handle in sidecar.keys.values():
        await asyncio.wait_for(handle.source.loaded.wait(), timeout=15)
    urls = {name: handle.url for name, handle in sidecar.keys.items()}
    if vault is not None:
        print(f"Local OpenBao dev server (holds the futures key): {vault.address}")
    else:
        print("(bao not found: the futures key comes from the environment instead of Vault)")

    print(f"Local Gate-compatible exchange (verifies every signature): {exchange_url}")
    for name, url in urls.items():
        policy = config.key(name).policy.presets[0]
        print(f"Sidecar listener for key {name!r}: {url}  (policy: {policy})")
    print(f"Admin (healthz/readyz/metrics): {admin.url}")
    print("\nThe bot below sends plain, unsigned HTTP and holds no key or secret.")
    print(
        "This run exits after the walk-through.\n"
        if once
        else "After the walk-through this keeps serving until you press Ctrl-C.\n"
    )

    failures = 0
    narration = Narration()
    async with aiohttp.ClientSession() as bot:
        for step in STEPS:
            url = urls[step.key] + step.path
            data = json.dumps(step.body).encode() if step.body is not None else None
            async with bot.request(
                step.method, url, data=data, headers={"Content-Type": "application/json"}
            ) as resp:
                body = await resp.read()
            ok = resp.status == step.expect
            failures += not ok
            narration.step(step.title)
            print(
                f"   {step.method} {step.path} via {step.key} -> HTTP {resp.status} "
                f"{'(as expected)' if ok else f'(EXPECTED {step.expect})'}"
            )
            print(f"   {_short(body)}")
    reached = {(r.method, r.raw_path) for r in state.requests}
    leaked = [p for p in ("/api/v4/withdrawals", "/api/v4/spot/orders") if ("POST", p) in reached]
    placed = [r for r in state.requests if r.raw_path == "/api/v4/futures/usdt/orders"]
    if len(placed) != 1:  # the small order reached it; the one over the guard must not have
        leaked.append(f"{len(placed)} futures orders")
    print(
        f"\nThe exchange received {len(state.requests)} request(s); the refused ones "
        f"never reached it: {'yes' if not leaked else 'NO: ' + ', '.join(leaked)}"
    )
    failures += bool(leaked)
    if vault is not None:
        failures += not await _rotate(state, vault, sidecar, urls["futures-bot"], narration)
    if vault is not None:  # the key manager's automatic rotation (docs/key-lifecycle.md)
        number = narration.next_number()
        failures += not await automatic_rotation(number, state, vault, sidecar, exchange_url)

    fut = urls["futures-bot"]
    print("\nTry it yourself (no key, no secret on this side):")
    print(f"  curl -s {fut}/api/v4/futures/usdt/accounts")
    print(
        f"  curl -s -X POST {fut}/api/v4/spot/orders -H 'Content-Type: application/json' "
        f"""-d '{{"currency_pair":"BTC_USDT"}}'"""
    )
    print(f"  curl -s {urls['spot-reader']}/api/v4/spot/accounts")
    print(f"  curl -s {admin.url}/readyz")

    try:
        if not once:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):  # before saying so: Ctrl-C works at once
                loop.add_signal_handler(sig, stop.set)
            print(
                "\nStill serving, so you can try the commands above. "
                "Press Ctrl-C to stop (or send SIGTERM); `make demo` runs the walk-through alone "
                "and exits.",
                flush=True,
            )
            await stop.wait()
    finally:
        await sidecar_stack.aclose()
        await exchange_runner.cleanup()
    print(f"\nDemo {'passed' if not failures else f'FAILED ({failures} unexpected result(s))'}.")
    return 0 if not failures else 1


async def _rotate(
    state: ExchangeState, vault: DevVault, sidecar: Sidecar, url: str, narration: Narration
) -> bool:
    """Write a new key to Vault and show the sidecar switching to it without a restart."""
    narration.step("An operator rotates the futures key in Vault (the bot does nothing)", gap=True)
    new_key, new_secret = _new_pair(state, "futures-bot-v2")
    started = time.monotonic()
    version = await asyncio.to_thread(vault.write, "demo/futures-bot", new_key, new_secret)
    slot = sidecar.keys["futures-bot"].runtime.slot
    while slot.version != str(version) and time.monotonic() - started < 10:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # a demo polling a public attribute: no event to wait on
    took = time.monotonic() - started
    async with (
        aiohttp.ClientSession() as bot,
        bot.get(url + "/api/v4/futures/usdt/accounts") as resp,
    ):
        status = resp.status
    used_new = state.requests[-1].api_key == new_key
    ok = slot.version == str(version) and status == 200 and used_new
    print(
        f"   Vault version {version} written; the sidecar checked it with a canary call and "
        f"switched in {took:.1f} s; the next request was signed with the new key: "
        f"{'yes' if ok else 'NO'}"
    )
    return ok


def run_demo(once: bool = False) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_demo(once))
    return 0
