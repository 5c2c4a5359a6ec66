"""The injector, end to end over HTTPS: AdmissionReview v1 requests shaped as the API server
sends them, the JSONPatch applied with ``jsonpatch``, the pod validated against Kubernetes'
schema (``kubernetes-validate``), and the injected container compared with the one the chart
renders (a real helm, tests/fixtures_helm.py).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import kubernetes_validate
import pytest

from sidecar.cli import main
from sidecar.errors import ConfigError
from sidecar.injector.certs import issue
from sidecar.injector.config import InjectorConfig, parse_injector_config
from sidecar.injector.server import injector_running
from tests.fixtures_helm import Helm, one, pod_spec, sidecar_container
from tests.sync import eventually_blocking

K8S_VERSION = "1.31"  # native sidecars (restartPolicy on an init container) are GA from 1.29
SERVICE, NAMESPACE = "gate-sidecar-injector", "platform"
HOSTNAME = f"{SERVICE}.{NAMESPACE}.svc"
IMAGE = "registry.example.com/gate-sidecar:0.1.0"
CHART_CONFIGMAP = "demo-gate-sidecar-config"  # what the chart names its config for release demo


def free_port() -> int:
    """A free loopback port below the ephemeral range. A port from bind(0) is ephemeral: on a
    busy machine another process's outgoing connection, or another test's bind(0), can take it
    before the injector binds it (seen as "address already in use")."""
    import random
    import socket

    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ranges.read_text().split()[0]) if ranges.exists() else 32768
    low = max(low, 21000)  # (a range from 1024 leaves no port outside it: pick among 20000s)
    for _ in range(100):
        port = random.randrange(20000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def config_data(tls: dict[str, Any], port: int) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{port}",
        "tls": tls,
        "image": IMAGE,
        "profiles": {
            "futures": {
                "allowed": {"namespaces": ["trading"], "service_accounts": ["futures-bot"]},
                "config_configmap": CHART_CONFIGMAP,
            },
            "reader": {
                "allowed": {"namespaces": ["trading", "research"], "service_accounts": ["*"]},
                "config_configmap": "reader-sidecar",
                "api_host": "http://127.0.0.1:8090",
            },
        },
    }


class FakeWebhooks:
    """The API server's MutatingWebhookConfiguration, as the client seam sees it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.object: dict[str, Any] = {
            "metadata": {"name": name, "resourceVersion": "1"},
            "webhooks": [{"name": "inject.gate-sidecar.io", "clientConfig": {"service": {}}}],
        }
        self.patches = 0
        self.conflicts_left = 0

    def get_webhook(self, name: str) -> dict[str, Any]:
        assert name == self.name
        return copy.deepcopy(self.object)

    def patch_webhook(self, name: str, patch: list[dict[str, Any]]) -> None:
        from sidecar.injector.kube import ConflictError

        assert name == self.name
        if self.conflicts_left:
            self.conflicts_left -= 1
            self.object["metadata"]["resourceVersion"] += "1"  # someone else wrote meanwhile
        try:
            self.object = jsonpatch.apply_patch(self.object, patch)
        except jsonpatch.JsonPatchTestFailed:
            raise ConflictError("changed meanwhile") from None
        self.object["metadata"]["resourceVersion"] += "1"
        self.patches += 1

    def bundle(self) -> bytes:
        return base64.b64decode(self.object["webhooks"][0]["clientConfig"]["caBundle"])


class Injector:
    def __init__(self, url: str, ca: bytes, webhooks: FakeWebhooks) -> None:
        self.url = url
        self.ssl = ssl.create_default_context(cadata=ca.decode())
        self.webhooks = webhooks

    async def post(self, body: bytes | dict[str, Any]) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                self.url + "/mutate",
                data=data,
                headers={"Content-Type": "application/json"},
                ssl=self.ssl,
                server_hostname=HOSTNAME,
            ) as resp,
        ):
            doc: dict[str, Any] = await resp.json()
            return resp.status, doc


