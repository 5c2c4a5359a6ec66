"""Only what the config uses is imported: a started sidecar whose keys share no budget never
imports redis (nor the ``cryptography`` redis loads); one whose keys come from the environment
never imports hvac or requests; and the command line, which builds every command's parser for
``serve`` too, never imports the key manager behind ``keys`` (hvac, requests, ``cryptography``).
Nor does it import aiohttp (about 9 MB) before a bot opens a WebSocket session, nor ever
prometheus_client (about 2 MB; the sidecar writes /metrics itself). Together about 33 MB of RSS.
Each case runs in a fresh interpreter, since this test process has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Builds the command line's parser and starts the sidecar as `serve` does (every key's slot,
# source, budget, windows and listener, then the admin listener), stops it, and prints which of
# the watched packages it imported.
SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from sidecar.cli import build_parser
    from sidecar.config import parse_config
    from sidecar.runtime.admin_listener import open_admin
    from sidecar.runtime.app import running

    build_parser()

    async def main(cfg):
        config = parse_config(cfg, environ={})
        environ = {"GATE_KEY": "k", "GATE_SECRET": "s" * 64}
        async with running(config, environ=environ) as sidecar:
            admin = await open_admin(sidecar, config)
            if sys.argv[3] == "ws":  # a bot opens a WebSocket (Gate unreachable: refused, 502)
                port = int(sidecar.keys["bot"].url.rsplit(":", 1)[1])
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    b"GET /ws/v4/ HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\n" % port
                    + b"Upgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
                    b"Sec-WebSocket-Version: 13\\r\\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n"
                )
                answer = await reader.read()
                assert answer.startswith(b"HTTP/1.1 502"), answer[:300]
                writer.close()
            await admin.close()

    asyncio.run(main(json.loads(sys.argv[1])))
    loaded = {name.split(".")[0] for name in sys.modules}
    print(json.dumps(sorted(loaded & set(json.loads(sys.argv[2])))))
    """
)
# prometheus_client is the key manager's only: the sidecar writes /metrics itself.
WATCHED = [
    "redis",
    "cryptography",
    "hvac",
    "requests",
    "aiohttp",
    "yarl",
    "multidict",
    "prometheus_client",
]


def key(**extra: object) -> dict[str, object]:
    return {
        "name": "bot",
        "listen": "127.0.0.1:0",
        "source": {"env": {}},
        "policy": "full-trading",
        "guards": {"windows": [{"per_s": 60, "max_orders": 100}]},
        **extra,
    }


def imported(keys: list[dict[str, object]], *, websocket: bool = False) -> list[str]:
    cfg = {
        "clock": {"sync": False},
        "admin": {"listen": "127.0.0.1:0"},
        "upstream": {"ws": {"spot": "ws://127.0.0.1:1/ws/v4/"}},  # nothing listens there
        "keys": keys,
    }
    argv = [json.dumps(cfg), json.dumps(WATCHED), "ws" if websocket else "rest"]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: list[str] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_sidecar_from_the_environment_without_shared_budgets_imports_none_of_them() -> None:
    assert imported([key(), key(name="other", rate_limit={"replicas": 2})]) == []


def test_a_key_with_a_shared_budget_imports_redis() -> None:
    """The same check sees redis once a key shares (no Redis needs to answer to build the
    client): it can fail."""
    shared = {"shared": "redis://127.0.0.1:1/0"}
    assert "redis" in imported([key(), key(name="shared", rate_limit=shared)])


def test_aiohttp_loads_with_the_first_websocket_session_only() -> None:
    """The key listeners and the admin listener are the lean connection layer; aiohttp is the
    WebSocket relay's client to Gate, imported when a bot opens a session: a sidecar serving
    REST only never loads it (about 9 MB of RSS). The same check sees it once a session opens."""
    assert "aiohttp" not in imported([key()])
    assert "aiohttp" in imported([key()], websocket=True)
