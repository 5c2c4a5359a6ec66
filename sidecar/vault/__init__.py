"""Talking to Vault (or OpenBao): authentication, the token lifecycle, and error mapping.

hvac is synchronous (requests), so every call runs in a worker thread (:func:`asyncio.to_thread`)
and the event loop that serves bots never waits on Vault. :class:`~sidecar.vault.session.
VaultSession` owns the token; sources and signers only ask it to run a call with a valid one.
"""
