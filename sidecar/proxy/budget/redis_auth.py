"""Redis credentials for shared rate budgets, read from files, never from the config file.

``rate_limit.shared_password_file`` (and ``shared_username_file`` for a Redis 6+ ACL user) name
files holding one value each, as Kubernetes mounts a Secret. They are read when a connection to
Redis is made, so a rotated password is used from the next connection on without a restart.
Neither value is kept in a repr, a message or a log line: errors name the field and the path.
"""

from __future__ import annotations

from pathlib import Path

from redis.credentials import CredentialProvider
from redis.exceptions import RedisError

from sidecar.proxy.budget.settings import RateLimitConfig


class CredentialFileUnreadable(RedisError):
    """A credential file is missing, unreadable or empty (the message names field and path)."""


def read_credential_file(path: Path, field: str) -> str:
    """The stripped content of one credential file; errors name ``field`` and the path only."""
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CredentialFileUnreadable(f"cannot read {field} {path} ({why})") from None
    if not value:
        raise CredentialFileUnreadable(f"{field} {path} is empty")
    return value


class FileCredentials(CredentialProvider):
    """redis-py asks this for AUTH arguments on each new connection."""

    def __init__(self, password_file: Path, username_file: Path | None = None) -> None:
        self.password_file = password_file
        self.username_file = username_file

    def __repr__(self) -> str:
        return f"FileCredentials({str(self.password_file)!r}, {self.username_file!r})"

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        password = read_credential_file(self.password_file, "rate_limit.shared_password_file")
        if self.username_file is None:
            return (password,)
        username = read_credential_file(self.username_file, "rate_limit.shared_username_file")
        return (username, password)

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        # Two small local files: read in place (redis-py < 5 calls only the sync method).
        return self.get_credentials()


def file_credentials(cfg: RateLimitConfig) -> FileCredentials | None:
    """The credentials ``cfg`` names (None: Redis without AUTH), for the budgets' and the rolling
    windows' stores alike."""
    if cfg.shared_password_file is None:
        return None
    return FileCredentials(cfg.shared_password_file, cfg.shared_username_file)
