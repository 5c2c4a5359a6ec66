"""Every kind of secret source, in the order the config's error messages list them.

Adding a kind: write its module (settings model, :class:`~.base.Source`, ``KIND``) and add it to
:data:`KINDS`. The config schema, ``check-config``, reloads and the runtime all read this tuple.
"""

from __future__ import annotations

from typing import Any

from sidecar.credentials.sources import env, file, vault_kv, vault_transit
from sidecar.credentials.sources.base import SourceKind

KINDS: tuple[SourceKind[Any], ...] = (env.KIND, file.KIND, vault_kv.KIND, vault_transit.KIND)

BY_NAME: dict[str, SourceKind[Any]] = {kind.name: kind for kind in KINDS}
