"""Account, wallet and withdrawals (sub-account keys: handlers_subaccounts).

The money-moving endpoints answer something plausible (shapes: gate-api
LedgerRecord, TransactionID) so a test can tell from ``state.requests`` whether the
sidecar let such a request through: it should not, by default.
"""

from __future__ import annotations

from sidecar.devtools.exchange.calls import Call, Result, decimal, invalid, obj_body, required

PERMS = ("spot", "futures", "delivery", "wallet", "account", "options", "unified")


def account_detail(call: Call) -> Result:
    return 200, {
        "user_id": call.acct.uid,
        "ip_whitelist": [],
        "currency_pairs": [],
        "key": {"mode": 1},  # 1 classic account, 2 unified (ccxt reads it)
        "tier": 2,
        "copy_trading_role": 0,
    }


def main_keys(call: Call) -> Result:
    """The key's own permissions: a start-up self-check can read them (API v4 docs,
    AccountKeyInfo). Tests set them per key (``ExchangeState.set_key_info``)."""
    doc = {
        "state": 1,
        "mode": 1,
        "name": [],
        "currency_pairs": [],
        "user_id": call.acct.uid,
        "ip_whitelist": [],
        "perms": [{"name": p, "read_only": False} for p in PERMS],
        "key": {"mode": 1},
        "created_at": "1700000000",
        "updated_at": "1700000000",
        "last_access": str(int(call.state.now())),
    }
    doc.update(call.acct.key_info or {})
    return 200, doc


def total_balance(call: Call) -> Result:
    def balance(amount: str) -> dict[str, str]:
        return {"amount": amount, "currency": "USDT", "unrealised_pnl": "0", "borrowed": "0"}

    return 200, {
        "total": balance("15000"),
        "details": {"spot": balance("10000"), "futures": balance("5000")},
    }


def withdraw(call: Call) -> Result:
    spec = obj_body(call)
    required(spec, "currency", "amount")
    if decimal(spec["amount"], "amount") <= 0:
        raise invalid("amount must be positive")
    return 200, {
        "id": f"w{call.state.next_id()}",
        "txid": "",
        "withdraw_order_id": str(spec.get("withdraw_order_id", "")),
        "timestamp": str(int(call.state.now())),
        "amount": str(spec["amount"]),
        "currency": str(spec["currency"]),
        "address": str(spec.get("address", "")),
        "memo": str(spec.get("memo", "")),
        "status": "REQUEST",
        "chain": str(spec.get("chain", "")),
    }


def withdraw_push(call: Call) -> Result:
    """UID transfer to another user: money leaving the account like a withdrawal."""
    obj_body(call)
    return 200, {"id": call.state.next_id()}


def transfer(call: Call) -> Result:
    spec = obj_body(call)
    required(spec, "currency", "from", "to", "amount")
    return 200, {"tx_id": call.state.next_id()}