@pytest.fixture
async def injector(tmp_path: Path) -> AsyncIterator[Injector]:
    """A self-managed injector: it makes its certificate and publishes its CA in the webhook."""
    port = free_port()
    webhooks = FakeWebhooks("platform-gate-sidecar-injector")
    tls = {
        "self_managed": {
            "service": SERVICE,
            "namespace": NAMESPACE,
            "webhook": webhooks.name,
            "dir": str(tmp_path / "tls"),
        }
    }
    config = parse_injector_config(config_data(tls, port))
    async with injector_running(config, webhooks):
        # The client trusts exactly what the API server would: the published caBundle.
        yield Injector(f"https://127.0.0.1:{port}", webhooks.bundle(), webhooks)


def pod(
    annotations: dict[str, str] | None = None, service_account: str = "futures-bot"
) -> dict[str, Any]:
    """A pod as the API server sends it at CREATE (defaults filled in, no name yet)."""
    metadata: dict[str, Any] = {"generateName": "futures-bot-7d9f-", "labels": {"app": "bot"}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "serviceAccountName": service_account,
            "containers": [
                {
                    "name": "bot",
                    "image": "registry.example.com/futures-bot:2.3.1",
                    "args": ["--gate-url", "$(GATE_API_HOST)/api/v4"],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "100m"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                },
                {"name": "metrics", "image": "registry.example.com/exporter:1"},
            ],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


INJECT = {"gate-sidecar.io/inject": "true", "gate-sidecar.io/profile": "futures"}


def admission_review(obj: dict[str, Any], namespace: str = "trading") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "8b6b7c1e-0000-4000-8000-000000000001",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def patched(obj: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    response = answer["response"]
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(obj, patch)
    return result


# -- the plain pod -----------------------------------------------------------------------------


async def test_a_plain_pod_gets_the_sidecar_and_validates_against_the_kubernetes_schema(
    injector: Injector,
) -> None:
    original = pod(INJECT)
    review = admission_review(original)
    status, answer = await injector.post(review)
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == review["request"]["uid"]
    assert answer["response"]["allowed"] is True
    result = patched(original, answer)
    kubernetes_validate.validate(result, K8S_VERSION, strict=True)

    spec = result["spec"]
    [sidecar] = spec["initContainers"]
    assert sidecar["name"] == "gate-sidecar" and sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == IMAGE
    for bot in spec["containers"]:
        assert {"name": "GATE_API_HOST", "value": "http://127.0.0.1:8081"} in bot["env"]
    assert spec["securityContext"] == {"fsGroup": 10001}
    assert result["metadata"]["annotations"]["gate-sidecar.io/status"] == "injected"


async def test_the_pods_own_fields_are_never_overwritten(injector: Injector) -> None:
    original = pod(INJECT)
    spec = original["spec"]
    spec["containers"][1]["env"] = [{"name": "GATE_API_HOST", "value": "http://mine:1"}]
    spec["securityContext"] = {"fsGroup": 2000, "runAsNonRoot": True}
    spec["initContainers"] = [{"name": "migrate", "image": "registry.example.com/migrate:1"}]
    _, answer = await injector.post(admission_review(original))
    result = patched(original, answer)
    kubernetes_validate.validate(result, K8S_VERSION, strict=True)
    # Only additions: remove what the injector added and the pod is what it was.
    assert result["spec"]["containers"][1]["env"] == [
        {"name": "GATE_API_HOST", "value": "http://mine:1"}
    ]
    assert result["spec"]["securityContext"] == {"fsGroup": 2000, "runAsNonRoot": True}
    names = [c["name"] for c in result["spec"]["initContainers"]]
    assert names == ["gate-sidecar", "migrate"]  # first, so later init containers find it
    undone = copy.deepcopy(result)
    undone["metadata"]["annotations"].pop("gate-sidecar.io/status")
    undone["spec"]["initContainers"].pop(0)
    undone["spec"]["volumes"] = undone["spec"]["volumes"][:1]
    undone["spec"]["containers"][0]["env"].pop()
    assert undone == original


# -- the other answers ------------------------------------------------------------------------


async def test_an_already_injected_pod_is_allowed_without_a_patch(injector: Injector) -> None:
    original = pod(INJECT)
    _, first = await injector.post(admission_review(original))
    injected = patched(original, first)
    _, again = await injector.post(admission_review(injected))
    assert again["response"]["allowed"] is True
    assert "patch" not in again["response"] and "patchType" not in again["response"]


async def test_a_pod_without_the_annotations_is_allowed_without_a_patch(injector: Injector) -> None:
    for obj in (pod(), pod({"other": "x"}), pod({"gate-sidecar.io/inject": "false"})):
        status, answer = await injector.post(admission_review(obj))
        assert status == 200
        assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


@pytest.mark.parametrize(
    ("namespace", "service_account", "profile", "message"),
    [
        (
            "research",
            "futures-bot",
            "futures",
            "profile 'futures' may not be used by namespace 'research'",
        ),
        (
            "trading",
            "intruder",
            "futures",
            "profile 'futures' may not be used by service account trading/intruder",
        ),
        ("trading", "futures-bot", "admin", "profile 'admin' is not defined in the injector"),
    ],
)
async def test_a_profile_the_pod_may_not_use_is_refused_naming_the_profile_and_who(
    injector: Injector, namespace: str, service_account: str, profile: str, message: str
) -> None:
    obj = pod({**INJECT, "gate-sidecar.io/profile": profile}, service_account=service_account)
    status, answer = await injector.post(admission_review(obj, namespace))
    assert status == 200
    response = answer["response"]
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["code"] == 403
    assert response["status"]["message"] == f"gate-sidecar injector: {message}"


async def test_a_wildcard_profile_admits_any_service_account_of_its_namespaces(
    injector: Injector,
) -> None:
    obj = pod({**INJECT, "gate-sidecar.io/profile": "reader"}, service_account="anyone")
    _, answer = await injector.post(admission_review(obj, "research"))
    result = patched(obj, answer)
    assert {"name": "GATE_API_HOST", "value": "http://127.0.0.1:8090"} in result["spec"][
        "containers"
    ][0]["env"]
    [config] = [v for v in result["spec"]["volumes"] if v["name"] == "gate-sidecar-config"]
    assert config["configMap"]["name"] == "reader-sidecar"


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"gate-sidecar.io/inject": "yes"}, '\'yes\' is neither "true" nor "false"'),
        ({"gate-sidecar.io/inject": "true"}, "gate-sidecar.io/profile: required with inject"),
    ],
)
async def test_an_unreadable_annotation_is_refused(
    injector: Injector, annotations: dict[str, str], message: str
) -> None:
    _, answer = await injector.post(admission_review(pod(annotations)))
    assert answer["response"]["allowed"] is False
    assert message in answer["response"]["status"]["message"]


