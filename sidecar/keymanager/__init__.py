"""The key manager (``gate-sidecar keys``): mints, rotates and retires Gate sub-account keys.

It runs apart from every bot, under its own Vault identity, holding the one main-account key
allowed to manage sub-account keys, and writes each new pair straight into the store the bots'
sidecars already read. Nothing of the sidecar's runtime imports it. See docs/key-lifecycle.md.
"""
