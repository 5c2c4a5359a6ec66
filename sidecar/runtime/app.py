"""Builds the running sidecar from a config: one factory for `serve`, the demo and the tests.

:func:`running` starts a :class:`~sidecar.runtime.state.Sidecar` (the forwarder, the Vault
session, clock sync, each key's slot, source task and listener) and closes all of it on the way
out; :func:`sidecar.runtime.listeners.open_admin` then opens the admin listener in front of it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping

from sidecar.config.models import Config
from sidecar.proxy.forwarder import Forwarder
from sidecar.proxy.lean_forwarder import LeanForwarder
from sidecar.runtime.state import Sidecar


@contextlib.asynccontextmanager
async def running(
    config: Config,
    *,
    environ: Mapping[str, str] | None = None,
    forwarder: Forwarder | None = None,
) -> AsyncIterator[Sidecar]:
    """The sidecar running ``config``, every key's listener open; closed on the way out, also
    when starting fails (an OSError names a listener that could not open).

    ``forwarder`` replaces the lean forwarder to Gate (tests pass a double); the
    sidecar closes it on shutdown either way.
    """
    sidecar = Sidecar(
        config,
        os.environ if environ is None else environ,
        LeanForwarder(config.upstream) if forwarder is None else forwarder,
    )
    try:
        await sidecar.start()
        yield sidecar
    finally:
        await sidecar.close()
