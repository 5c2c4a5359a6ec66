"""``gate-sidecar import-key``: import a Gate secret into Vault transit (operator's one-time step).

The secret is read from a prompt (a terminal) or from stdin (a pipe), never from the command line
(``ps`` and shell history show arguments) and never from a file (files get copied and backed up).
The Vault token comes from ``$VAULT_TOKEN`` (or ``$BAO_TOKEN``) for the same reason. Output names
the key, the new version and transit's signature of Gate's official test vector; never the
secret.

Wired into ``sidecar.cli`` with :func:`add_import_key_parser`; also runnable on its own as
``python -m sidecar.vault.transit.cli import-key ...``.
"""

from __future__ import annotations

import argparse
import getpass
import hmac
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from sidecar.vault.errors import map_error, mapped
from sidecar.vault.transit.wire import WireError

if TYPE_CHECKING:
    from sidecar.vault.transit.importer import ImportResult

# hvac, the importer and the key wrapping (cryptography) load when the command runs: every
# `gate-sidecar` invocation builds this parser, and `serve` needs none of them.

ADDR_VARS = ("VAULT_ADDR", "BAO_ADDR")
TOKEN_VARS = ("VAULT_TOKEN", "BAO_TOKEN")
NAMESPACE_VARS = ("VAULT_NAMESPACE", "BAO_NAMESPACE")
CACERT_VARS = ("VAULT_CACERT", "BAO_CACERT")

DESCRIPTION = """\
Import a Gate API secret into Vault/OpenBao transit as a non-exportable HMAC key, so that the
sidecar signs with it (source vault_transit) without ever holding the secret. The secret is read
from a prompt, or from stdin when stdin is not a terminal; the Vault token from $VAULT_TOKEN.

example:
  export VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=...
  gate-sidecar import-key --transit-key futures-bot    # asks for the secret

docs: docs/transit.md
"""


def add_import_key_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``import-key`` to a ``parser.add_subparsers()`` object; its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "import-key",
        help="import a Gate secret into Vault transit (vault_transit keys)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--transit-key", required=True, metavar="NAME", help="transit key name")
    parser.add_argument("--mount", default="transit", help="transit mount (default: transit)")
    parser.add_argument(
        "--rotate",
        action="store_true",
        help="import the secret as a new version of an existing key (a key rotation)",
    )
    parser.add_argument("--vault-addr", help="Vault address (default: $VAULT_ADDR or $BAO_ADDR)")
    parser.add_argument("--namespace", help="Vault namespace (default: $VAULT_NAMESPACE)")
    parser.add_argument("--ca-file", help="CA bundle for Vault's TLS (default: $VAULT_CACERT)")
    parser.add_argument(
        "--compare-locally",
        action="store_true",
        help="also compute the test signature locally with the secret and compare",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="Vault timeout (seconds)")
    parser.set_defaults(func=cmd_import_key)
    return parser


def _env(environ: Mapping[str, str], names: Sequence[str]) -> str | None:
    return next((environ[n] for n in names if environ.get(n)), None)


def read_secret(stdin: TextIO, prompt: str = "Gate API secret: ") -> str:
    """The secret from a hidden prompt (terminal) or stdin (pipe), surrounding whitespace
    dropped (Gate secrets are hex; a trailing newline from ``echo`` is not part of them)."""
    if stdin.isatty():
        return getpass.getpass(prompt).strip()
    return stdin.read().strip()


def _shell_literal(message: bytes) -> str:
    """The message as a double-quoted Python bytes literal, safe inside the single-quoted shell
    one-liner printed for the operator's own check."""
    text = message.decode().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'b"{text}"'


def render(result: ImportResult) -> list[str]:
    from sidecar.vault.transit.importer import VECTOR_DOCUMENTED_SIGN, vector_message

    verb = "imported a new version of" if result.rotated else "imported"
    message = vector_message()
    lines = [
        f"{verb} transit key {result.mount}/{result.key}: version {result.version} "
        "(type hmac, not exportable)",
        "",
        "Test signature: transit signed the string to sign of Gate's first official test vector",
        f"  {message.decode()!r}",
        f"with version {result.version}:",
        f"  SIGN = {result.vector_sign}",
        "",
        "Compare it with your own computation (the secret is read from a hidden prompt):",
        "  python3 -c 'import getpass,hashlib,hmac; print(hmac.new(getpass.getpass().encode(), "
        f"{_shell_literal(message)}, hashlib.sha512).hexdigest())'",
    ]
    if hmac.compare_digest(result.vector_sign, VECTOR_DOCUMENTED_SIGN):
        lines.append("(this is Gate's documented SIGN for its example secret 'secret')")
    if result.matches_local is True:
        lines.append("local HMAC with the secret you entered: MATCHES")
    elif result.matches_local is False:
        lines.append("local HMAC with the secret you entered: DOES NOT MATCH")
    lines += result.notes
    if result.rotated:
        lines += [
            "",
            "Running sidecars pick the new version up at their next refresh, after the canary "
            "call accepts it.",
        ]
    return lines


def cmd_import_key(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    environ = os.environ if environ is None else environ
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr

    def fail(message: str, code: int = 1) -> int:
        print(f"import-key: {message}", file=err)
        return code

    addr = args.vault_addr or _env(environ, ADDR_VARS)
    if not addr:
        return fail("no Vault address: pass --vault-addr or set $VAULT_ADDR", 2)
    token = _env(environ, TOKEN_VARS)
    if not token:
        return fail("no Vault token: set $VAULT_TOKEN (never passed on the command line)", 2)
    ca_file = args.ca_file or _env(environ, CACERT_VARS)
    secret = read_secret(stdin)
    if not secret:
        return fail("no secret given (empty input)", 2)
    import hvac

    from sidecar.vault.transit.importer import KeyImportError, import_key
    from sidecar.vault.transit.wrap import WrapError

    client = hvac.Client(
        url=addr,
        token=token,
        namespace=args.namespace or _env(environ, NAMESPACE_VARS),
        verify=ca_file or True,
        timeout=args.timeout,
    )
    try:
        result = import_key(
            client,
            args.mount,
            args.transit_key,
            secret,
            rotate=args.rotate,
            compare_locally=args.compare_locally,
        )
    except (KeyImportError, WrapError, WireError) as exc:
        return fail(str(exc))
    except mapped() as exc:
        return fail(str(map_error(exc, f"importing {args.mount}/{args.transit_key}")))
    finally:
        del secret
        client.adapter.close()
    for line in render(result):
        print(line, file=out)
    return 1 if result.matches_local is False else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gate-sidecar")
    add_import_key_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
