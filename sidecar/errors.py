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


class ClientDisconnected(SidecarError):
    """The bot closed its connection before its request was whole (recorded; no one reads it)."""

    status = 400
    label = "SIDECAR_CLIENT_DISCONNECTED"


class Unauthenticated(SidecarError):
    """The listener asks bots for a client token and this request has none, or a wrong one."""

    status = 401
    label = "SIDECAR_UNAUTHENTICATED"


class PolicyDenied(SidecarError):
    status = 403
    label = "SIDECAR_POLICY_DENIED"


class GuardDenied(SidecarError):
    """A trading guard refused the request (sidecar.policy.guards); ``guard`` names it."""

    status = 403
    label = "SIDECAR_GUARD_DENIED"

    def __init__(self, message: str, guard: str) -> None:
        super().__init__(message)
        self.guard = guard


class GuardUnread(GuardDenied):
    """A write no trading guard can read, while a guard is set (``guards.allow_unread``)."""

    label = "SIDECAR_GUARD_UNREAD"


class GuardAmbiguous(GuardDenied):
    """A request Gate could read two ways where a guard reads it (a query parameter given twice
    or in another spelling): the value the guard judged might not be the one Gate acts on."""

    status = 400
    label = "SIDECAR_GUARD_AMBIGUOUS"


class WindowDenied(GuardDenied):
    """A rolling window (``guards.windows``) is full; ``retry_after_s`` says when enough frees up
    (answered as ``Retry-After``)."""

    def __init__(self, message: str, guard: str, retry_after_s: float) -> None:
        super().__init__(message, guard)
        self.retry_after_s = retry_after_s


class RateLimited(SidecarError):
    """The key's rate budget for the endpoint's group is spent; ``retry_after_s`` says when the
    next request would pass (answered as ``Retry-After``)."""

    status = 429
    label = "SIDECAR_RATE_LIMITED"

    def __init__(self, message: str, group: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.group = group
        self.retry_after_s = retry_after_s


class ForbiddenOrigin(SidecarError):
    """A browser's request (it carries ``Origin`` or a cross-site ``Sec-Fetch-Site``)."""

    status = 403
    label = "SIDECAR_FORBIDDEN_ORIGIN"


class ForbiddenPeer(SidecarError):
    """The local user or group on the other end of a unix socket is not one the key names."""

    status = 403
    label = "SIDECAR_FORBIDDEN_PEER"


class NotFound(SidecarError):
    status = 404
    label = "SIDECAR_NOT_FOUND"


class MethodNotAllowed(SidecarError):
    """A method the listener never serves (CONNECT: the sidecar is no tunnel)."""

    status = 405
    label = "SIDECAR_METHOD_NOT_ALLOWED"


class RequestTimeout(SidecarError):
    """The request's head or body did not arrive within its deadline."""

    status = 408
    label = "SIDECAR_REQUEST_TIMEOUT"


class BodyTooLarge(SidecarError):
    status = 413
    label = "SIDECAR_BODY_TOO_LARGE"


class TooManyConnections(SidecarError):
    status = 429
    label = "SIDECAR_TOO_MANY_CONNECTIONS"


class UnsupportedMediaType(SidecarError):
    """A body that is not JSON: Gate's v4 API reads JSON only, the policy checks JSON only."""

    status = 415
    label = "SIDECAR_UNSUPPORTED_MEDIA_TYPE"


class Misdirected(SidecarError):
    """A ``Host`` that is not one of the listener's own names (DNS rebinding)."""

    status = 421
    label = "SIDECAR_MISDIRECTED"


class HeadersTooLarge(SidecarError):
    status = 431
    label = "SIDECAR_HEADERS_TOO_LARGE"


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


class Overloaded(SidecarError):
    """The listener holds ``server.max_connections`` connections already."""

    status = 503
    label = "SIDECAR_OVERLOADED"


class UpstreamTimeout(SidecarError):
    status = 504
    label = "SIDECAR_UPSTREAM_TIMEOUT"


class VersionNotSupported(SidecarError):
    """HTTP/0.9 or HTTP/2 and later on a request line: the listeners speak HTTP/1.x only."""

    status = 505
    label = "SIDECAR_HTTP_VERSION_NOT_SUPPORTED"


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
            Unauthenticated,
            PolicyDenied,
            NotFound,
            RequestTimeout,
            BodyTooLarge,
            UnsupportedMediaType,
            Misdirected,
            HeadersTooLarge,
            UpstreamUnavailable,
            KeyUnavailable,
            UpstreamTimeout,
            VersionNotSupported,
        )
    }
    cls = by_status.get(status, BadRequest if 400 <= status < 500 else SidecarError)
    return cls(message)


def error_body(exc: SidecarError) -> bytes:
    return json.dumps({"label": exc.label, "message": exc.message}).encode()
