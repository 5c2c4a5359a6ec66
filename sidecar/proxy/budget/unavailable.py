"""The one error a shared store raises, in a module without redis, so that a sidecar whose keys
share nothing never imports redis (nor the ``cryptography`` redis loads): the redis stores are
imported only when a key sets ``rate_limit.shared``."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """Redis did not answer (down, unreachable, too slow, refused the credentials); the message
    names no credential."""
