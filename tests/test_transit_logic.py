"""Transit mode's pure parts: BYOK wrapping, key material, the hmac wire format, the CLI's input
handling, and the signer's failure modes against a stand-in Vault (hung, broken, refusing)."""

from __future__ import annotations

import argparse
import ast
import asyncio
import base64
import hashlib
import hmac
import io
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from sidecar.credentials.slot import Credentials
from sidecar.errors import KeyUnavailable
from sidecar.gate.signing import string_to_sign
from sidecar.vault.auth.token import TokenAuth
from sidecar.vault.errors import errors_text
from sidecar.vault.session import VaultSession
from sidecar.vault.settings import VaultConfig
from sidecar.vault.transit import cli
from sidecar.vault.transit.importer import (
    VECTOR_DOCUMENTED_SIGN,
    KeyImportError,
    hmac_key_material,
    vector_message,
)
from sidecar.vault.transit.signer import TransitClient, TransitSigner
from sidecar.vault.transit.wire import (
    WireError,
    hmac_path,
    hmac_request,
    latest_version,
    parse_hmac,
)
from sidecar.vault.transit.wrap import WrapError, load_wrapping_key, wrap_for_import
from tests.vectors import OFFICIAL_VECTORS

# -- wrapping -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_of(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def unwrap(ciphertext: str, private: rsa.RSAPrivateKey) -> bytes:
    """What Vault does on import: RSA-OAEP-SHA256 for the ephemeral key, then AES-KWP."""
    raw = base64.b64decode(ciphertext)
    size = private.key_size // 8
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ephemeral = private.decrypt(raw[:size], oaep)
    assert len(ephemeral) == 32
    return aes_key_unwrap_with_padding(ephemeral, raw[size:])


@pytest.mark.parametrize("length", [32, 33, 64, 100, 512])
def test_a_wrapped_key_unwraps_to_exactly_the_key_material(
    rsa_key: rsa.RSAPrivateKey, length: int
) -> None:
    material = secrets.token_bytes(length)
    ciphertext = wrap_for_import(material, load_wrapping_key(pem_of(rsa_key.public_key())))
    assert unwrap(ciphertext, rsa_key) == material


def test_each_wrap_uses_a_fresh_ephemeral_key(rsa_key: rsa.RSAPrivateKey) -> None:
    public = load_wrapping_key(pem_of(rsa_key.public_key()))
    material = secrets.token_bytes(64)
    assert wrap_for_import(material, public) != wrap_for_import(material, public)


@pytest.mark.parametrize(
    ("pem", "problem"),
    [
        ("not a pem", "not a PEM public key"),
        (pem_of(ec.generate_private_key(ec.SECP256R1()).public_key()), "not RSA"),
        (
            pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()),  # noqa: S505
            "only 1024 bits",
        ),
    ],
)
def test_an_unusable_wrapping_key_is_refused_by_name(pem: str, problem: str) -> None:
    with pytest.raises(WrapError, match=problem):
        load_wrapping_key(pem)


def test_an_empty_key_is_never_wrapped(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(WrapError):
        wrap_for_import(b"", load_wrapping_key(pem_of(rsa_key.public_key())))


# -- key material -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    ["secret", "s", "x" * 31, secrets.token_hex(32), "é" * 20],
    ids=["word", "one-char", "31-chars", "random-hex-64", "non-ascii"],  # the same in every worker
)
def test_the_imported_material_gives_the_same_hmac_as_the_secret(secret: str) -> None:
    material = hmac_key_material(secret)
    assert 32 <= len(material) <= 512
    for method, path, query, body, _ in OFFICIAL_VECTORS:
        message = string_to_sign(method, path, query, body, "1541993715")
        assert hmac.new(material, message, hashlib.sha512).digest() == (
            hmac.new(secret.encode(), message, hashlib.sha512).digest()
        )


def test_a_real_gate_sized_secret_is_imported_unchanged() -> None:
    secret = secrets.token_hex(32)
    assert hmac_key_material(secret) == secret.encode()


@pytest.mark.parametrize(
    ("secret", "problem"),
    [("", "empty"), ("x" * 513, "at most 512"), ("short\0", "NUL")],
)
def test_a_secret_transit_cannot_hold_is_refused_without_echoing_it(
    secret: str, problem: str
) -> None:
    with pytest.raises(KeyImportError, match=problem) as info:
        hmac_key_material(secret)
    assert not secret or secret not in str(info.value)


