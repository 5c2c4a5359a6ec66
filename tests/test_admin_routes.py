"""The admin routes as pure functions (sidecar.ops.admin.route): no socket, no running sidecar.

What the admin listener does with a connection (limits, refusals) is the key listeners' code and
is tested over real sockets in tests/test_listener_limits.py; here, what each request gets.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from sidecar.errors import Overloaded, SidecarError
from sidecar.ops.admin import Admin, AdminSite, Endpoint, match, route
from sidecar.ops.metrics import Metrics
from sidecar.ops.status import KeyStatus
from sidecar.proxy.admission import TokenFile
from sidecar.proxy.peer import UNKNOWN_PEER
from sidecar.proxy.pipeline import BotRequest, BotResponse, ReadyBody
from tests.doubles import StubView
from tests.leaks import register_secret


class View(StubView):
    """A sidecar with keys ``a`` (ready) and ``b`` (as configured: ready or not)."""

    def __init__(self, b_ready: bool = True) -> None:
        self.b_ready = b_ready
        self.switched: list[tuple[str, bool, str]] = []

    def key_statuses(self) -> list[KeyStatus]:
        def status(name: str, ready: bool) -> KeyStatus:
            problem = None if ready else f"key {name} has no usable secret"
            slot: dict[str, object] = {"version": "env"}
            return KeyStatus(name, "127.0.0.1:0", "http://127.0.0.1:1", 0, ready, problem, "env",
                             1.0, 0.0, slot)  # fmt: skip

        return [status("a", True), status("b", self.b_ready)]

    def switch_cancel_only(self, name: str, on: bool, by: str) -> bool | None:
        if name not in ("a", "b"):
            return None
        self.switched.append((name, on, by))
        return True


def scrape(params: Mapping[str, list[str]]) -> tuple[bytes, str]:
    return json.dumps({"params": dict(params)}).encode(), "text/test"


def admin(view: View | None = None, token: TokenFile | None = None) -> Admin:
    view = view or View()
    return Admin(view=view, brakes=view, scrape=scrape, metrics_token=token)


def body(response: BotResponse) -> dict[str, object]:
    doc = json.loads(response.body)
    assert isinstance(doc, dict)
    return doc


def header(response: BotResponse, name: str) -> str | None:
    return next((v for k, v in response.headers if k.lower() == name.lower()), None)


def test_paths_name_one_endpoint_exactly() -> None:
    assert match("/healthz") == (Endpoint.HEALTHZ, "")
    assert match("/keys/bot%2Done/cancel-only") == (Endpoint.CANCEL_ONLY, "bot-one")
    for path in ("/healthz/", "/HEALTHZ", "/keys//cancel-only", "/keys/a/b/cancel-only", "/"):
        assert match(path) is None, path


def test_healthz_and_readyz() -> None:
    ok = route(admin(), "GET", "/healthz", [])
    assert (ok.status, body(ok)) == (200, {"status": "ok"})
    assert header(ok, "Content-Type") == "application/json; charset=utf-8"
    ready = route(admin(), "GET", "/readyz", [])
    assert ready.status == 200 and body(ready)["ready"] is True
    unready = route(admin(View(b_ready=False)), "GET", "/readyz", [])
    assert unready.status == 503
    assert body(unready)["missing"] == ["b"]
    assert body(unready)["problems"] == ["b: key b has no usable secret"]


def test_unknown_paths_and_methods_get_sidecar_answers() -> None:
    missing = route(admin(), "GET", "/api/v4/spot/accounts", [])
    assert (missing.status, body(missing)["label"]) == (404, "SIDECAR_NOT_FOUND")
    assert b"/api/v4" not in missing.body  # the path is not echoed
    wrong = route(admin(), "POST", "/healthz", [])
    assert (wrong.status, body(wrong)["label"]) == (405, "SIDECAR_METHOD_NOT_ALLOWED")
    assert header(wrong, "Allow") == "GET, HEAD"
    assert route(admin(), "GET", "/keys/a/cancel-only", []).status == 405


def test_the_cancel_only_switch() -> None:
    view = View()
    on = route(admin(view), "POST", "/keys/a/cancel-only", [])
    assert (on.status, body(on)) == (200, {"key": "a", "cancel_only": True, "changed": True})
    off = route(admin(view), "DELETE", "/keys/b/cancel-only", [])
    assert body(off)["cancel_only"] is False
    assert view.switched == [("a", True, "admin"), ("b", False, "admin")]
    nobody = route(admin(view), "POST", "/keys/nobody/cancel-only", [])
    assert (nobody.status, body(nobody)["label"]) == (404, "SIDECAR_NOT_FOUND")


def test_metrics_pass_names_on_and_gzip_when_asked() -> None:
    answer = route(admin(), "GET", "/metrics?name[]=a&name[]=b", [])
    assert answer.status == 200 and header(answer, "Content-Type") == "text/test"
    assert json.loads(answer.body) == {"params": {"name[]": ["a", "b"]}}
    assert header(answer, "Content-Encoding") is None
    zipped = route(admin(), "GET", "/metrics", [("Accept-Encoding", "deflate, GZIP;q=0.5")])
    assert header(zipped, "Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(zipped.body)) == {"params": {}}


def test_metrics_need_the_bearer_token_when_one_is_set(tmp_path: Path) -> None:
    register_secret("scrape-token-0123456789")
    path = tmp_path / "token"
    path.write_text("scrape-token-0123456789\n")
    guarded = admin(token=TokenFile(path))
    good = ("Authorization", "Bearer scrape-token-0123456789")
    for headers in (
        [],
        [("Authorization", "Bearer wrong")],
        [("Authorization", "Basic scrape-token-0123456789")],
        [good, ("Authorization", "Bearer wrong")],  # two: which one counts is not for certain
    ):
        refused = route(guarded, "GET", "/metrics", headers)
        assert (refused.status, body(refused)["label"]) == (401, "SIDECAR_UNAUTHENTICATED")
        assert header(refused, "WWW-Authenticate") == 'Bearer realm="gate-sidecar metrics"'
    assert route(guarded, "GET", "/metrics", [good]).status == 200
    assert route(guarded, "GET", "/readyz", []).status == 200  # probes stay open


def test_the_real_metrics_render_in_the_text_format() -> None:
    metrics = Metrics()
    text, content_type = metrics.scrape({})
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b"gate_sidecar_build_info" in text
    only, _ = metrics.scrape({"name[]": ["gate_sidecar_build_info"]})
    assert b"gate_sidecar_build_info" in only and b"gate_sidecar_config_reloads" not in only


def test_the_admin_site_serves_no_websocket_holds_no_token_and_counts_refusals() -> None:
    refused: list[SidecarError] = []
    site = AdminSite(admin(), 1024, refused.append)
    assert site.ws is None and site.hold([("Authorization", "Bearer x")], lambda: None) is None
    site.refused(Overloaded("too many"), "-", "-", UNKNOWN_PEER)
    assert [e.label for e in refused] == ["SIDECAR_OVERLOADED"]
    request = BotRequest("GET", "/healthz", [], ReadyBody(b""))
    response, record = asyncio.run(site.respond(request))
    assert response.status == 200 and record is None


def test_a_bug_in_a_route_is_a_500_not_a_dropped_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(View):
        def key_statuses(self) -> list[KeyStatus]:
            raise RuntimeError("boom")

    site = AdminSite(admin(Broken()), 1024, lambda exc: None)
    request = BotRequest("GET", "/readyz", [], ReadyBody(b""))
    response, _ = asyncio.run(site.respond(request))
    assert response.status == 500 and body(response)["label"] == "SIDECAR_INTERNAL_ERROR"
    assert "admin request failed" in caplog.text
