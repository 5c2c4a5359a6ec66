"""Self-managed TLS: make the certificate, publish its CA, renew it before it expires.

The order matters: the new CA goes into the webhook's caBundle (beside the still-valid old ones)
before the injector serves the new certificate, so the API server never meets a certificate it
does not trust yet. As vault-k8s's injector does, but with no Secret: each replica makes its own
and the bundle holds them all.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path

from sidecar.injector.certs import issue, merge_bundle, needs_renewal
from sidecar.injector.config import SelfManagedTLS
from sidecar.injector.kube import ConflictError, WebhookClient, ca_bundle_patch, current_bundle

log = logging.getLogger("sidecar.injector")
ATTEMPTS = 5


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # a reader sees the old file or the new one, whole


class CertRotator:
    def __init__(
        self,
        settings: SelfManagedTLS,
        client: WebhookClient,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.settings = settings
        self.client = client
        self.clock = clock
        self.dir = settings.dir

    @property
    def cert_file(self) -> Path:
        return self.dir / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.dir / "tls.key"

    def _current(self) -> bytes | None:
        try:
            return self.cert_file.read_bytes()
        except OSError:
            return None

    def ensure(self) -> bool:
        """Renew when due (blocking: run it in a thread); True when the files changed."""
        now = self.clock()
        margin = dt.timedelta(days=self.settings.renew_before_days)
        if not needs_renewal(self._current(), now, margin):
            return False
        s = self.settings
        issued = issue(s.service, s.namespace, now, s.valid_days)
        self._publish(issued.ca_pem, now)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(self.key_file, issued.key_pem, 0o600)
        _write(self.cert_file, issued.cert_pem, 0o644)
        log.info(
            "injector certificate issued",
            extra={"webhook": s.webhook, "not_after": issued.not_after.isoformat()},
        )
        return True

    def _publish(self, ca_pem: bytes, now: dt.datetime) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            webhook = self.client.get_webhook(self.settings.webhook)
            bundle = merge_bundle(current_bundle(webhook), ca_pem, now)
            try:
                self.client.patch_webhook(self.settings.webhook, ca_bundle_patch(webhook, bundle))
                return
            except ConflictError:
                if attempt == ATTEMPTS:
                    raise