def test_the_documented_vector_sign_is_gates_example() -> None:
    method, path, query, body, sign = OFFICIAL_VECTORS[0]
    assert vector_message() == string_to_sign(method, path, query, body, "1541993715")
    assert hmac.new(b"secret", vector_message(), hashlib.sha512).hexdigest() == sign
    assert sign == VECTOR_DOCUMENTED_SIGN


# -- the hmac wire format -----------------------------------------------------------------------

DIGEST = hashlib.sha512(b"x").digest()
B64 = base64.b64encode(DIGEST).decode()


def test_the_request_carries_base64_input_and_the_pinned_version() -> None:
    assert hmac_request(b"GET\n/x", 3) == {
        "input": base64.b64encode(b"GET\n/x").decode(),
        "key_version": 3,
    }
    assert hmac_path("transit/", "gate bot") == "transit/hmac/gate%20bot/sha2-512"


def test_the_answer_becomes_lowercase_hex() -> None:
    assert parse_hmac({"data": {"hmac": f"vault:v7:{B64}"}}, 7) == DIGEST.hex()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (None, "no data.hmac"),
        ({"data": {}}, "no data.hmac"),
        ({"data": {"hmac": B64}}, "not of the form"),
        ({"data": {"hmac": f"vault:v2:{B64}"}}, "version 2, not 7"),
        ({"data": {"hmac": "vault:v7:abc"}}, "not valid base64"),
        ({"data": {"hmac": "vault:v7:" + base64.b64encode(b"short").decode()}}, "5 bytes"),
    ],
)
def test_an_unexpected_answer_is_refused(answer: Any, problem: str) -> None:
    with pytest.raises(WireError, match=problem):
        parse_hmac(answer, 7)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"type": "hmac", "latest_version": 3}, (3, None)),
        ({"type": "aes256-gcm96", "latest_version": 1}, (0, "not an hmac key")),
        ({"type": "hmac", "latest_version": 0}, (0, "has no key version")),
        ({"type": "hmac", "latest_version": True}, (0, "has no key version")),
        (None, (0, "no key data")),
    ],
)
def test_the_key_metadata_says_which_version_signs(
    info: Any, expected: tuple[int, str | None]
) -> None:
    version, problem = latest_version(info)
    assert version == expected[0]
    if expected[1] is None:
        assert problem is None
    else:
        assert problem is not None and expected[1] in problem


def test_vaults_error_text_is_one_bounded_line() -> None:
    assert errors_text(["a\n\tb", "c"]) == "a b; c"
    assert len(errors_text(["x" * 1000])) == 200
    assert errors_text(None) == ""


# -- reprs --------------------------------------------------------------------------------------


def test_a_transit_signer_shows_its_key_and_version_only() -> None:
    signer = TransitSigner(object(), "transit", "gate-bot", 4)  # type: ignore[arg-type]
    creds = Credentials("public-key-value", signer, "transit:v4")
    assert repr(signer) == "TransitSigner(key=transit/gate-bot, version=4)"
    assert "public-key-value" not in repr(creds)


# -- the CLI's input ----------------------------------------------------------------------------


def test_the_secret_is_read_from_stdin_without_the_trailing_newline() -> None:
    assert cli.read_secret(io.StringIO("abc123\n")) == "abc123"


def test_the_cli_has_no_way_to_take_the_secret_or_token_as_an_argument() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    import_key = cli.add_import_key_parser(sub)
    options = {o for a in import_key._actions for o in a.option_strings}
    assert not {o for o in options if "secret" in o or "token" in o}
    with pytest.raises(SystemExit):
        parser.parse_args(["import-key", "--transit-key", "k", "--secret", "x"])


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VAULT_TOKEN": "t"}, "no Vault address"),
        ({"VAULT_ADDR": "http://127.0.0.1:1"}, "no Vault token"),
    ],
)
def test_missing_vault_settings_fail_before_the_secret_is_read(
    environ: dict[str, str], message: str
) -> None:
    args = argparse.Namespace(
        transit_key="k",
        mount="transit",
        rotate=False,
        vault_addr=None,
        namespace=None,
        ca_file=None,
        compare_locally=False,
        timeout=1.0,
    )
    stdin, err = io.StringIO("the-secret"), io.StringIO()
    assert cli.cmd_import_key(args, environ=environ, stdin=stdin, stderr=err) == 2
    assert message in err.getvalue()
    assert stdin.tell() == 0  # not consumed


