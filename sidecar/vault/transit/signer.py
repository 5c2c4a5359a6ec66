"""Signing inside Vault: a :class:`~sidecar.gate.signing.Signer` whose HMAC is computed by transit.

Every signed request costs one Vault round trip, so this path is built for latency:

- one pooled keep-alive aiohttp session per Vault session (:class:`TransitClient`), shared by
  every transit key and version, so concurrent requests use parallel connections instead of
  queueing behind one (hvac is blocking and would cost a worker thread per request);
- the token comes from the shared :class:`~sidecar.vault.session.VaultSession` (same lifecycle
  as the KV source: renewal, re-login); a 403 asks the session for a fresh login, then retries
  once;
- failure is fast: connection refused fails at once, anything else within ``timeout_s``
  (default 2 s), and every failure is :class:`~sidecar.errors.KeyUnavailable` (503
  ``SIDECAR_KEY_UNAVAILABLE``): with Vault unreachable a transit key cannot sign, and a bot is
  better served by a quick 503 than by a request that hangs until its own timeout.

Messages name the key, the version, the HTTP status and Vault's error text; never the message
signed, the token or a digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sidecar.aio import task_from_here
from sidecar.errors import KeyUnavailable
from sidecar.tls import client_tls_context
from sidecar.vault.errors import VaultError, errors_text
from sidecar.vault.session import VaultSession
from sidecar.vault.transit.wire import WireError, hmac_path, hmac_request, parse_hmac

SIGN_TIMEOUT_S = 2.0  # the whole sign, retry included: well under any bot's own timeout
MAX_CONNECTIONS = 100  # per Vault session; as many as the upstream pool by default
CLOSE_GRACE_S = 5.0  # closing waits this long for in-flight signs to finish

#: Called when Vault refused a sign in a way that may mean the key or its access is gone.
RefusedHook = Callable[[str], None]

if TYPE_CHECKING:  # aiohttp loads with the first sign: the config schema imports this module
    import aiohttp


class TransitClient:
    """The HTTP client for transit's hmac endpoint, shared per :class:`VaultSession`.

    Use :meth:`acquire` / :meth:`release` (reference counted): sources come and go with config
    reloads, and the pool must outlive a swap from one source to its successor.
    """

    _shared: weakref.WeakKeyDictionary[VaultSession, TransitClient] = weakref.WeakKeyDictionary()

    def __init__(
        self,
        session: VaultSession,
        *,
        timeout_s: float = SIGN_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.session = session
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._http: aiohttp.ClientSession | None = None
        self.users = 0
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        #: signs completed / failed, by outcome (for tests and metrics)
        self.counts: dict[str, int] = {}

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"TransitClient(address={self.session.address!r})"

    # -- sharing ------------------------------------------------------------------------------
    @classmethod
    def acquire(cls, session: VaultSession) -> TransitClient:
        client = cls._shared.get(session)
        if client is None or client.closed:
            client = cls(session)
            cls._shared[session] = client
        client.users += 1
        return client

    async def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            if self._shared.get(self.session) is self:
                del self._shared[self.session]
            await self.close()

    async def close(self) -> None:
        """Stop taking signs, let in-flight ones finish (bounded), close the pool."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE_S):
                await self._idle.wait()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- signing ------------------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        import aiohttp  # with the first sign, not with the config schema

        if self._http is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                keepalive_timeout=30,
                ssl=client_tls_context(self.session.ca_file),
            )
            self._http = aiohttp.ClientSession(
                base_url=self.session.address,
                connector=connector,
                # The overall budget is enforced by hmac(); these stop a stuck socket early.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s),
                raise_for_status=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._http

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    async def hmac(
        self,
        mount: str,
        key: str,
        version: int,
        message: bytes,
        on_refused: RefusedHook | None = None,
    ) -> str:
        """Gate's ``SIGN`` of ``message``, computed by transit key ``mount/key`` at ``version``."""
        where = f"transit key {mount.strip('/')}/{key} v{version}"
        if self._closed:
            raise KeyUnavailable(f"{where}: the transit client is closed (reloading?)")
        await task_from_here()  # asyncio.timeout below needs one
        self._in_flight += 1
        self._idle.clear()
        try:
            async with asyncio.timeout(self.timeout_s):
                sign = await self._sign(mount, key, version, message, where, on_refused)
        except TimeoutError:
            self._count("timeout")
            raise KeyUnavailable(
                f"{where}: Vault did not sign within {self.timeout_s:g}s"
            ) from None
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
        self._count("ok")
        return sign

    async def _sign(
        self,
        mount: str,
        key: str,
        version: int,
        message: bytes,
        where: str,
        on_refused: RefusedHook | None,
    ) -> str:
        body = hmac_request(message, version)
        url = "/v1/" + hmac_path(mount, key)
        for attempt in (1, 2):
            token = await self._token(where)
            status, answer = await self._post(url, token, body, where)
            if status == 200:
                try:
                    return parse_hmac(answer, version)
                except WireError as exc:
                    self._count("bad_answer")
                    raise KeyUnavailable(f"{where}: {exc}") from None
            detail = errors_text(answer.get("errors") if isinstance(answer, dict) else None)
            if status in (401, 403) and attempt == 1:
                # Maybe only this token is stale (expired, revoked): log in afresh, retry once.
                await self.session.token_forbidden(token)
                continue
            self._count(f"http_{status}")
            shown = f"HTTP {status}" + (f" {detail}" if detail else "")
            if status in (400, 401, 403, 404):
                # Denied after a fresh login, no such key or version: the source re-checks the
                # key now rather than at its next interval, and revokes it if it is gone.
                if on_refused is not None:
                    on_refused(shown)
                raise KeyUnavailable(f"{where}: Vault refused to sign ({shown})")
            raise KeyUnavailable(f"{where}: Vault unavailable ({shown})")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _token(self, where: str) -> str:
        try:
            return await self.session.token()
        except VaultError as exc:
            self._count("no_token")
            raise KeyUnavailable(f"{where}: no Vault token ({exc})") from None

    async def _post(
        self, url: str, token: str, body: dict[str, Any], where: str
    ) -> tuple[int, Any]:
        import aiohttp  # with the first sign, not with the config schema

        headers = {"X-Vault-Token": token, "X-Vault-Request": "true"}
        if self.session.namespace:
            headers["X-Vault-Namespace"] = self.session.namespace
        try:
            async with self._client().post(url, json=body, headers=headers) as resp:
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    answer = None
                return resp.status, answer
        except aiohttp.ClientError as exc:
            # The class says enough (refused, reset, TLS); str(exc) is long and names the URL.
            self._count("unreachable")
            raise KeyUnavailable(f"{where}: cannot reach Vault ({type(exc).__name__})") from None


class TransitSigner:
    """Signs with one version of a transit key: a rotation installs a new signer, so a request
    always signs with the version that goes with the API key it sends."""

    __slots__ = ("client", "key", "mount", "on_refused", "version")

    def __init__(
        self,
        client: TransitClient,
        mount: str,
        key: str,
        version: int,
        on_refused: RefusedHook | None = None,
    ) -> None:
        self.client = client
        self.mount = mount
        self.key = key
        self.version = version
        self.on_refused = on_refused

    async def sign(self, message: bytes) -> str:
        return await self.client.hmac(self.mount, self.key, self.version, message, self.on_refused)

    def __repr__(self) -> str:
        return f"TransitSigner(key={self.mount.strip('/')}/{self.key}, version={self.version})"

    __str__ = __repr__
