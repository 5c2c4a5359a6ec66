"""The sub-account key endpoints: create, list, get, replace, delete, lock and unlock.

Shapes: gate-api 7.2.161 ``SubAccountKey`` / ``SubAccountKeyPerms``; the create answer also
carries ``secret`` (the SDK's model drops it; clients read the raw JSON). Only a main-account key
may call these: a sub-account key is refused, as at Gate.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sidecar.devtools.exchange.calls import ApiError, Call, Result, invalid, obj_body
from sidecar.devtools.exchange.subaccounts import (
    MAX_WHITELIST,
    PERM_NAMES,
    SubAccounts,
    SubKey,
)


def _subs(call: Call) -> SubAccounts:
    subs = call.state.sub_accounts
    if call.headers.get("KEY", "") in subs.keys:
        raise ApiError(403, "FORBIDDEN", "a sub-account key cannot manage API keys")
    return subs


def _uid(call: Call) -> int:
    uid = call.params["uid"]
    if not uid.isdigit():
        raise invalid("user_id must be a number")
    return int(uid)


def _perms(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("perms must be a list")
    perms = []
    for perm in value:
        if not isinstance(perm, dict) or perm.get("name") not in PERM_NAMES:
            raise invalid(f"perms: each needs a name among {', '.join(PERM_NAMES)}")
        read_only = perm.get("read_only", False)
        if not isinstance(read_only, bool):
            raise invalid("perms: read_only must be a boolean")
        perms.append({"name": perm["name"], "read_only": read_only})
    return perms


def _whitelist(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_WHITELIST:
        raise invalid(f"ip_whitelist must be a list of at most {MAX_WHITELIST} addresses")
    for ip in value:
        try:
            ipaddress.IPv4Address(ip)
        except (ipaddress.AddressValueError, ValueError):
            raise invalid("ip_whitelist: IPv4 addresses only, no ranges") from None
    return [str(ip) for ip in value]


def _mode(spec: dict[str, Any]) -> int:
    mode = spec.get("mode", 1)
    if mode not in (1, 2) or isinstance(mode, bool):
        raise invalid("mode must be 1 (classic) or 2 (unified)")
    return int(mode)


def _name(spec: dict[str, Any]) -> str:
    name = spec.get("name", "")
    if not isinstance(name, str):
        raise invalid("name must be a string")
    return name


def _key(call: Call, subs: SubAccounts) -> SubKey:
    key = subs.keys.get(call.params["key"])
    if key is None or key.user_id != _uid(call):
        raise ApiError(404, "NOT_FOUND", "API key not found")
    return key


def create_key(call: Call) -> Result:
    subs, uid, spec = _subs(call), _uid(call), obj_body(call)
    perms, whitelist = _perms(spec.get("perms")), _whitelist(spec.get("ip_whitelist"))
    if len(subs.of(uid)) >= subs.max_keys:
        raise invalid(f"at most {subs.max_keys} API keys per account")
    now = call.state.now()
    key_id, secret = subs.new_key_id()
    stamp = int(now)
    key = SubKey(
        uid,
        _mode(spec),
        _name(spec),
        perms,
        whitelist,
        key_id,
        secret,
        stamp,
        stamp,
        0,
        now + subs.activation_delay_s,
    )
    subs.keys[key_id] = key
    call.state.add_key(key_id, secret, uid=uid)  # the exchange verifies its signatures
    return 200, {**key.doc(uid in subs.locked), "secret": secret}


def list_keys(call: Call) -> Result:
    subs, uid = _subs(call), _uid(call)
    return 200, [k.doc(uid in subs.locked) for k in subs.of(uid)]


def get_key(call: Call) -> Result:
    subs = _subs(call)
    key = _key(call, subs)
    return 200, key.doc(key.user_id in subs.locked)


def update_key(call: Call) -> Result:
    """PUT replaces the whole object: what the body omits is cleared; mode cannot change."""
    subs, spec = _subs(call), obj_body(call)
    key = _key(call, subs)
    if "mode" in spec and _mode(spec) != key.mode:
        raise invalid("mode cannot be changed")
    key.perms, key.ip_whitelist = _perms(spec.get("perms")), _whitelist(spec.get("ip_whitelist"))
    key.name = _name(spec)
    now = call.state.now()
    key.updated_at = int(now)
    return 204, None


def delete_key(call: Call) -> Result:
    subs = _subs(call)
    key = _key(call, subs)
    del subs.keys[key.key]
    subs.deleted[key.key] = key
    call.state.remove_key(key.key)
    return 204, None


def lock(call: Call) -> Result:
    _subs(call).locked.add(_uid(call))
    return 204, None


def unlock(call: Call) -> Result:
    _subs(call).locked.discard(_uid(call))
    return 204, None