async def test_a_volume_name_the_pod_already_uses_is_a_conflict_not_an_overwrite(
    injector: Injector,
) -> None:
    obj = pod(INJECT)
    obj["spec"]["volumes"].append({"name": "gate-sidecar-tmp", "emptyDir": {}})
    _, answer = await injector.post(admission_review(obj))
    assert answer["response"]["allowed"] is False
    assert "gate-sidecar-tmp" in answer["response"]["status"]["message"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "AdmissionReview"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "no request"),
        ("no-uid", "request.uid is missing"),
        ("not-a-pod", "not a core/v1 Pod"),
        ("update", "not CREATE"),
        ("no-spec", "not a pod with a spec"),
    ],
)
async def test_a_malformed_review_gets_400_and_no_verdict(
    injector: Injector, body: bytes | dict[str, Any] | str, error: str
) -> None:
    if isinstance(body, str):
        review = admission_review(pod(INJECT))
        request = review["request"]
        if body == "no-uid":
            del request["uid"]
        elif body == "not-a-pod":
            request["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
        elif body == "update":
            request["operation"] = "UPDATE"
        else:
            del request["object"]["spec"]
        body = review
    status, answer = await injector.post(body)
    assert status == 400
    assert error in answer["error"] and "response" not in answer


async def test_healthz_answers_over_https(injector: Injector) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(injector.url + "/healthz", ssl=injector.ssl, server_hostname=HOSTNAME) as resp,
    ):
        assert resp.status == 200