def test_the_printed_check_command_signs_exactly_the_vector() -> None:
    literal = cli._shell_literal(vector_message())
    assert "'" not in literal  # it sits inside a single-quoted shell argument
    assert ast.literal_eval(literal) == vector_message()


# -- the signer against a stand-in Vault --------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def lookup_self(request: web.Request) -> web.Response:
    return web.json_response({"data": {"ttl": 0, "renewable": False, "policies": ["root"]}})


async def fake_vault(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v1/auth/token/lookup-self", lookup_self)
    app.router.add_post("/v1/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def sign_against(
    handler: Handler, tmp_path: Path, timeout_s: float = 2.0
) -> tuple[KeyUnavailable | str, float, list[str]]:
    """One sign against a stand-in Vault: (error or SIGN, seconds taken, refusal notices)."""
    token_file = tmp_path / "token"
    token_file.write_text("stand-in-token")
    refused: list[str] = []
    async for url in fake_vault(handler):
        cfg = VaultConfig(address=url, timeout_s=2, auth=TokenAuth(token_file=token_file))
        session = VaultSession(cfg, environ={})
        await session.start()
        client = TransitClient(session, timeout_s=timeout_s)
        signer = TransitSigner(client, "transit", "gate-bot", 1, refused.append)
        await session.token()  # logged in: time only the sign
        start = time.monotonic()
        try:
            result: KeyUnavailable | str = await signer.sign(b"message")
        except KeyUnavailable as exc:
            result = exc
        took = time.monotonic() - start
        await client.close()
        await session.close()
        return result, took, refused
    raise AssertionError("unreachable")


async def hang(request: web.Request) -> web.Response:
    await asyncio.Event().wait()  # never answers: the client's timeout must end it
    return web.json_response({})


def answering(status: int, body: Any) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    return handler


async def test_a_vault_that_never_answers_costs_one_short_timeout(tmp_path: Path) -> None:
    result, took, _ = await sign_against(hang, tmp_path, timeout_s=0.5)
    assert isinstance(result, KeyUnavailable) and result.status == 503
    assert "did not sign within 0.5s" in result.message
    assert took < 1.5


@pytest.mark.parametrize(
    ("status", "body", "message", "refused"),
    [
        (500, {"errors": ["internal"]}, "Vault unavailable (HTTP 500 internal)", False),
        (
            503,
            {"errors": ["Vault is sealed"]},
            "Vault unavailable (HTTP 503 Vault is sealed)",
            False,
        ),
        (400, {"errors": ["encryption key not found"]}, "refused to sign (HTTP 400", True),
        (403, {"errors": ["permission denied"]}, "refused to sign (HTTP 403", True),
        (200, {"data": {"hmac": "vault:v2:" + B64}}, "version 2, not 1", False),
        (200, "not json at all", "no data.hmac", False),
    ],
)
async def test_every_failure_is_a_503_naming_the_key_and_never_the_message(
    tmp_path: Path, status: int, body: Any, message: str, refused: bool
) -> None:
    result, _, notices = await sign_against(answering(status, body), tmp_path)
    assert isinstance(result, KeyUnavailable)
    assert result.label == "SIDECAR_KEY_UNAVAILABLE"
    assert message in result.message and "transit/gate-bot v1" in result.message
    assert "message" not in result.message.replace("error message", "")
    assert "stand-in-token" not in result.message
    assert bool(notices) == refused


async def test_a_403_is_retried_once_with_a_fresh_login(tmp_path: Path) -> None:
    calls: list[str | None] = []

    async def first_denied(request: web.Request) -> web.Response:
        calls.append(request.headers.get("X-Vault-Token"))
        if len(calls) == 1:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        return web.json_response({"data": {"hmac": "vault:v1:" + B64}})

    result, _, refused = await sign_against(first_denied, tmp_path)
    assert result == DIGEST.hex()
    assert len(calls) == 2 and not refused


def test_gate_sidecar_offers_the_import_key_subcommand() -> None:
    from sidecar.cli import build_parser

    args = build_parser().parse_args(["import-key", "--transit-key", "gate-bot"])
    assert args.func is cli.cmd_import_key and args.mount == "transit" and not args.rotate
