"""`check-config` output: the listener limits, then per key its listener, who may use it
(client auth, hosts, extra headers), its source and what it may and may not call.

Pure: built from the validated config and the compiled policies, nothing is started. The tables
come from :func:`sidecar.policy.describe.describe`, so they show exactly what the running sidecar
would enforce (presets expanded, locked endpoints named). Token files are shown by path, never
read.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.config.models import Config, KeyConfig, ServerConfig
from sidecar.gate.ratelimits import GATE_GROUPS
from sidecar.ops.safety_report import SAFETY_GUARD_FIELDS, safety_lines
from sidecar.policy.describe import describe
from sidecar.proxy.budget import budgets


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "    ") -> list[str]:
    """Left-aligned columns; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        lines.append((indent + "  ".join([*cells, str(row[-1])])).rstrip())
    return lines


def describe_source(key: KeyConfig) -> str:
    return key.source.source_kind.describe(key.source.spec)


def _locked_status(opened_by: tuple[str, ...]) -> str:
    return f"open to {', '.join(opened_by)} (allow_withdrawals)" if opened_by else "locked"


def _guard_lines(key: KeyConfig) -> list[str]:
    g = key.guards
    values = {
        name: getattr(g, name) for name in type(g).model_fields if name not in SAFETY_GUARD_FIELDS
    }
    shown = [
        (name, ", ".join(map(str, value)) if isinstance(value, list) else str(value).lower())
        for name, value in values.items()
        if value is not None
    ]
    off = [name for name, value in values.items() if value is None]
    lines = [f"    {name}: {text}" for name, text in shown]
    if off:
        lines.append(f"    (no limit: {', '.join(off)})")
    return lines


def _budget_lines(key: KeyConfig) -> list[str]:
    cfg = key.rate_limit
    if cfg is None:
        return ["    off (no rate_limit section)"]
    where = f"shared in {cfg.shared}, {cfg.replicas} replica(s)" if cfg.shared else "local"
    if cfg.shared_password_file is not None:  # the file's path, never its content
        user = f", user from {cfg.shared_username_file}" if cfg.shared_username_file else ""
        where += f" (AUTH from {cfg.shared_password_file}{user})"
    by_name = budgets(cfg)
    rows = [
        [g.name, f"{b.limit} per {b.per_s:g}s", "per endpoint" if g.per_endpoint else "", g.text]
        for g in GATE_GROUPS
        if (b := by_name.get(g.name)) is not None
    ]
    if not rows:
        return [f"    {where}; no group budgeted"]
    return [f"    {where}", *table(("GROUP", "BUDGET", "SCOPE", "ENDPOINTS"), rows, "      ")]


def _listen_line(key: KeyConfig) -> str:
    line = f"  listen: {key.listen}"
    if key.address.is_unix:
        line += f" (mode {key.socket_mode}, group {key.socket_group or 'of the process'})"
    elif key.client_auth.tls is not None:
        line += " (TLS)"
    return line


def _client_auth_lines(key: KeyConfig) -> list[str]:
    auth = key.client_auth
    lines = []
    if auth.token_file is not None:
        lines.append(f"    token: X-Sidecar-Token must match the file {auth.token_file}")
    if auth.tls is not None:
        lines.append(f"    tls: certificate {auth.tls.cert_file}, key {auth.tls.key_file}")
        if auth.tls.client_ca_file is not None:
            ca = auth.tls.client_ca_file
            lines.append(f"    client certificate: required, signed by {ca} (mTLS)")
    peers = [
        f"{name} {', '.join(map(str, ids)) or '(none)'}"
        for name, ids in (("uid", auth.peer_uids), ("gid", auth.peer_gids))
        if ids is not None
    ]
    if peers:
        lines.append(f"    local peers (SO_PEERCRED): {' or '.join(peers)}")
    if not lines:
        unix = key.address.is_unix
        who = "the socket's permissions decide" if unix else "whoever can connect may use the key"
        return [f"  client_auth: none ({who})"]
    return ["  client_auth:", *lines]


def _admission_lines(key: KeyConfig) -> list[str]:
    if key.address.is_unix:
        hosts = "not checked on a unix socket"
    elif key.allowed_hosts:
        hosts = f"{', '.join(key.allowed_hosts)} (and the listener's own address forms)"
    else:
        hosts = "- (only the listener's own address forms)"
    extra = (
        f"{', '.join(key.forward_headers)} (and the headers Gate uses)"
        if key.forward_headers
        else "- (only the headers Gate uses)"
    )
    return [*_client_auth_lines(key), f"  allowed_hosts: {hosts}", f"  forward_headers: {extra}"]


def server_lines(server: ServerConfig) -> list[str]:
    """The limits every listener enforces (key listeners and the admin listener alike)."""
    return [
        "listener limits (every key listener and the admin listener):",
        f"  request head: within {server.header_timeout_s:g} s, at most "
        f"{server.max_header_bytes} bytes and {server.max_headers} header fields",
        f"  request body: within {server.body_timeout_s:g} s, at most "
        f"{server.max_body_bytes} bytes",
        f"  idle keep-alive connection: closed after {server.idle_timeout_s:g} s",
        f"  open connections: at most {server.max_connections} per listener (503 beyond)",
        f"  shutdown: in-flight requests get {server.shutdown_grace_s:g} s",
    ]


def key_report(key: KeyConfig) -> list[str]:
    desc = describe(key.compile_policy())
    allowed = [[r.methods, r.path, r.condition or "-", r.origin] for r in desc.allow]
    denied = [[r.methods, r.path, r.origin] for r in desc.deny]
    locked = [
        [r.methods, r.path, f"{r.name}: {r.reason}", _locked_status(r.opened_by)]
        for r in desc.locked
    ]
    return [
        f"key {key.name}",
        _listen_line(key),
        *_admission_lines(key),
        f"  source: {describe_source(key)}",
        "  may call:",
        *table(("METHODS", "PATH", "CONDITION", "RULE"), allowed),
        "  may not call (deny rules win over allow rules):",
        *(table(("METHODS", "PATH", "RULE"), denied) if denied else ["    (no deny rules)"]),
        "  locked endpoints (refused whatever the allow rules say, unless opened):",
        *table(("METHODS", "PATH", "WHY", "STATUS"), locked),
        "  anything else: refused (no rule allows it)",
        "  trading guards:",
        *_guard_lines(key),
        "  rate budgets (requests per window, per Gate account):",
        *_budget_lines(key),
        f"  self-check at start and after rotation: {'on' if key.self_check else 'off'}",
        *safety_lines(key),  # mode, windows, order expiry, dead man (sidecar.ops.safety_report)
    ]


def render_config_report(config: Config) -> str:
    admin = config.admin
    metrics = (
        f"/metrics needs a bearer token (the file {admin.metrics_token_file})"
        if admin.metrics_token_file is not None
        else "/metrics open (no admin.metrics_token_file)"
    )
    lines = [
        f"config OK: {len(config.keys)} key(s); admin on {admin.listen}",
        f"admin: {metrics}",
        *server_lines(config.server),
    ]
    for key in config.keys:
        lines += ["", *key_report(key)]
    return "\n".join(lines)
