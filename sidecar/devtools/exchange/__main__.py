"""Run the test exchange alone.

    python -m sidecar.devtools.exchange --port 0 --key K --secret-env VAR


For manual trials only: it prints its URL and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

from aiohttp import web

from sidecar.devtools.exchange import ExchangeState, create_exchange_app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sidecar.devtools.exchange",
        description="local Gate-compatible verifying exchange",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--key", action="append", default=[], help="API key to accept")
    parser.add_argument("--secret", action="append", default=[], help="its secret (test only)")
    parser.add_argument(
        "--secret-env", action="append", default=[], metavar="VAR", help="read a secret from VAR"
    )
    parser.add_argument("--clock-offset", type=float, default=0.0, help="exchange clock ahead, s")
    parser.add_argument(
        "--countdown-min-s",
        type=float,
        default=5.0,
        help="the least countdown_cancel_all timeout accepted (Gate's: 5; tests may go lower)",
    )
    return parser


def _secrets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    found = list(args.secret)
    for var in args.secret_env:
        if var not in os.environ:
            parser.error(f"--secret-env {var}: the variable is not set")
        found.append(os.environ[var])
    if len(found) != len(args.key):
        parser.error(f"{len(args.key)} --key but {len(found)} secrets: give one per key")
    return found


async def _serve(state: ExchangeState, host: str, port: int) -> None:
    runner = web.AppRunner(create_exchange_app(state), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        print(f"exchange listening on http://{bound_host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    state = ExchangeState(clock_offset_s=args.clock_offset)
    state.countdown_min_s = args.countdown_min_s
    for key, secret in zip(args.key, _secrets(parser, args), strict=True):
        state.add_key(key, secret)
    asyncio.run(_serve(state, args.host, args.port))


if __name__ == "__main__":
    main()
