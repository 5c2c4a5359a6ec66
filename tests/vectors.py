"""Gate's official signing vectors (API v4 docs, "Authentication"), shared by every signer test.

Key ``key``, secret ``secret``, Timestamp ``1541993715``. Rows: (method, path, raw query, body,
expected SIGN).
"""

from __future__ import annotations

OFFICIAL_KEY = "key"
OFFICIAL_SECRET = "secret"
OFFICIAL_TS = "1541993715"

OFFICIAL_VECTORS: list[tuple[str, str, str, bytes, str]] = [
    (
        "GET",
        "/api/v4/futures/orders",
        "contract=BTC_USD&status=finished&limit=50",
        b"",
        "55f84ea195d6fe57ce62464daaa7c3c02fa9d1dde954e4c898289c9a2407a3d6"
        "fb3faf24deff16790d726b66ac9f74526668b13bd01029199cc4fcc522418b8a",
    ),
    (
        "POST",
        "/api/v4/futures/orders",
        "",
        b'{"contract":"BTC_USD","type":"limit","size":100,"price":6800,"time_in_force":"gtc"}',
        "eae42da914a590ddf727473aff25fc87d50b64783941061f47a3fdb92742541f"
        "c4c2c14017581b4199a1418d54471c269c03a38d788d802e2c306c37636389f0",
    ),
]
