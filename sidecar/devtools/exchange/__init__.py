"""A local Gate-compatible exchange that verifies every signature the way Gate does.

Used by `gate-sidecar demo` and by the tests. It is not Gate: it keeps orders in memory, answers
a subset of API v4 with Gate-shaped JSON (REST, and the spot, futures, delivery and options
WebSockets), and echoes any other signed /api/v4 path. It imports nothing from the rest of
``sidecar`` so that it checks the sidecar's signer instead of sharing it.
"""

from sidecar.devtools.exchange.app import create_exchange_app
from sidecar.devtools.exchange.state import ExchangeState, RecordedFrame, RecordedRequest

__all__ = ["ExchangeState", "RecordedFrame", "RecordedRequest", "create_exchange_app"]