# -- one source with the chart ------------------------------------------------------------------


async def test_the_injected_container_and_volumes_equal_what_the_chart_renders(
    injector: Injector, helm: Helm
) -> None:
    docs = helm.template(
        values={"sidecar": {"image": {"repository": IMAGE.split(":")[0], "tag": "0.1.0"}}}
    )
    chart_spec = pod_spec(docs)
    chart_container = sidecar_container(chart_spec)
    assert one(docs, "ConfigMap")["metadata"]["name"] == CHART_CONFIGMAP
    original = pod(INJECT)
    _, answer = await injector.post(admission_review(original))
    result = patched(original, answer)
    assert result["spec"]["initContainers"][0] == chart_container
    chart_volumes = [v for v in chart_spec["volumes"] if v["name"].startswith("gate-sidecar-")]
    injected = [v for v in result["spec"]["volumes"] if v["name"].startswith("gate-sidecar-")]
    assert injected == chart_volumes
    assert chart_spec["securityContext"]["fsGroup"] == result["spec"]["securityContext"]["fsGroup"]


def test_a_value_set_in_the_chart_is_merged_onto_the_shared_defaults(helm: Helm) -> None:
    docs = helm.template(values={"sidecar": {"resources": {"limits": {"memory": "1Gi"}}}})
    resources = sidecar_container(pod_spec(docs))["resources"]
    assert resources == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "1Gi"},
    }


# -- TLS: self-managed certificates -------------------------------------------------------------


def test_a_self_managed_certificate_is_renewed_before_it_expires_and_its_ca_published(
    tmp_path: Path,
) -> None:
    from sidecar.injector.config import SelfManagedTLS
    from sidecar.injector.rotation import CertRotator

    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    webhooks = FakeWebhooks("hook")
    settings = SelfManagedTLS(
        service=SERVICE, namespace=NAMESPACE, webhook="hook", dir=tmp_path, valid_days=10,
        renew_before_days=3,
    )  # fmt: skip
    rotator = CertRotator(settings, webhooks, clock=lambda: now[0])
    assert rotator.ensure() is True
    first_cert, first_bundle = rotator.cert_file.read_bytes(), webhooks.bundle()
    assert oct(rotator.key_file.stat().st_mode & 0o777) == "0o600"
    verify_chain(first_cert, first_bundle)

    now[0] += dt.timedelta(days=6)  # 4 days left: not yet due
    assert rotator.ensure() is False and webhooks.patches == 1

    now[0] += dt.timedelta(days=2)  # 2 days left: renewed; both CAs trusted meanwhile
    webhooks.conflicts_left = 1  # another replica wrote in between: retried on the new object
    assert rotator.ensure() is True
    second_cert, second_bundle = rotator.cert_file.read_bytes(), webhooks.bundle()
    assert second_cert != first_cert
    verify_chain(second_cert, second_bundle)
    verify_chain(first_cert, second_bundle)  # the old certificate stays valid until swapped
    assert second_bundle.startswith(issued_ca(second_cert, second_bundle))

    now[0] += dt.timedelta(days=9)  # the first CA has expired: renewed, and it is dropped
    assert rotator.ensure() is True
    from cryptography import x509

    assert len(x509.load_pem_x509_certificates(webhooks.bundle())) == 2


def issued_ca(cert_pem: bytes, bundle: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem)
    for ca in x509.load_pem_x509_certificates(bundle):
        if ca.subject == cert.issuer:
            return ca.public_bytes(serialization.Encoding.PEM)
    raise AssertionError("no CA in the bundle issued the certificate")


def verify_chain(cert_pem: bytes, bundle: bytes) -> None:
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store

    cert = x509.load_pem_x509_certificate(cert_pem)
    store = Store(x509.load_pem_x509_certificates(bundle))
    when = cert.not_valid_before_utc + dt.timedelta(minutes=5)
    verifier = PolicyBuilder().store(store).time(when).build_server_verifier(x509.DNSName(HOSTNAME))
    verifier.verify(cert, [])


