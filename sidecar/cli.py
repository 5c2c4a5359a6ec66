"""The ``gate-sidecar`` command: serve, check-config, demo, import-key, keys."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from sidecar import __version__
from sidecar.config import Config, load_config
from sidecar.config.loading import preflight
from sidecar.errors import ConfigError

CONFIG_ENV = "GATE_SIDECAR_CONFIG"


def _config_path(args: argparse.Namespace) -> str:
    path = args.config or os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError([f"--config: no config file given (or set ${CONFIG_ENV})"])
    return str(path)


def _load(args: argparse.Namespace) -> Config:
    """The config, and nothing a start would only retry forever (an unset variable)."""
    config = load_config(_config_path(args))
    problems = preflight(config, os.environ)
    if problems:
        raise ConfigError(problems)
    return config


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


SERVE_HELP = """\
Run the sidecar: one listener per key, the admin listener (healthz, readyz, metrics), the
secret sources. Stops on SIGTERM or Ctrl-C after draining in-flight requests; SIGHUP reloads
the config file. A config error (or an env source's unset variable) exits 2 before anything
starts.

example:
  GATE_KEY=... GATE_SECRET=... gate-sidecar serve --config sidecar.yaml

docs: docs/configuration.md (the file), docs/operations.md (signals, health, metrics)
"""

CHECK_HELP = """\
Validate a config file without starting anything, then print what each key may and may not
call (presets expanded), its listener, limits and secret source. Exits 2 on a problem, with one
line per problem naming the field (keys[0].listen: ...).

example:
  gate-sidecar check-config --config sidecar.yaml

docs: docs/configuration.md, docs/policy.md
"""

DEMO_HELP = """\
A walk-through on loopback, no account needed: a local OpenBao dev server (when the bao
command is installed) holding a bot's key, a local exchange that verifies signatures as Gate
does, and the sidecar. A bot without a secret reads, trades, is refused, and the key is rotated.
With --once it exits after the walk-through; without, it keeps serving until Ctrl-C so you can
try the printed curl commands.

example:
  gate-sidecar demo --once     # make demo
  gate-sidecar demo            # make demo-serve; Ctrl-C stops it

docs: docs/index.md
"""


INJECTOR_HELP = """\
Serve the Kubernetes mutating admission webhook (HTTPS: POST /mutate, GET /healthz): a pod
annotated with a profile gets gate-sidecar as a native sidecar, configured from the profile in
the injector's own config file (injector.yaml, not a sidecar config).

example:
  gate-sidecar injector --config /etc/gate-sidecar/injector.yaml

docs: docs/kubernetes.md (The injector)
"""


def _sub(sub: Any, name: str, summary: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows ``text`` (a description and an example) as written."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


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
        prog="gate-sidecar",
        description="A signing proxy for the Gate.io API v4. "
        "Run `gate-sidecar COMMAND --help` for a command's description and an example.",
    )
    parser.add_argument("--version", action="version", version=f"gate-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = _sub(sub, "serve", "run the sidecar", SERVE_HELP)
    serve.add_argument("--config", help=f"config file (default: ${CONFIG_ENV})")
    serve.set_defaults(func=cmd_serve)

    check = _sub(
        sub, "check-config", "validate a config and show what each key may call", CHECK_HELP
    )
    check.add_argument("--config", help=f"config file (default: ${CONFIG_ENV})")
    check.set_defaults(func=cmd_check_config)

    demo = _sub(sub, "demo", "run a local exchange + sidecar walk-through", DEMO_HELP)
    demo.add_argument("--once", action="store_true", help="exit after the walk-through")
    demo.set_defaults(func=cmd_demo)

    injector = _sub(sub, "injector", "serve the Kubernetes admission webhook", INJECTOR_HELP)
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
