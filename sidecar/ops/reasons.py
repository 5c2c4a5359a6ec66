"""Why the sidecar refused a request or a WebSocket frame, as a bounded metric label.

One table of reasons for REST and WebSocket alike: a policy denial is named by its rule's origin,
a trading guard's refusal ``guard``, a spent budget ``rate_limited``, a listener's refusal by its
label.
"""

from __future__ import annotations

from sidecar.errors import BadRequest, NotFound, RateLimited
from sidecar.policy.origin import Origin, OriginKind
from sidecar.proxy.record import RequestRecord

DENIAL_REASONS = {
    OriginKind.DENY: "deny_rule",  # a deny rule matched
    OriginKind.LOCKED: "locked",  # a locked endpoint
    OriginKind.NO_RULE: "no_rule",  # nothing allows it
    OriginKind.UNKNOWN_METHOD: "unknown_method",
    # An allow rule matched but its condition refused (e.g. a margin order under spot-only).
    OriginKind.PRESET: "condition",
    OriginKind.ALLOW: "condition",
}


# Refusals of who asked or how (admission, wire rules, listener limits), by label.
REFUSAL_REASONS = {
    "SIDECAR_FORBIDDEN_ORIGIN": "browser",
    "SIDECAR_MISDIRECTED": "host",
    "SIDECAR_UNAUTHENTICATED": "unauthenticated",
    "SIDECAR_FORBIDDEN_PEER": "peer",
    "SIDECAR_UNSUPPORTED_MEDIA_TYPE": "media_type",
    "SIDECAR_OVERLOADED": "overloaded",
    "SIDECAR_REQUEST_TIMEOUT": "timeout",
    "SIDECAR_HEADERS_TOO_LARGE": "headers_too_large",
    "SIDECAR_HTTP_VERSION_NOT_SUPPORTED": "http_version",
}


def decided_reason(
    guard: str | None, label: str | None, decision: str, origin: Origin | None
) -> str | None:
    """The reason REST requests and WebSocket frames share: ``guard`` (a trading guard refused),
    ``rate_limited`` (a spent rate budget), or the policy's (:data:`DENIAL_REASONS`); None when
    none of these refused."""
    if guard is not None:
        return "guard"
    if label == RateLimited.label:
        return "rate_limited"
    if decision == "deny" and origin is not None:
        return DENIAL_REASONS[origin.kind]
    return None


def denial_reason(record: RequestRecord) -> str | None:
    """Why the sidecar refused a request for what it asked (None when it did not).

    A policy denial is named by its origin (:data:`DENIAL_REASONS`); ``guard`` is a trading
    guard's refusal, ``rate_limited`` a spent rate budget; ``bad_path`` is a path that is not
    canonical (or any other malformed request), ``outside_api`` one outside /api/v4/, and the
    refusals of :data:`REFUSAL_REASONS` are named by their label.
    """
    reason = decided_reason(record.guard, record.label, record.decision, record.origin)
    if reason is not None:
        return reason
    if record.label == BadRequest.label:
        return "bad_path"
    if record.label == NotFound.label:
        return "outside_api"
    return REFUSAL_REASONS.get(record.label or "")
