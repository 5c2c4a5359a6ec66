"""`make bench`: gate-sidecar beside nginx, on loopback, in one run.

Starts a fast upstream (nginx answering Gate-shaped JSON, plain HTTP and TLS), nginx as a reverse
proxy to it (the reference hop: keep-alive upstream, three added headers) and the sidecar (the
lean path), then measures each way to the upstream:

- latency at 200 and 1,000 req/s with the open-loop paced client (bench/paced.py: every request
  recorded), added latency = the target's percentile minus the direct percentile;
- throughput with wrk at 1, 16 and 64 connections, and the proxy's CPU time per request;
- the sidecar's RSS with 1 key (after 10k and after 100k requests) and with 100 keys;
- the in-process cost of path check + policy + signature (bench/micro.py).

Every figure is the median of ``--runs`` runs (interleaved across targets) with min-max. The
proxies (nginx's one worker, the sidecar) are pinned to core 0 with taskset; the upstream and
the load generators to the other cores. Writes bench/results.json and prints one table.

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
    env = {**os.environ, "GATE_KEY": "bench-key", "GATE_SECRET": "bench-secret-" + "x" * 52}
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
        **versions,
        "pinning": f"proxies on core {PROXY_CORE}, upstream and load on cores {LOAD_CORES}",
    }


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# -- the run -------------------------------------------------------------------------------------


def measure(work: Path, procs: list[Proc], runs: int, quick: bool) -> dict[str, Any]:
    wrk_s = 2.0 if quick else 3.0
    rates = {200: 2.0 if quick else 4.0, 1000: 1.5 if quick else 3.0}
    conns = [1, 16, 64]
    cert, key = tls_files(work)
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

    sidecar, (sc,) = start_sidecar(
        procs, work, "sidecar", sidecar_config(work, "sidecar", f"http://127.0.0.1:{up}")
    )
    tls_cfg = sidecar_config(
        work, "sidecar-tls", f"https://127.0.0.1:{up_tls}", upstream={"ca_file": str(cert)}
    )
    sidecar_tls, (sc_tls,) = start_sidecar(procs, work, "sidecar-tls", tls_cfg)
    groups = {
        "plain": [
            Target("direct", f"http://127.0.0.1:{up}{PATH}", upstream, NGINX_HEADERS),
            Target("nginx", f"http://127.0.0.1:{px}{PATH}", nginx),
            Target("sidecar", sc + PATH, sidecar),
        ],
        "tls": [
            Target(
                "direct", f"https://127.0.0.1:{up_tls}{PATH}", upstream, NGINX_HEADERS, str(cert)
            ),
            Target("nginx", f"http://127.0.0.1:{px_tls}{PATH}", nginx),
            Target("sidecar", sc_tls + PATH, sidecar_tls),
        ],
    }
    for targets in groups.values():  # warm every path (connections, caches)
        for t in targets:
            wrk(t, 4, 1)

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
            if name != "nginx":
                for rate in rates:
                    for pct in ("p50", "p99"):
                        col = f"added_{pct}_us@{rate}"
                        ref = max(results[group]["nginx"][col]["median"], 1.0)
                        row[f"{col}_x_nginx"] = round(row[col]["median"] / ref, 2)
                row["rps@64_pct_nginx"] = round(
                    100 * row["rps@64"]["median"] / results[group]["nginx"]["rps@64"]["median"], 1
                )
                # The plain difference to nginx, run by run: unlike the ratio of added latencies
                # it does not depend on what the direct baseline costs the client (with TLS the
                # client's own TLS is in "direct", which shrinks nginx's added latency).
                for pct in ("p50", "p99"):
                    col = f"{pct}_us@200"
                    ref_runs = by_target["nginx"][col]
                    over = [v - n for v, n in zip(samples[col], ref_runs, strict=True)]
                    row[f"over_nginx_{col}"] = summary(over)
    results["load_during"] = {"min": min(load), "max": max(load)}

    # RSS: one key through 10k and 100k requests, then 100 keys.
    rss = {"1_key_start_mb": round(sidecar.rss_mb(), 1)}
    sent = 0
    t_end = time.monotonic() + 120
    marks = {10_000: "1_key_after_10k_mb", 100_000: "1_key_after_100k_mb"}
    base = Target("sidecar", sc + PATH, sidecar)
    # wrk cannot stop at a count: measure how many a 1 s run does, then run to each mark.
    while marks and time.monotonic() < t_end:
        rps, _ = wrk(base, 16, 1)
        sent += int(rps)
        for mark in [m for m in marks if sent >= m]:
            rss[marks.pop(mark)] = round(sidecar.rss_mb(), 1)
    rss["requests_sent"] = sent
    many_cfg = sidecar_config(work, "sidecar-100", f"http://127.0.0.1:{up}", keys=100)
    many, urls = start_sidecar(procs, work, "sidecar-100", many_cfg)
    assert len(urls) == 100
    for url in urls:  # one request through each key, so each listener has served
        with urllib.request.urlopen(url + PATH, timeout=5) as resp:  # noqa: S310 (http://127.0.0.1)
            assert resp.status == 200
    rss["100_keys_mb"] = round(many.rss_mb(), 1)
    results["rss"] = rss
    micro = subprocess.run([PY, str(HERE / "micro.py")], check=True, capture_output=True, text=True)
    results["in_process_us"] = json.loads(micro.stdout)
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        "| upstream | target | p50 @200/s | added p50 (x nginx) | p99 @200/s | added p99 (x nginx) "
        "| added p50 @1000/s (x nginx) | req/s c=1 | c=16 | c=64 (% nginx) | CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(cell: dict[str, float]) -> str:
        return f"{cell['median'] / 1000:.3f} ms ({cell['min'] / 1000:.3f}-{cell['max'] / 1000:.3f})"

    def rps(cell: dict[str, float]) -> str:
        return f"{cell['median']:,.0f} ({cell['min']:,.0f}-{cell['max']:,.0f})"

    for group in ("plain", "tls"):
        for name, row in results[group].items():

            def added(key: str, row: dict[str, Any] = row) -> str:
                if f"added_{key}" not in row:
                    return "-"
                ratio = row.get(f"added_{key}_x_nginx")
                return ms(row[f"added_{key}"]) + (f" ({ratio}x)" if ratio is not None else "")

            pct = row.get("rps@64_pct_nginx")
            lines.append(
                f"| {group} | {name} | {ms(row['p50_us@200'])} | {added('p50_us@200')} "
                f"| {ms(row['p99_us@200'])} | {added('p99_us@200')} | {added('p50_us@1000')} "
                f"| {rps(row['rps@1'])} | {rps(row['rps@16'])} "
                f"| {rps(row['rps@64'])}{f' ({pct}%)' if pct is not None else ''} "
                f"| {row['cpu_us_per_req']['median']:.0f} |"
            )
    rss = results["rss"]
    micro = results["in_process_us"]
    lines.append("")
    for group in ("plain", "tls"):
        over = results[group]["sidecar"].get("over_nginx_p50_us@200")
        if over is not None:
            lines.append(f"{group}: the sidecar's p50 at 200 req/s minus nginx's: {ms(over)}")
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
        f"{micro['GET']['total_us']} / {micro['POST']['total_us']}."
    )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="shorter runs, for trying things out")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "openssl"):
        if not shutil.which(tool):
            print(f"{tool} is missing: make bench installs it (apt-get install nginx wrk openssl)")
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
