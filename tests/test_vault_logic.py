"""The pure parts of the Vault code: error mapping, KV v2 metadata, field extraction, backoff."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import hvac.exceptions
import pytest
import requests

from sidecar.aio import backoff_s
from sidecar.credentials.sources.vault_kv import (
    VaultKVSource,
    extract_pair,
    kv1_version,
)
from sidecar.errors import SourceError
from sidecar.vault.auth.base import LoginResult, from_auth_response
from sidecar.vault.errors import (
    VaultError,
    VaultForbidden,
    VaultLoginFailed,
    VaultNotFound,
    VaultUnavailable,
    map_error,
)
from sidecar.vault.kv import kv2_current
from sidecar.vault.session import VaultSession
from sidecar.vault.settings import VaultConfig

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("exc", "mapped", "shown"),
    [
        (requests.ConnectionError("refused"), VaultUnavailable, "cannot reach Vault"),
        (requests.ReadTimeout("slow"), VaultUnavailable, "did not answer in time"),
        (hvac.exceptions.VaultDown(errors=["Vault is sealed"]), VaultUnavailable, "sealed"),
        (hvac.exceptions.InternalServerError("boom"), VaultUnavailable, "HTTP 500 boom"),
        (hvac.exceptions.BadGateway("lb"), VaultUnavailable, "HTTP 502"),
        (hvac.exceptions.RateLimitExceeded("slow down"), VaultUnavailable, "HTTP 429"),
        (hvac.exceptions.UnexpectedError("teapot"), VaultUnavailable, "UnexpectedError"),
        (hvac.exceptions.Forbidden(errors=["permission denied"]), VaultForbidden, "HTTP 403"),
        (hvac.exceptions.Unauthorized("no"), VaultForbidden, "HTTP 401"),
        (hvac.exceptions.InvalidPath(), VaultNotFound, "HTTP 404"),
        (hvac.exceptions.InvalidRequest("bad"), VaultError, "HTTP 400 bad"),
        (ValueError("odd"), VaultError, "unexpected error (ValueError)"),
    ],
)
def test_hvac_and_requests_errors_map_to_what_the_caller_must_do(
    exc: BaseException, mapped: type[VaultError], shown: str
) -> None:
    err = map_error(exc, "reading x")
    assert type(err) is mapped
    assert str(err).startswith("reading x: ") and shown in str(err)


def test_vaults_multi_line_error_text_is_flattened_and_bounded() -> None:
    exc = hvac.exceptions.Forbidden(errors=["1 error occurred:\n\t* permission denied\n\n" * 50])
    text = str(map_error(exc, "reading x"))
    assert "\n" not in text and "\t" not in text and len(text) < 300


def test_an_already_mapped_error_is_passed_through() -> None:
    err = VaultLoginFailed("cannot read secret_id_file /x")
    assert map_error(err, "logging in") is err


def _meta(current: int, **version: Any) -> dict[str, Any]:
    info = {"created_time": "2026-01-01T00:00:00Z", "deletion_time": "", "destroyed": False}
    return {"current_version": current, "versions": {str(current): {**info, **version}}}


@pytest.mark.parametrize(
    ("metadata", "version", "problem"),
    [
        (_meta(3), 3, None),
        (_meta(3, deletion_time="2026-01-01T00:00:00.123456789Z"), 3, "version 3 is deleted"),
        (_meta(3, destroyed=True), 3, "version 3 is destroyed"),
        # delete_version_after schedules a future deletion: the version is still live
        (_meta(3, deletion_time="2027-01-01T00:00:00Z"), 3, None),
        (_meta(3, deletion_time="not a time"), 3, "version 3 is deleted"),
        ({"current_version": 0, "versions": {}}, 0, "has no versions"),
        ({}, 0, "has no versions"),
    ],
)
def test_kv2_metadata_says_which_version_is_current_and_whether_it_is_usable(
    metadata: dict[str, Any], version: int, problem: str | None
) -> None:
    assert kv2_current(metadata, NOW) == (version, problem)


SPEC = VaultKVSource(path="gate/bot")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"key": "K3Y", "secret": "S3CR3T"}, None),
        ({"key": "K3Y"}, "'secret'"),
        ({"key": "", "secret": "S3CR3T"}, "'key'"),
        ({"key": 1, "secret": ["S3CR3T"]}, "'key' or 'secret'"),
        (None, "holds no data"),
    ],
)
def test_the_pair_is_taken_from_the_configured_fields_and_errors_never_quote_values(
    data: Any, error: str | None
) -> None:
    if error is None:
        assert extract_pair(data, SPEC, "secret/gate/bot") == ("K3Y", "S3CR3T")
        return
    with pytest.raises(SourceError, match=error) as info:
        extract_pair(data, SPEC, "secret/gate/bot")
    assert "S3CR3T" not in str(info.value)


def test_custom_field_names_are_honoured() -> None:
    spec = VaultKVSource(path="p", key_field="api_key", secret_field="api_secret")
    assert extract_pair({"api_key": "k", "api_secret": "s"}, spec, "w") == ("k", "s")


def test_a_kv1_version_label_is_stable_and_changes_with_either_half_of_the_pair() -> None:
    assert kv1_version("k", "s") == kv1_version("k", "s")
    assert len({kv1_version("k", "s"), kv1_version("k2", "s"), kv1_version("k", "s2")}) == 3


def test_a_login_answer_gives_the_token_and_its_lease_but_never_shows_the_token() -> None:
    result = from_auth_response(
        {"auth": {"client_token": "s.tok3n", "lease_duration": 20, "renewable": True}}
    )
    assert result == LoginResult("s.tok3n", 20.0, True)
    assert "tok3n" not in repr(result) and "tok3n" not in str(result)


def test_a_login_answer_without_a_token_is_a_login_failure() -> None:
    with pytest.raises(VaultLoginFailed):
        from_auth_response({"auth": None})


@pytest.mark.parametrize(("failures", "low", "high"), [(1, 0.4, 0.5), (3, 1.6, 2.0), (50, 2.4, 3)])
def test_login_backoff_is_exponential_jittered_and_capped(
    failures: int, low: float, high: float
) -> None:
    for _ in range(20):
        assert low <= backoff_s(failures, cap=3.0) <= high


def test_a_session_needs_an_address_and_shows_no_credentials() -> None:
    with pytest.raises(ValueError, match="address"):
        VaultSession(VaultConfig())
    cfg = VaultConfig(address="http://127.0.0.1:1/")
    session = VaultSession(cfg, environ={"VAULT_TOKEN": "T0K3N"})
    assert session.address == "http://127.0.0.1:1" and session.verify is True
    assert session.token_ttl_s is None and not session.ready
    assert "T0K3N" not in repr(session)
