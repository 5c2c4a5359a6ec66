"""One exception tree for everything the sidecar answers itself.

Every error a bot can see from the sidecar is a :class:`SidecarError` with a Gate-style
``{"label", "message"}`` body; :func:`error_body` is the one place that turns it into JSON, so the
HTTP mapping cannot drift between handlers. Messages are built from names, methods and paths only:
never from credentials, which is why none of these classes accepts a secret.
"""

from __future__ import annotations

import json
from typing import ClassVar


class SidecarError(Exception):
    """An error the sidecar answers itself, without reaching the exchange."""

    status: ClassVar[int] = 500
    label: ClassVar[str] = "SIDECAR_INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(SidecarError):
    status = 400
    label = "SIDECAR_BAD_REQUEST"


class PolicyDenied(SidecarError):
    status = 403
    label = "SIDECAR_POLICY_DENIED"


class NotFound(SidecarError):
    status = 404
    label = "SIDECAR_NOT_FOUND"


class BodyTooLarge(SidecarError):
    status = 413
    label = "SIDECAR_BODY_TOO_LARGE"


class RequestTimeout(SidecarError):
    """The bot's request head or body did not arrive in time (``server.*_timeout_s``)."""

    status = 408
    label = "SIDECAR_REQUEST_TIMEOUT"


class HeadersTooLarge(SidecarError):
    """Over ``server.max_header_bytes`` or ``server.max_headers``."""

    status = 431
    label = "SIDECAR_HEADERS_TOO_LARGE"


class Overloaded(SidecarError):
    """The key listener already holds ``server.max_connections`` connections."""

    status = 503
    label = "SIDECAR_OVERLOADED"


class VersionNotSupported(SidecarError):
    """Only HTTP/1.0 and HTTP/1.1 are spoken on a key listener."""

    status = 505
    label = "SIDECAR_HTTP_VERSION_NOT_SUPPORTED"


class UpstreamUnavailable(SidecarError):
    status = 502
    label = "SIDECAR_UPSTREAM_UNAVAILABLE"


class StaleConnection(UpstreamUnavailable):
    """A reused keep-alive connection failed before any byte of an answer arrived: the one
    failure after which a GET may be sent again (see :func:`sidecar.proxy.forwarder.deliver`)."""


class UpstreamTooLarge(SidecarError):
    status = 502
    label = "SIDECAR_UPSTREAM_TOO_LARGE"


class KeyUnavailable(SidecarError):
    status = 503
    label = "SIDECAR_KEY_UNAVAILABLE"


class UpstreamTimeout(SidecarError):
    status = 504
    label = "SIDECAR_UPSTREAM_TIMEOUT"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class SourceError(Exception):
    """A secret source could not produce credentials (message never contains the secret)."""


def for_status(status: int, message: str) -> SidecarError:
    """The sidecar error for an HTTP status raised by the server framework itself."""
    by_status: dict[int, type[SidecarError]] = {
        cls.status: cls
        for cls in (
            BadRequest,
            PolicyDenied,
            NotFound,
            BodyTooLarge,
            UpstreamUnavailable,
            KeyUnavailable,
            UpstreamTimeout,
        )
    }
    cls = by_status.get(status, BadRequest if 400 <= status < 500 else SidecarError)
    return cls(message)


def error_body(exc: SidecarError) -> bytes:
    return json.dumps({"label": exc.label, "message": exc.message}).encode()
