"""The official Python SDK (urllib3 underneath) over a unix socket: the recipe from
docs/clients.md, kept here so the suite runs exactly what the docs show.

urllib3 has no unix-socket transport, but its connection class can be told where to connect:
pools whose connections open ``socket_path`` instead of a TCP address. gate-api only ever calls
``rest_client.pool_manager.request(method, url, ...)``, so swapping that one object is enough.
"""

from __future__ import annotations

import socket
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection


class UnixHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, socket_path: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if isinstance(self.timeout, int | float):
            sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        return sock


class UnixHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = UnixHTTPConnection


class UnixPoolManager(urllib3.PoolManager):
    """A PoolManager whose every pool connects to one unix socket. Going through a PoolManager
    matters: it sends the path alone as the request target, where a bare pool given a full URL
    would send it whole (proxy style), which the sidecar refuses."""

    def __init__(self, socket_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.socket_path = socket_path

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> urllib3.HTTPConnectionPool:
        return UnixHTTPConnectionPool(host, port, socket_path=self.socket_path)


def use_unix_socket(api_client: Any, socket_path: str) -> None:
    """Send every request of a ``gate_api.ApiClient`` to ``socket_path``. Its host should be
    ``http://localhost/api/v4``: the host name is only what the Host header says."""
    api_client.rest_client.pool_manager = UnixPoolManager(socket_path)
