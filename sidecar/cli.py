"""The ``gate-sidecar`` command: serve, check-config, demo, import-key, keys."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sidecar import __version__
from sidecar.config import Config, load_config
from sidecar.errors import ConfigError

CONFIG_ENV = "GATE_SIDECAR_CONFIG"


def _config_path(args: argparse.Namespace) -> str:
    path = args.config or os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError([f"--config: no config file given (or set ${CONFIG_ENV})"])
    return str(path)


def _load(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args))


def cmd_serve(args: argparse.Namespace) -> int:
    from sidecar.runtime.serve import serve

    config = _load(args)
    return serve(config, _config_path(args))


def cmd_check_config(args: argparse.Namespace) -> int:
    from sidecar.ops.report import render_config_report

    config = _load(args)
    print(render_config_report(config))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sidecar.devtools.demo import run_demo

    return run_demo(once=args.once)


def cmd_injector(args: argparse.Namespace) -> int:
    from sidecar.injector.config import load_injector_config
    from sidecar.injector.server import serve_injector

    if not args.config:
        raise ConfigError(["--config: no injector config file given"])
    return serve_injector(load_injector_config(args.config))


def cmd_keys(args: argparse.Namespace) -> int:
    from sidecar.keymanager.cli import cmd_keys as run_keys

    return run_keys(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate-sidecar", description="A signing proxy for the Gate.io API v4."
    )
    parser.add_argument("--version", action="version", version=f"gate-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the sidecar")
    serve.add_argument("--config", help=f"config file (default: ${CONFIG_ENV})")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate a config and show what each key may call")
    check.add_argument("--config", help=f"config file (default: ${CONFIG_ENV})")
    check.set_defaults(func=cmd_check_config)

    demo = sub.add_parser("demo", help="run a local exchange + sidecar walk-through")
    demo.add_argument("--once", action="store_true", help="exit after the walk-through")
    demo.set_defaults(func=cmd_demo)

    injector = sub.add_parser("injector", help="serve the Kubernetes admission webhook")
    injector.add_argument("--config", help="injector config file (injector.yaml)")
    injector.set_defaults(func=cmd_injector)

    from sidecar.vault.transit.cli import add_import_key_parser

    add_import_key_parser(sub)
    from sidecar.keymanager.commands import add_keys_parser

    add_keys_parser(sub).set_defaults(func=cmd_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return result
