"""`make bench`: gate-sidecar beside nginx and a Go signing proxy, on loopback, in one run.

Starts a fast upstream (nginx answering Gate-shaped JSON, plain HTTP and TLS), then four proxies
to it: nginx as a reverse proxy (the floor of any proxy: keep-alive upstream, three added
headers), the anchor a user would write instead of running the sidecar (bench/goproxy/main.go:
Go's ``httputil.ReverseProxy`` with a Director adding KEY, Timestamp and SIGN, built for the
run), the floor of a Python proxy on the sidecar's stack (bench/floor.py: uvloop, a Protocol,
httptools, the same signature, nothing else) and the sidecar (``full-trading``, env source,
defaults: audit line and metrics on). Each is measured through both upstreams:

- latency at 200 req/s with the open-loop paced client (bench/paced.py: every request
  recorded), added latency = the target's percentile minus the direct percentile;
- throughput with wrk at 64 connections, and the proxy's CPU time per request (utime + stime
  from /proc/<pid>/stat, before and after the wrk run, over the requests wrk counted);
- the sidecar's RSS with 1 key (after 10k and after 100k requests) and with 100 keys;
- the in-process cost of path check + policy + signature and of a rate budget's take
  (bench/micro.py), and of the whole path with in-memory transports (bench/path.py: µs, and
  instructions per request under valgrind's callgrind when it is installed).

Every figure is the median of ``--runs`` runs (interleaved across targets) with min-max. The
proxies (nginx's one worker, the Go proxy, the Python floor, the sidecar) are pinned to core 0
with taskset; the upstream and the load generators to the other cores. Writes
bench/results.json, prints one table and the issue's targets, each met or not.

    python bench/run.py [--runs 3] [--quick]

One script on purpose (not part of the package): the whole run reads top to bottom, from the
processes it starts to the table it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
# The key every proxy of the run signs with (the upstream does not check it).
BENCH_KEY = {"GATE_KEY": "bench-key", "GATE_SECRET": "bench-secret-" + "x" * 52}
PATH = "/api/v4/futures/usdt/accounts"
# What Gate answers on that path, roughly (the size matters, not the figures).
GATE_BODY = json.dumps(
    {
        "user": 10001,
        "currency": "USDT",
        "total": "1000.5",
        "unrealised_pnl": "3.1",
        "position_margin": "12.2",
        "order_margin": "0",
        "available": "988.3",
        "point": "0",
        "in_dual_mode": False,
        "enable_credit": False,
        "history": {"dnw": "1000", "pnl": "0.5", "fee": "-0.1", "refr": "0", "fund": "0"},
    }
)
NGINX_HEADERS = ["KEY: bench-key", "Timestamp: 1700000000", "SIGN: " + "0" * 128]


def cores() -> tuple[str, str]:
    """(the proxies' core, the load's cores): taskset pins them apart when there are two+."""
    n = os.cpu_count() or 1
    return ("0", ",".join(str(c) for c in range(1, n))) if n > 1 else ("0", "0")


PROXY_CORE, LOAD_CORES = cores()


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        """The process and its children (nginx's workers)."""
        pids = [self.popen.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.popen.pid:
                    pids.append(int(stat.parent.name))
        return pids

    def cpu_s(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / ticks

    def rss_mb(self) -> float:
        text = Path(f"/proc/{self.popen.pid}/status").read_text()
        m = re.search(r"VmRSS:\s+(\d+) kB", text)
        return int(m[1]) / 1024 if m else 0.0

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def start(procs: list[Proc], name: str, argv: list[str], **kw: Any) -> Proc:
    """Start ``argv``; ``procs`` is what the run stops at the end, whatever happens."""
    proc = Proc(name, subprocess.Popen(argv, **kw))
    procs.append(proc)
    return proc


# -- nginx ---------------------------------------------------------------------------------------


def nginx_conf(work: Path, name: str, http_body: str) -> Path:
    conf = work / f"{name}.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
master_process on;
user root;
pid {work}/{name}.pid;
error_log {work}/{name}.err warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  client_body_temp_path {work}/{name}-body;
  proxy_temp_path {work}/{name}-proxy;
  fastcgi_temp_path {work}/{name}-fcgi;
  uwsgi_temp_path {work}/{name}-uwsgi;
  scgi_temp_path {work}/{name}-scgi;
{http_body}
}}
"""
    )
    return conf


def tls_files(work: Path) -> tuple[Path, Path]:
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# -- the sidecar -----------------------------------------------------------------------------


def sidecar_config(work: Path, name: str, base_url: str, keys: int = 1, **extra: Any) -> Path:
    import yaml

    cfg: dict[str, Any] = {
        "upstream": {"base_url": base_url, **extra.get("upstream", {})},
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "clock": {"sync": False},
        "server": extra.get("server", {}),
        "logging": {"audit": True, **extra.get("logging", {})},
        "keys": [
            {
                "name": f"k{i}",
                "listen": "127.0.0.1:0",
                "source": {"env": {}},
                "policy": "full-trading",
                "canary": {"enabled": False},
            }
            for i in range(keys)
        ],
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_sidecar(procs: list[Proc], work: Path, name: str, config: Path) -> tuple[Proc, list[str]]:
    """Start a sidecar and wait for it to serve; (the process, its keys' URLs in order)."""
    env = {**os.environ, **BENCH_KEY}
    argv = pinned(
        PROXY_CORE, [str(Path(PY).parent / "gate-sidecar"), "serve", "--config", str(config)]
    )
    log_path = work / f"{name}.log"  # JSON lines, the audit line of every request among them
    proc = start(procs, name, argv, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        urls, ready = [], False
        for line in log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if doc.get("msg") == "key listener open":
                    urls.append(doc["listen"])
                ready = ready or doc.get("msg") == "admin listener open"
        if ready:
            return proc, urls
        if proc.popen.poll() is not None:
            break
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{name} did not start:\n{tail}")


# -- load ---------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    proc: Proc
    headers: list[str] = field(default_factory=list)
    cafile: str | None = None
    counted: bool = False  # its requests count towards the RSS marks (the one-key sidecar)


SENT: list[int] = []  # requests wrk made through the one-key plain sidecar, run by run


def wrk(target: Target, conns: int, seconds: float) -> tuple[float, float]:
    """(requests per second, the target's CPU µs per request) over one wrk run."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", target.url]
    for h in target.headers:
        argv += ["-H", h]
    cpu0 = target.proc.cpu_s()
    out = subprocess.run(pinned(LOAD_CORES, argv), check=True, capture_output=True, text=True)
    cpu = target.proc.cpu_s() - cpu0
    m = re.search(r"(\d+) requests in", out.stdout)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not m or not rps:
        raise RuntimeError(f"cannot read wrk's output: {out.stdout}")
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout):
        raise RuntimeError(f"{target.name}: wrk saw error answers:\n{out.stdout}")
    if target.counted:
        SENT.append(int(m[1]))
    return float(rps[1]), cpu / int(m[1]) * 1e6


def paced(target: Target, rate: int, seconds: float) -> dict[str, float]:
    argv = [PY, str(HERE / "paced.py"), target.url, "--rate", str(rate), "--seconds", str(seconds)]
    for h in target.headers:
        argv += ["--header", h]
    if target.cafile:
        argv += ["--cafile", target.cafile]
    out = subprocess.run(pinned(LOAD_CORES, argv), check=True, capture_output=True, text=True)
    got = json.loads(out.stdout)
    lat = got["latencies_us"]
    if got["errors"] or len(lat) < got["sent"]:
        raise RuntimeError(f"{target.name}: {got['errors']} errors at {rate} req/s")
    return {
        "p50_us": lat[len(lat) // 2],
        "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "n": len(lat),
        "lag_us_p50": got["lag_us_p50"],
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    go_v = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    versions = {}
    for mod in ("aiohttp", "httptools", "uvloop"):
        with contextlib.suppress(Exception):
            versions[mod] = __import__(mod).__version__
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx_v,
        "go": go_v,
        **versions,
        "pinning": f"proxies on core {PROXY_CORE}, upstream and load on cores {LOAD_CORES}",
    }


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# -- the run -------------------------------------------------------------------------------------


def build_go_proxy(work: Path) -> Path:
    """bench/goproxy/main.go, built for this run (Go's standard library only)."""
    out = work / "goproxy"
    env = {**os.environ, "GOPROXY": "off"}  # the standard library only: nothing to download
    subprocess.run(
        ["go", "build", "-o", str(out), str(HERE / "goproxy" / "main.go")],
        check=True,
        capture_output=True,
        env=env,
    )
    return out


def start_signing_proxy(
    procs: list[Proc], name: str, command: list[str], upstream: str, cafile: Path | None = None
) -> tuple[Proc, int]:
    """One of the bench's own signing proxies (the Go anchor, the Python floor) with the bench's
    key, on a free port. Both read ``--listen``, ``--upstream`` and ``--cafile`` (Go's flag
    package takes two dashes as well as one)."""
    port = free_port()
    argv = [*command, "--listen", f"127.0.0.1:{port}", "--upstream", upstream]
    if cafile is not None:
        argv += ["--cafile", str(cafile)]
    env = {**os.environ, **BENCH_KEY}
    proc = start(procs, name, pinned(PROXY_CORE, argv), env=env, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def measure(work: Path, procs: list[Proc], runs: int, quick: bool) -> dict[str, Any]:
    wrk_s = 2.0 if quick else 3.0
    rates = {200: 2.0 if quick else 4.0}
    conns = [64]
    cert, key = tls_files(work)
    go_binary = build_go_proxy(work)
    body = GATE_BODY.replace("'", "\\'")
    up, up_tls, px, px_tls = (free_port() for _ in range(4))
    answer = f"location / {{ default_type application/json; return 200 '{body}'; }}"
    upstream_conf = nginx_conf(
        work,
        "upstream",
        f"""
  server {{ listen 127.0.0.1:{up}; {answer} }}
  server {{ listen 127.0.0.1:{up_tls} ssl; ssl_certificate {cert}; ssl_certificate_key {key};
           {answer} }}
""",
    )
    proxy_headers = "".join(
        f"proxy_set_header {h.split(':')[0]} '{h.split(': ')[1]}'; " for h in NGINX_HEADERS
    )
    proxy_conf = nginx_conf(
        work,
        "proxy",
        f"""
  upstream plain {{ server 127.0.0.1:{up}; keepalive 64; }}
  upstream tls {{ server 127.0.0.1:{up_tls}; keepalive 64; }}
  server {{ listen 127.0.0.1:{px}; location / {{ proxy_pass http://plain; proxy_http_version 1.1;
           proxy_set_header Connection ""; {proxy_headers} }} }}
  server {{ listen 127.0.0.1:{px_tls}; location / {{ proxy_pass https://tls; proxy_http_version 1.1;
           proxy_set_header Connection ""; {proxy_headers}
           proxy_ssl_verify on; proxy_ssl_trusted_certificate {cert}; proxy_ssl_name 127.0.0.1;
           proxy_ssl_session_reuse on; }} }}
""",
    )
    upstream = start(procs, "upstream", pinned(LOAD_CORES, ["nginx", "-c", str(upstream_conf)]))
    wait_port(up)
    wait_port(up_tls)
    nginx = start(procs, "nginx-proxy", pinned(PROXY_CORE, ["nginx", "-c", str(proxy_conf)]))
    wait_port(px)
    go, floor = [str(go_binary)], [PY, str(HERE / "floor.py")]
    go_proxy, go_port = start_signing_proxy(procs, "go-proxy", go, f"http://127.0.0.1:{up}")
    go_tls, go_tls_port = start_signing_proxy(
        procs, "go-proxy-tls", go, f"https://127.0.0.1:{up_tls}", cert
    )
    floor_proxy, floor_port = start_signing_proxy(procs, "floor", floor, f"http://127.0.0.1:{up}")
    floor_tls, floor_tls_port = start_signing_proxy(
        procs, "floor-tls", floor, f"https://127.0.0.1:{up_tls}", cert
    )

    sidecar, (sc,) = start_sidecar(
        procs, work, "sidecar", sidecar_config(work, "sidecar", f"http://127.0.0.1:{up}")
    )
    rss_start = round(sidecar.rss_mb(), 1)  # started, not yet served
    tls_cfg = sidecar_config(
        work, "sidecar-tls", f"https://127.0.0.1:{up_tls}", upstream={"ca_file": str(cert)}
    )
    sidecar_tls, (sc_tls,) = start_sidecar(procs, work, "sidecar-tls", tls_cfg)
    groups = {
        "plain": [
            Target("direct", f"http://127.0.0.1:{up}{PATH}", upstream, NGINX_HEADERS),
            Target("nginx", f"http://127.0.0.1:{px}{PATH}", nginx),
            Target("go", f"http://127.0.0.1:{go_port}{PATH}", go_proxy),
            Target("floor", f"http://127.0.0.1:{floor_port}{PATH}", floor_proxy),
            Target("sidecar", sc + PATH, sidecar, counted=True),
        ],
        "tls": [
            Target(
                "direct", f"https://127.0.0.1:{up_tls}{PATH}", upstream, NGINX_HEADERS, str(cert)
            ),
            Target("nginx", f"http://127.0.0.1:{px_tls}{PATH}", nginx),
            Target("go", f"http://127.0.0.1:{go_tls_port}{PATH}", go_tls),
            Target("floor", f"http://127.0.0.1:{floor_tls_port}{PATH}", floor_tls),
            Target("sidecar", sc_tls + PATH, sidecar_tls),
        ],
    }
    for targets in groups.values():  # warm every path (connections, caches)
        for t in targets:
            wrk(t, 64, 1)

    raw: dict[str, dict[str, dict[str, list[float]]]] = {
        g: {t.name: {} for t in ts} for g, ts in groups.items()
    }
    load = [loadavg()]
    for run in range(runs):
        for group, targets in groups.items():
            for t in targets:
                samples = raw[group][t.name]
                for rate, seconds in rates.items():
                    got = paced(t, rate, seconds)
                    samples.setdefault(f"p50_us@{rate}", []).append(got["p50_us"])
                    samples.setdefault(f"p99_us@{rate}", []).append(got["p99_us"])
                for c in conns:
                    rps, cpu = wrk(t, c, wrk_s)
                    samples.setdefault(f"rps@{c}", []).append(rps)
                    if c == 64:
                        samples.setdefault("cpu_us_per_req", []).append(cpu)
        load.append(loadavg())
        print(f"run {run + 1}/{runs} done (load {load[-1]})", file=sys.stderr)

    results: dict[str, Any] = {}
    for group, by_target in raw.items():
        results[group] = {}
        for name, samples in by_target.items():
            results[group][name] = {k: summary(v) for k, v in samples.items()}
        direct = by_target["direct"]
        for name, samples in by_target.items():
            if name == "direct":
                continue
            row = results[group][name]
            for rate in rates:
                for pct in ("p50", "p99"):
                    col = f"{pct}_us@{rate}"
                    added = [v - d for v, d in zip(samples[col], direct[col], strict=True)]
                    row[f"added_{col}"] = summary(added)
        go_row = results[group]["go"]
        for name in ("nginx", "floor", "sidecar"):
            row = results[group][name]
            row["rps@64_x_go"] = round(row["rps@64"]["median"] / go_row["rps@64"]["median"], 2)
            for pct in ("p50", "p99"):
                col = f"added_{pct}_us@200"
                row[f"{col}_minus_go"] = round(row[col]["median"] - go_row[col]["median"], 1)
    results["load_during"] = {"min": min(load), "max": max(load)}
    results["rss"] = {"1_key_start_mb": rss_start, **measure_rss(work, procs, sidecar, sc, up)}
    micro = subprocess.run([PY, str(HERE / "micro.py")], check=True, capture_output=True, text=True)
    results["in_process_us"] = json.loads(micro.stdout)
    # The whole path in process (bench/path.py): timed, and counted in instructions under
    # valgrind when it is installed (a figure that does not move with the machine's load).
    path = [PY, str(HERE / "path.py")]
    timed = subprocess.run(path, check=True, capture_output=True, text=True)
    counted = subprocess.run([*path, "--instructions"], check=True, capture_output=True, text=True)
    results["whole_path"] = {**json.loads(timed.stdout), **json.loads(counted.stdout)}
    results["targets"] = verdicts(results)
    return results


def measure_rss(work: Path, procs: list[Proc], sidecar: Proc, url: str, up: int) -> dict[str, Any]:
    """The sidecar's RSS with one key (env source) after 10k and 100k requests (counted from
    the start of the run: the runs above sent most of them), then with 100 keys."""
    rss: dict[str, Any] = {}
    sent = sum(SENT)
    t_end = time.monotonic() + 150  # about 10 s on a quiet machine
    marks = {10_000: "1_key_after_10k_mb", 100_000: "1_key_after_100k_mb"}
    base = Target("sidecar", url + PATH, sidecar, counted=True)
    # wrk cannot stop at a count: run it in short bursts and read the count after each.
    for mark in [m for m in marks if sent >= m]:
        rss[marks.pop(mark)] = round(sidecar.rss_mb(), 1)
    while marks and time.monotonic() < t_end:
        wrk(base, 64, 2)
        sent = sum(SENT)
        for mark in [m for m in marks if sent >= m]:
            rss[marks.pop(mark)] = round(sidecar.rss_mb(), 1)
    rss["requests_sent"] = sent
    many_cfg = sidecar_config(work, "sidecar-100", f"http://127.0.0.1:{up}", keys=100)
    many, urls = start_sidecar(procs, work, "sidecar-100", many_cfg)
    assert len(urls) == 100
    for key_url in urls:  # one request through each key, so each listener has served
        with urllib.request.urlopen(key_url + PATH, timeout=5) as resp:  # noqa: S310 (loopback)
            assert resp.status == 200
    rss["100_keys_mb"] = round(many.rss_mb(), 1)
    many.stop()
    return rss


# The targets of the performance issue, judged on this run's medians.
TARGETS = {
    "rps@64 >= 1.5x go": lambda r, g: r[g]["sidecar"]["rps@64_x_go"] >= 1.5,
    "cpu_us_per_req <= 45": lambda r, g: r[g]["sidecar"]["cpu_us_per_req"]["median"] <= 45,
    "added p50 @200 <= go": lambda r, g: r[g]["sidecar"]["added_p50_us@200_minus_go"] <= 0,
    "added p99 @200 <= go": lambda r, g: r[g]["sidecar"]["added_p99_us@200_minus_go"] <= 0,
}


def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    out = {
        f"{group}: {name}": check(results, group)
        for group in ("plain", "tls")
        for name, check in TARGETS.items()
    }
    rss, micro = results["rss"], results["in_process_us"]
    out["rss 1 key after 100k <= 50 MB"] = rss.get("1_key_after_100k_mb", 1e9) <= 50
    out["rss 100 keys <= 60 MB"] = rss["100_keys_mb"] <= 60
    out["path check + policy + signature <= 10 us"] = (
        max(micro[c]["total_us"] for c in ("GET", "POST")) <= 10
    )
    out["budget take <= 3 us"] = micro["budget"]["take_us"] <= 3
    return out


def table(results: dict[str, Any]) -> str:
    lines = [
        "| upstream | target | req/s at 64 connections (x Go) | CPU µs per request "
        "| added p50 @200/s | added p99 @200/s |",
        "|---|---|---|---|---|---|",
    ]

    def ms(cell: dict[str, float]) -> str:
        return f"{cell['median'] / 1000:.3f} ms ({cell['min'] / 1000:.3f}-{cell['max'] / 1000:.3f})"

    def rps(cell: dict[str, float]) -> str:
        return f"{cell['median']:,.0f} ({cell['min']:,.0f}-{cell['max']:,.0f})"

    for group in ("plain", "tls"):
        for name, row in results[group].items():
            if name == "direct":
                continue
            ratio = row.get("rps@64_x_go")
            cpu = row["cpu_us_per_req"]
            lines.append(
                f"| {group} | {name} | {rps(row['rps@64'])}"
                f"{f' ({ratio}x)' if ratio is not None else ''} "
                f"| {cpu['median']:.0f} ({cpu['min']:.0f}-{cpu['max']:.0f}) "
                f"| {ms(row['added_p50_us@200'])} | {ms(row['added_p99_us@200'])} |"
            )
    rss = results["rss"]
    micro = results["in_process_us"]
    lines.append("")
    for group in ("plain", "tls"):
        d = results[group]["direct"]
        lines.append(
            f"{group}: direct to the upstream p50 {ms(d['p50_us@200'])} at 200 req/s, "
            f"{rps(d['rps@64'])} req/s at 64 connections"
        )
    lines.append(
        f"RSS: 1 key {rss['1_key_start_mb']} MB at start, {rss.get('1_key_after_10k_mb')} MB "
        f"after 10k requests, {rss.get('1_key_after_100k_mb')} MB after 100k; "
        f"100 keys {rss['100_keys_mb']} MB."
    )
    lines.append(
        "In process (µs per request, GET / POST order): path check "
        f"{micro['GET']['path_check_us']} / {micro['POST']['path_check_us']}, policy "
        f"{micro['GET']['policy_us']} / {micro['POST']['policy_us']}, signature "
        f"{micro['GET']['sign_us']} / {micro['POST']['sign_us']}; total "
        f"{micro['GET']['total_us']} / {micro['POST']['total_us']}; "
        f"a rate budget's take {micro['budget']['take_us']}."
    )
    path = results.get("whole_path")
    if path is not None:
        counted = path.get("instructions_per_request")
        lines.append(
            f"The whole path in process (bench/path.py): {path['best_us']} µs per request "
            f"(best round; median {path['median_us']})"
            + (f", {counted:,} instructions per request." if counted else ".")
        )
    lines.append("")
    lines.append(
        "Targets: "
        + "; ".join(
            f"{name} {'met' if ok else 'NOT met'}" for name, ok in results["targets"].items()
        )
    )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="shorter runs, for trying things out")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "openssl", "go"):
        if not shutil.which(tool):
            print(f"{tool} is missing: make bench installs it (nginx wrk openssl golang-go)")
            return 2
    procs: list[Proc] = []
    started_at = time.time()
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        try:
            results = measure(Path(tmp), procs, args.runs, args.quick)
        finally:
            for proc in reversed(procs):
                proc.stop()
    results["machine"] = machine()
    results["load_before"] = load_before
    results["runs"] = args.runs
    results["seconds"] = round(time.time() - started_at)
    results["command"] = "make bench"
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nmachine: {results['machine']}")
    during = results["load_during"]
    print(f"load average before {load_before}, during {during}; {results['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
