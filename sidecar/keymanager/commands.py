"""``gate-sidecar keys``'s command line, without the key manager behind it.

Every ``gate-sidecar`` command builds the whole parser, ``serve`` included; the key manager's
modules bring hvac, requests and ``cryptography`` (about 15 MB of RSS), so they are imported
only when a ``keys`` command runs (:mod:`sidecar.keymanager.cli`, called by ``sidecar.cli``).
"""

from __future__ import annotations

import argparse
from typing import Any

CONFIG_ENV = "GATE_KEYS_CONFIG"
COMMANDS = ("run", "rotate", "status", "retire", "lock", "unlock", "check-config")
NAMED = ("rotate", "retire", "lock", "unlock")


def add_keys_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="the key manager: mint, rotate and retire Gate sub-account keys"
    )
    sub = parser.add_subparsers(dest="keys_command", required=True)
    helps = {
        "run": "run the controller (admin: /healthz /readyz /metrics)",
        "rotate": "rotate one account's key now (exit 0 when stored)",
        "status": "a table of the managed keys",
        "retire": "delete an account's key at Gate and in the store",
        "lock": "lock the sub-account at Gate (the kill switch)",
        "unlock": "unlock the sub-account at Gate",
        "check-config": "validate the file and show what each account's keys get",
    }
    for name in COMMANDS:
        cmd = sub.add_parser(name, help=helps[name])
        cmd.add_argument("--config", help=f"key manager config (default: ${CONFIG_ENV})")
        if name in NAMED:
            cmd.add_argument("account", metavar="NAME", help="an account name from the file")
    return parser
