"""Listener addresses: ``host:port``, ``[v6]:port`` or ``unix:/path``. Pure parsing."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class ListenAddress:
    host: str | None = None
    port: int | None = None
    path: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    @property
    def is_loopback(self) -> bool:
        if self.is_unix:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host or "").is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(value: str) -> ListenAddress:
    """Parse a listen address; raise ValueError with a readable reason."""
    if value.startswith("unix:"):
        path = value[len("unix:") :]
        if not path.startswith("/"):
            raise ValueError(f"unix socket path must be absolute, got {value!r}")
        return ListenAddress(path=path)
    if value.startswith("["):
        host, sep, port_s = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [ipv6]:port, got {value!r}")
    else:
        host, sep, port_s = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected host:port or unix:/path, got {value!r}")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"port must be a number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    return ListenAddress(host=host, port=port)
