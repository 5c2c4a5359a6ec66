"""Run the test exchange standalone: python -m sidecar.exchange --port 0 --key K --secret-env VAR."""

from __future__ import annotations

import argparse
import os

from aiohttp import web

from sidecar.exchange import ExchangeState, create_exchange_app


def main() -> None:
    parser = argparse.ArgumentParser(description="local Gate-compatible verifying exchange")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", action="append", default=[], help="API key to accept")
    parser.add_argument("--secret", action="append", default=[], help="its secret (test only)")
    parser.add_argument("--secret-env", action="append", default=[], help="read secret from VAR")
    args = parser.parse_args()
    secrets = args.secret + [os.environ[v] for v in args.secret_env]
    state = ExchangeState()
    for key, secret in zip(args.key, secrets, strict=True):
        state.add_key(key, secret)
    web.run_app(create_exchange_app(state), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
