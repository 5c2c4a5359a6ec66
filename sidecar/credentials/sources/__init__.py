"""Secret sources: each keeps one key's :class:`~sidecar.credentials.slot.KeySlot` current.

A source knows its backend (environment, a file, Vault KV, Vault transit) and nothing about HTTP
serving. :mod:`~sidecar.credentials.sources.base` holds the shared loop (interval, jitter,
backoff, SIGHUP wake-up); :mod:`sidecar.credentials.rotation` decides whether a new pair may
replace the held one.
"""