def test_issued_certificates_name_the_service_and_are_valid_as_asked() -> None:
    from cryptography import x509

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    issued = issue(SERVICE, NAMESPACE, now, 30)
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert HOSTNAME in names.get_values_for_type(x509.DNSName)
    assert cert.not_valid_after_utc == now + dt.timedelta(days=30)
    assert "BEGIN PRIVATE KEY" not in repr(issued)
    verify_chain(issued.cert_pem, issued.ca_pem)


async def test_an_injector_with_certificate_files_serves_them(tmp_path: Path) -> None:
    issued = issue(SERVICE, NAMESPACE, dt.datetime.now(dt.UTC), 1)
    (tmp_path / "tls.crt").write_bytes(issued.cert_pem)
    (tmp_path / "tls.key").write_bytes(issued.key_pem)
    port = free_port()
    tls = {"cert_file": str(tmp_path / "tls.crt"), "key_file": str(tmp_path / "tls.key")}
    config = parse_injector_config(config_data(tls, port))
    async with injector_running(config):
        client = Injector(f"https://127.0.0.1:{port}", issued.ca_pem, FakeWebhooks("unused"))
        status, answer = await client.post(admission_review(pod(INJECT)))
        assert status == 200 and answer["response"]["allowed"] is True


# -- the config file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"profiles": {}}, "profiles:"),
        ({"tls": {}}, "tls: Value error, set cert_file and key_file, or self_managed"),
        ({"listen": "8443"}, "listen: Value error, '8443' is not host:port"),
        (
            {"profiles": {"p": {"allowed": {"namespaces": []}, "config_configmap": "c"}}},
            "profiles.p.allowed.namespaces",
        ),
        ({"profiles": {"Bad_Name": {"allowed": {}, "config_configmap": "c"}}}, "profiles.Bad_Name"),
        ({"image": ""}, "image:"),
    ],
)
def test_a_bad_injector_config_names_the_field(change: dict[str, Any], problem: str) -> None:
    data = {**config_data({"cert_file": "/c", "key_file": "/k"}, 8443), **change}
    with pytest.raises(ConfigError) as caught:
        parse_injector_config(data)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_the_command_refuses_a_bad_config_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "injector.yaml"
    path.write_text("listen: 127.0.0.1:8443\nimage: x\nprofiles: {}\n")
    assert main(["injector", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "config error: tls: Field required" in err and "Traceback" not in err


def test_the_charts_injector_config_is_one_the_injector_accepts(helm: Helm) -> None:
    profiles = config_data({}, 1)["profiles"]
    for cert_manager in (False, True):
        values = {
            "workload": {"enabled": False},
            "injector": {
                "enabled": True,
                "profiles": profiles,
                "certManager": {"enabled": cert_manager},
            },
        }
        docs = helm.template(values=values)
        config_maps = [d for d in docs if d["kind"] == "ConfigMap"]
        [config_map] = [d for d in config_maps if "injector.yaml" in d.get("data", {})]
        import yaml

        config = parse_injector_config(yaml.safe_load(config_map["data"]["injector.yaml"]))
        assert isinstance(config, InjectorConfig)
        assert config.image == "ghcr.io/your-org/gate-sidecar:0.1.0"
        assert (config.tls.self_managed is None) == cert_manager


# -- the chart's injector objects -------------------------------------------------------------

BUILT_IN = {"ServiceAccount", "ConfigMap", "Service", "Deployment", "ClusterRole",
            "ClusterRoleBinding", "MutatingWebhookConfiguration"}  # fmt: skip


def injector_docs(helm: Helm, **injector: Any) -> list[dict[str, Any]]:
    values = {
        "workload": {"enabled": False},
        "injector": {"enabled": True, "profiles": config_data({}, 1)["profiles"], **injector},
    }
    return helm.template(values=values)


def test_the_chart_renders_a_valid_injector_with_its_webhook_and_narrow_rbac(helm: Helm) -> None:
    docs = injector_docs(helm)
    assert {d["kind"] for d in docs} == BUILT_IN
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    [hook] = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["namespaceSelector"] == {"matchLabels": {"gate-sidecar.io/injection": "enabled"}}
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    service = one(docs, "Service")
    assert hook["clientConfig"]["service"] == {
        "name": service["metadata"]["name"],
        "namespace": "trading",
        "path": "/mutate",
        "port": 443,
    }
    assert "caBundle" not in hook["clientConfig"]  # the injector publishes it
    [rule] = one(docs, "ClusterRole")["rules"]
    webhook_name = one(docs, "MutatingWebhookConfiguration")["metadata"]["name"]
    assert rule["resourceNames"] == [webhook_name] and rule["verbs"] == ["get", "patch"]
    deployment = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert deployment["automountServiceAccountToken"] is True
    [container] = deployment["containers"]
    assert container["args"][0] == "injector"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_webhooks_failure_policy_and_selectors_come_from_the_values(helm: Helm) -> None:
    selector = {"matchExpressions": [{"key": "team", "operator": "In", "values": ["quant"]}]}
    # Helm merges maps: the default matchLabels goes only when set to null.
    docs = injector_docs(
        helm,
        failurePolicy="Ignore",
        namespaceSelector={**selector, "matchLabels": None},
        objectSelector=selector,
    )
    [hook] = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["namespaceSelector"] == selector and hook["objectSelector"] == selector


def test_with_cert_manager_the_chart_asks_for_a_certificate_and_ca_injection(helm: Helm) -> None:
    docs = injector_docs(helm, certManager={"enabled": True})
    hook = one(docs, "MutatingWebhookConfiguration")
    certificate = one(docs, "Certificate")
    name = certificate["metadata"]["name"]
    assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"trading/{name}"
    assert certificate["spec"]["issuerRef"] == {"name": one(docs, "Issuer")["metadata"]["name"],
                                                "kind": "Issuer"}  # fmt: skip
    assert f"{name}.trading.svc" in certificate["spec"]["dnsNames"]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    deployment = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert deployment["automountServiceAccountToken"] is False
    issuer = {"name": "corp-ca", "kind": "ClusterIssuer"}
    docs = injector_docs(helm, certManager={"enabled": True, "issuerRef": issuer})
    assert one(docs, "Certificate")["spec"]["issuerRef"] == issuer
    assert not [d for d in docs if d["kind"] == "Issuer"]


def test_the_chart_refuses_an_injector_without_profiles(helm: Helm) -> None:
    result = helm.template_result(
        values={"workload": {"enabled": False}, "injector": {"enabled": True}}
    )
    assert result.returncode != 0 and "injector.profiles: define at least one" in result.stderr


def test_the_injector_command_serves_until_sigterm(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import urllib.request

    import yaml

    issued = issue(SERVICE, NAMESPACE, dt.datetime.now(dt.UTC), 1)
    (tmp_path / "tls.crt").write_bytes(issued.cert_pem)
    (tmp_path / "tls.key").write_bytes(issued.key_pem)
    port = free_port()
    tls = {"cert_file": str(tmp_path / "tls.crt"), "key_file": str(tmp_path / "tls.key")}
    path = tmp_path / "injector.yaml"
    path.write_text(yaml.safe_dump(config_data(tls, port)))
    command = [sys.executable, "-m", "sidecar", "injector", "--config", str(path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    context = ssl.create_default_context(cadata=issued.ca_pem.decode())
    context.check_hostname = False  # 127.0.0.1 is not in the certificate; the chain still is
    try:

        def healthy() -> bool:
            assert process.poll() is None, process.communicate()
            url = f"https://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, context=context, timeout=2) as resp:
                return bool(resp.status == 200)

        eventually_blocking(healthy, 20, "the injector answering /healthz", ignoring=(OSError,))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        out, err = process.communicate()
        assert b"Traceback" not in err and b"injector listening" in out + err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
