"""One small exception tree for everything that can go wrong talking to Vault.

hvac raises one class per HTTP status and requests raises its own tree for network trouble; callers
only need to know *what to do*: keep the held pair and retry (:class:`VaultUnavailable`), treat the
key as revoked (:class:`VaultForbidden` after a fresh login, :class:`VaultNotFound`), or report a
login that Vault refused (:class:`VaultLoginFailed`). :func:`map_error` is the one place that
decides. Messages name the operation, the status and Vault's own error text (which never echoes a
request body), never a token or a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # hvac and requests load with the first Vault call: see mapped()
    import hvac.exceptions

MAX_DETAIL = 200  # Vault's error text is quoted for diagnosis, but bounded


class VaultError(Exception):
    """Any failed Vault call. ``kind`` is the label of the errors metric."""

    kind: ClassVar[str] = "other"


class VaultUnavailable(VaultError):
    """Vault cannot answer now (unreachable, timeout, sealed, standby, 429 or 5xx): retry later."""

    kind = "unavailable"


class VaultForbidden(VaultError):
    """Vault refused the token (403/401): the token expired or lost its policy."""

    kind = "forbidden"


class VaultNotFound(VaultError):
    """Nothing at that path (404), or the requested version is deleted or destroyed."""

    kind = "not_found"


class VaultLoginFailed(VaultError):
    """Logging in failed for a reason other than an outage (bad credentials, missing file)."""

    kind = "login"


def errors_text(errors: object) -> str:
    """Vault's ``errors`` (a list of messages, or one) as one bounded line."""
    if isinstance(errors, list | tuple):
        text = "; ".join(str(e) for e in errors)
    else:
        text = str(errors) if errors else ""
    # Vault's multi-error format spreads over lines and tabs.
    return " ".join(text.split())[:MAX_DETAIL]


def _detail(exc: hvac.exceptions.VaultError) -> str:
    # str(exc) would append the URL, which is fine, but args[0] is the bare message.
    bare = exc.args[0] if exc.args and exc.args[0] else ""
    return errors_text(exc.errors or bare)


def _status(exc: hvac.exceptions.VaultError) -> int | None:
    import hvac.exceptions

    statuses: dict[type[hvac.exceptions.VaultError], int] = {
        hvac.exceptions.InvalidRequest: 400,
        hvac.exceptions.Unauthorized: 401,
        hvac.exceptions.Forbidden: 403,
        hvac.exceptions.InvalidPath: 404,
        hvac.exceptions.RateLimitExceeded: 429,
        hvac.exceptions.InternalServerError: 500,
        hvac.exceptions.VaultNotInitialized: 501,
        hvac.exceptions.BadGateway: 502,
        hvac.exceptions.VaultDown: 503,
    }
    return statuses.get(type(exc))


def map_error(exc: BaseException, what: str) -> VaultError:
    """The :class:`VaultError` for an exception raised by hvac or requests while doing ``what``."""
    import hvac.exceptions
    import requests

    if isinstance(exc, VaultError):
        return exc
    if isinstance(exc, requests.Timeout):
        return VaultUnavailable(f"{what}: Vault did not answer in time ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException):
        # str(exc) of a connection error is long and names only the URL; the class says enough.
        return VaultUnavailable(f"{what}: cannot reach Vault ({type(exc).__name__})")
    if isinstance(exc, hvac.exceptions.VaultError):
        status = _status(exc)
        detail = _detail(exc)
        shown = f"HTTP {status}" if status is not None else type(exc).__name__
        if detail:
            shown += f" {detail}"
        if status in (401, 403):
            return VaultForbidden(f"{what}: permission denied ({shown})")
        if status == 404:
            return VaultNotFound(f"{what}: not found ({shown})")
        if status == 429 or status is None or status >= 500:
            return VaultUnavailable(f"{what}: Vault unavailable ({shown})")
        return VaultError(f"{what}: Vault refused the request ({shown})")
    return VaultError(f"{what}: unexpected error ({type(exc).__name__})")


def mapped(*also: type[Exception]) -> tuple[type[Exception], ...]:
    """What :meth:`VaultSession.call` maps (and ``also``, for an ``except`` that catches more);
    anything else is a bug and propagates unchanged.

    hvac and requests (about 8 MB of a process's memory) are imported here, on first use, so a
    sidecar whose keys come from the environment or a file never loads them."""
    import hvac.exceptions
    import requests

    return (hvac.exceptions.VaultError, requests.RequestException, *also)
