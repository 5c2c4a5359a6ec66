"""The Vault session: one token, kept valid in the background, shared by every Vault caller.

A background task owns the token's whole life: log in, renew at about two thirds of the TTL, log
in again when renewal fails, the token expires, Vault caps its renewals (max TTL) or someone saw a
403 with it; back off exponentially (capped) while Vault cannot be reached. Nothing here blocks
start-up: the sidecar opens its listeners at once and each Vault source simply gets
:class:`~sidecar.vault.errors.VaultUnavailable` until the first login succeeds, at which point
:attr:`VaultSession.login_listeners` wake the sources so they fill their slots within moments.

hvac is blocking, so every hvac call runs in a worker thread. Each login builds a fresh
``hvac.Client`` that carries its token for its whole life (rather than rebinding the token on a
shared client), so a call running in a thread can never see a token change mid-request. All
clients share one ``requests.Session`` (one connection pool).

Longer than most modules on purpose: :class:`VaultSession` is one state machine (logged out,
logging in, renewing, backing off) whose transitions are read and written by the background
task, the callers that report a 403 and the shutdown alike, and is easiest to check whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sidecar.aio import backoff_s, cancel_and_wait
from sidecar.vault.auth import login, watched_file
from sidecar.vault.auth.base import LoginResult, from_auth_response
from sidecar.vault.errors import (
    VaultError,
    VaultForbidden,
    VaultLoginFailed,
    VaultUnavailable,
    map_error,
    mapped,
)
from sidecar.vault.settings import VaultConfig

if TYPE_CHECKING:  # imported when a session is made: a sidecar without Vault never loads hvac
    import hvac

log = logging.getLogger("sidecar.vault")

T = TypeVar("T")

RENEW_AT = 2 / 3  # fraction of the TTL after which the token is renewed
MIN_LOGIN_GAP_S = 0.5  # however often callers ask, never log in more often than this
TOKEN_FILE_CHECK_S = 5.0  # how often a token_file is checked for a new token
CAPPED = 0.9  # a renewal granting less than this share of the login TTL hit the max TTL


def _file_stamp(path: os.PathLike[str] | str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class VaultStatus:
    """The session as /metrics shows it."""

    ready: bool  # a token is usable now
    token_ttl_s: float | None  # None without a token, or for a token that never expires
    logins: int
    renewals: int
    errors: dict[str, int]  # failed calls by VaultError.kind


class VaultSession:
    """Owns the Vault token; :meth:`call` runs an hvac call with a valid one.

    Public for other Vault users (the transit signer speaks HTTP with aiohttp itself and reuses
    only the token lifecycle): :attr:`address`, :attr:`namespace`, :attr:`verify` /
    :attr:`ca_file`, :meth:`token`, :meth:`token_forbidden`; for metrics: :meth:`status`.

    Longer than most modules on purpose: this class is one state machine (the token's life), and
    splitting its states over files would hide how they hand over to each other.
    """

    #: cap of the login/renewal retry backoff: a returning Vault is seen within seconds
    max_backoff_s: float = 3.0

    def __init__(
        self,
        cfg: VaultConfig,
        *,
        environ: Mapping[str, str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not cfg.address:
            raise ValueError("vault.address is not set")
        self.cfg = cfg
        self.address = cfg.address.rstrip("/")
        self.namespace = cfg.namespace
        self.ca_file = cfg.ca_file
        #: requests-style TLS verification: True (system CAs) or the CA bundle path
        self.verify: bool | str = str(cfg.ca_file) if cfg.ca_file is not None else True
        self.timeout_s = cfg.timeout_s
        self.method = cfg.auth.method
        self._environ = os.environ if environ is None else environ
        self._now = monotonic
        import requests

        self._http = requests.Session()
        self._http.verify = self.verify  # hvac prefers the session's verify over its own

        # The current token and its lease (monotonic times). _client carries _token.
        self._client: hvac.Client | None = None
        self._token: str | None = None
        self._generation = 0  # +1 per successful login: tells a caller whether it changed
        self._login_ttl_s = 0.0
        self._expires_at: float | None = None
        self._renew_at: float | None = None
        self._renewable = False
        self._renew_capped = False
        self._relogin = False  # a 403 was seen with the current token
        self._token_stamp: tuple[int, int, int] | None = None

        self._attempts = 0  # finished login attempts, successful or not
        self._last_attempt_at = -math.inf
        self._login_error: VaultError | None = None
        self._last_logged_error: str | None = None
        self._wake = asyncio.Event()
        # Set (and replaced) whenever a login attempt finishes. A plain Event rather than a
        # Condition: Condition.wait cancelled at the wrong moment can deadlock on Python 3.11.
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

        #: called (no arguments) when a token becomes available after there was none
        self.login_listeners: list[Callable[[], None]] = []
        self.logins = 0
        self.renewals = 0
        self.errors: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"VaultSession(address={self.address!r}, method={self.method!r})"

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the token task. Returns at once: Vault may well be down right now."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="vault-token")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._http.close()

    # -- for callers --------------------------------------------------------------------------
    @property
    def token_ttl_s(self) -> float | None:
        """Seconds left on the token; None without a token or for a token that never expires."""
        if self._client is None or self._expires_at is None:
            return None
        return max(0.0, self._expires_at - self._now())

    @property
    def ready(self) -> bool:
        return self._usable()

    def status(self) -> VaultStatus:
        return VaultStatus(
            self._usable(), self.token_ttl_s, self.logins, self.renewals, dict(self.errors)
        )

    async def token(self) -> str:
        """A currently valid token, waiting (bounded) for a login in progress."""
        await self._current()
        assert self._token is not None
        return self._token

    async def token_forbidden(self, token: str | None = None) -> None:
        """Report a 403 seen with ``token`` (default: the current one): log in again now.

        Returns once a new token is in place or the login attempt failed (bounded); a token
        that was already replaced is ignored, so many callers seeing the same 403 cause one
        login, not a stampede.
        """
        if token is not None and token != self._token:
            return
        with contextlib.suppress(VaultError):
            await self._relogin_after(self._generation)

    async def call(self, fn: Callable[[hvac.Client], T], *, what: str = "Vault request") -> T:
        """Run ``fn(client)`` in a thread with a valid token; raise mapped :class:`VaultError`.

        On 403 the session logs in afresh once and retries, so a :class:`VaultForbidden` from
        here means the *current* identity is denied, not merely that an old token expired.
        """
        generation = await self._current()
        try:
            return await self._in_thread(fn, what)
        except VaultForbidden:
            pass
        await self._relogin_after(generation)
        await self._current()
        return await self._in_thread(fn, what)

    # -- internals: calls ---------------------------------------------------------------------
    def _usable(self) -> bool:
        if self._client is None:
            return False
        return self._expires_at is None or self._now() < self._expires_at

    def _count(self, err: VaultError) -> None:
        self.errors[err.kind] = self.errors.get(err.kind, 0) + 1

    async def _in_thread(self, fn: Callable[[hvac.Client], T], what: str) -> T:
        client = self._client
        assert client is not None
        try:
            return await asyncio.to_thread(fn, client)
        except mapped() as exc:
            err = map_error(exc, what)
        self._count(err)
        raise err

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()`` (re-checked after each login attempt), at most a timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s + 1
        while not ready():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives just as the event is set, and the cancelled task runs on for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    async def _current(self) -> int:
        """Ensure a usable token (asking the task to log in now if needed); its generation."""
        if self._usable():
            return self._generation
        if self._task is None:
            await self.start()
        attempts = self._attempts
        self._wake.set()
        await self._wait_until(lambda: self._usable() or self._attempts > attempts)
        if self._usable():
            return self._generation
        raise self._login_error or VaultUnavailable("no Vault token yet (logging in)")

    async def _relogin_after(self, generation: int) -> None:
        """Make sure the token of ``generation`` is replaced by a fresh login (bounded wait)."""
        if self._generation != generation:
            return  # someone already logged in again since
        attempts = self._attempts
        self._relogin = True
        self._wake.set()
        if self._task is None:
            await self.start()
        await self._wait_until(lambda: self._generation != generation or self._attempts > attempts)
        if self._generation == generation:
            raise self._login_error or VaultUnavailable("logging in to Vault again took too long")

    # -- internals: the token task ------------------------------------------------------------
    def _next_action(self) -> tuple[str, float | None]:
        """("login" | "renew", 0) or ("wait", seconds or None for "until woken")."""
        now = self._now()
        if self._client is None or self._relogin or not self._usable():
            return "login", 0.0
        if self._token_file_changed():
            return "login", 0.0
        check = TOKEN_FILE_CHECK_S if self._watches_token_file() else None
        if self._renew_at is None:
            return "wait", check
        if now >= self._renew_at:
            return ("renew" if self._renewable and not self._renew_capped else "login"), 0.0
        wait = self._renew_at - now
        return "wait", wait if check is None else min(wait, check)

    def _watches_token_file(self) -> bool:
        return watched_file(self.cfg.auth) is not None

    def _token_file_changed(self) -> bool:
        # A stat every few seconds; cheap enough to do on the loop.
        path = watched_file(self.cfg.auth)
        return path is not None and _file_stamp(path) != self._token_stamp

    async def _run(self) -> None:
        failures = 0
        while True:
            action, delay = self._next_action()
            if action == "wait":
                await self._sleep(delay)
                continue
            try:
                ok = await (self._login() if action == "login" else self._renew())
            except Exception:
                # A bug here must not leave every Vault key without a token for good.
                log.exception("Vault token task crashed; retrying")
                ok = False
            failures = 0 if ok else failures + 1
            if not ok:
                await self._sleep(backoff_s(failures, self.max_backoff_s))

    async def _sleep(self, delay: float | None) -> None:
        """Sleep ``delay`` seconds (None: until woken); callers needing a token wake us early."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):  # not wait_for: see _wait_until
                await self._wake.wait()
        self._wake.clear()

    def _make_client(self, token: str | None) -> hvac.Client:
        import hvac

        return hvac.Client(
            url=self.address,
            token=token,
            namespace=self.namespace,
            timeout=self.timeout_s,
            verify=self.verify,
            session=self._http,
        )

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _login(self) -> bool:
        gap = self._last_attempt_at + MIN_LOGIN_GAP_S - self._now()
        if gap > 0:
            await asyncio.sleep(gap)
        self._last_attempt_at = started = self._now()
        had_token = self._usable()
        what = f"logging in to Vault ({self.method})"
        try:
            result = await asyncio.to_thread(login, self._make_client, self.cfg.auth, self._environ)
        except mapped(VaultError) as exc:
            err = map_error(exc, what)
            if not isinstance(err, VaultUnavailable | VaultLoginFailed):
                # Refused credentials (400/403...) are not an outage: say so distinctly.
                err = VaultLoginFailed(str(err))
            self._count(err)
            self._login_error = err
            self._attempts += 1
            self._log_failure(err)
            self._notify()
            return False
        self._install(result, started)
        if (path := watched_file(self.cfg.auth)) is not None:
            self._token_stamp = _file_stamp(path)
        self._relogin = False
        self._generation += 1
        self._attempts += 1
        self.logins += 1
        self._login_error = None
        self._last_logged_error = None
        # Routine re-logins (max TTL reached, a 403 to confirm) are counted, not logged loudly.
        log.log(
            logging.DEBUG if had_token else logging.INFO,
            "logged in to Vault",
            extra={
                "method": self.method,
                "ttl_s": result.ttl_s,
                "renewable": result.renewable,
                "policies": ",".join(result.policies),
            },
        )
        self._notify()
        if not had_token:
            for listener in list(self.login_listeners):
                listener()
        return True

    def _install(self, result: LoginResult, started: float) -> None:
        self._token = result.token
        self._client = self._make_client(result.token)
        self._login_ttl_s = result.ttl_s
        self._renewable = result.renewable
        self._renew_capped = False
        self._set_lease(result.ttl_s, started)

    def _set_lease(self, ttl_s: float, started: float) -> None:
        # Times count from *before* the request: the lease began no earlier than that.
        if ttl_s > 0:
            self._expires_at = started + ttl_s
            self._renew_at = started + ttl_s * RENEW_AT
        else:
            self._expires_at = self._renew_at = None

    async def _renew(self) -> bool:
        client = self._client
        assert client is not None
        started = self._now()
        try:
            response = await asyncio.to_thread(client.auth.token.renew_self)
            result = from_auth_response(response)
        except mapped(VaultError) as exc:
            err = map_error(exc, "renewing the Vault token")
            self._count(err)
            if isinstance(err, VaultUnavailable):
                # Keep the token (it is valid until it expires) and retry with backoff.
                self._log_failure(err)
                return False
            # Revoked, expired or not renewable after all: a fresh login is the cure.
            log.info("Vault token renewal refused; logging in again", extra={"error": str(err)})
            self._relogin = True
            return True
        self._renewable = result.renewable
        self._renew_capped = result.ttl_s < self._login_ttl_s * CAPPED
        self._set_lease(result.ttl_s, started)
        self.renewals += 1
        log.debug(
            "renewed the Vault token",
            extra={"ttl_s": result.ttl_s, "capped": self._renew_capped},
        )
        return True

    def _log_failure(self, err: VaultError) -> None:
        # An outage repeats the same error every few seconds: log it once, then at debug.
        message = str(err)
        level = logging.DEBUG if message == self._last_logged_error else logging.WARNING
        self._last_logged_error = message
        log.log(level, "Vault token error", extra={"error": message, "method": self.method})
