"""Secret sources: each keeps one key's :class:`~sidecar.keys.KeySlot` current.

A source knows its backend (environment, a file, Vault KV, Vault transit) and nothing about HTTP
serving. :mod:`sidecar.sources.base` holds the shared loop (interval, jitter, backoff, SIGHUP
wake-up); :mod:`sidecar.rotation` decides whether a new pair may replace the held one.
"""
