"""Credentials from a JSON or YAML file with fields ``key`` and ``secret``, re-read on change.

This is how Vault Agent templates and Kubernetes Secret volumes deliver rotated keys. Polling
(stat, then a content hash) is used rather than inotify: Secret volumes swap a symlink, which
inotify on the file itself misses, and a stat every couple of seconds costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import yaml

from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.credentials.sources.base import Source, SourceContext, SourceKind
from sidecar.errors import SourceError
from sidecar.gate.signing import HmacSigner
from sidecar.settings import PositiveSeconds, Strict

SETTLE_S = 0.05


class FileSource(Strict):
    path: Path
    poll_interval_s: PositiveSeconds = 2.0


def parse_secret_file(text: str) -> tuple[str, str]:
    """(key, secret) from the file's text; errors never quote the content."""
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            raise SourceError("file is neither JSON nor YAML") from None
    if not isinstance(doc, dict):
        raise SourceError("file must hold a mapping with fields key and secret")
    key, secret = doc.get("key"), doc.get("secret")
    if not isinstance(key, str) or not key or not isinstance(secret, str) or not secret:
        raise SourceError("file must have non-empty string fields key and secret")
    return key, secret


class FileCredentials(Source):
    kind = "file"

    def __init__(self, slot: KeySlot, rotation: Rotation, spec: FileSource) -> None:
        super().__init__(slot, rotation)
        self.path = Path(spec.path)
        self.interval_s = spec.poll_interval_s
        self._seen: tuple[int, int, int] | None = None

    async def poll(self) -> None:
        try:
            st = await asyncio.to_thread(self.path.stat)
        except OSError as exc:
            # Missing is treated like an outage, not a revocation: symlink swaps can briefly
            # leave no file, and a bot must not fail for that. max_stale_s bounds it.
            raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._seen and self.slot.ready:
            self.slot.confirm()
            return
        try:
            text = await asyncio.to_thread(self.path.read_text)
            # A file rewritten in place can be read half-written, and a truncated YAML secret
            # still parses: use only a file that has stopped changing (the same stamp a moment
            # after the read). The canary is the second line of defence.
            await asyncio.sleep(SETTLE_S)
            after = await asyncio.to_thread(self.path.stat)
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
        if (after.st_mtime_ns, after.st_size, after.st_ino) != stamp:
            raise SourceError(f"{self.path} is being written; reading it again shortly")
        key, secret = parse_secret_file(text)
        version = hashlib.sha256(text.encode()).hexdigest()[:12]
        if await self.rotation.offer(self.slot, Credentials(key, HmacSigner(secret), version)):
            self._seen = stamp


def _build(spec: FileSource, slot: KeySlot, rotation: Rotation, ctx: SourceContext) -> Source:
    return FileCredentials(slot, rotation, spec)


def _describe(spec: FileSource) -> str:
    return f"file {spec.path} (checked every {spec.poll_interval_s:g}s)"


KIND = SourceKind("file", FileSource, _build, _describe)
