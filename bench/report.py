#!/usr/bin/env python3
"""Generates BENCHMARKS.md: runs the benches, then writes one table per bench (each figure beside
its peer measured in the same run, and their ratio), the machine it ran on, and PNG plots under
docs/bench/ that BENCHMARKS.md links.

    python bench/report.py                          # run every bench (long: builds, then measures)
    python bench/report.py --benches load,integrity # run only these; the others are listed as not run
    python bench/report.py --from build/bench       # run nothing: reuse the JSON the benches wrote

Each bench script writes its figures to build/bench/NAME.json (and its output goes to
build/bench/NAME.log). A bench that fails, times out or is not selected is named in BENCHMARKS.md
with the reason; no figure is ever carried over from elsewhere. Matplotlib comes from
bench/requirements.txt, installed into the project's venv by this script.
"""
import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
PLOTS = "docs/bench"

# name -> (command, JSON files it writes, what it measures)
BENCHES = {
    "load": (["bash", "bench/load.sh"], ["load.json"],
             "oha against ssm-crypto-local and ssm-app: throughput, latency, errors, memory"),
    "crypto": (["bash", "bench/crypto.sh"], ["crypto.json", "cold-start.json"],
               "envelope vs ring, Lambda handler vs bare seal, cold start vs Python/boto3"),
    "app-tokens": (["bash", "bench/app-tokens.sh"], ["app-tokens.json"],
                   "ssm-app POST /v1/tokens on cache hits vs GET /healthz"),
    "action-deploy": (["bash", "bench/action-deploy.sh"], ["action-deploy.json"],
                      "no-change deploy: ssm-action vs aws cloudformation deploy"),
    "integrity": (["bash", "bench/integrity-bench.sh"], ["integrity.json"],
                  "CloudTrail classification vs parsing into serde_json::Value"),
}


def ensure_venv(argv):
    """Installs bench/requirements.txt into the venv and re-runs this script under it."""
    if not os.path.exists(VENV_PYTHON):
        subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, check=True)
    subprocess.run([VENV_PYTHON, "-m", "pip", "install", "-q", "-r", "bench/requirements.txt"],
                   cwd=ROOT, check=True)
    if os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, ".venv")):
        os.execv(VENV_PYTHON, [VENV_PYTHON, os.path.abspath(__file__), *argv])


def run_bench(name, out_dir, timeout_s):
    """Runs one bench, its output shown and kept in OUT_DIR/NAME.log; returns its status line."""
    command, files, _ = BENCHES[name]
    for f in files:  # a failed run must not leave an older run's figures behind
        if os.path.exists(os.path.join(out_dir, f)):
            os.remove(os.path.join(out_dir, f))
    log_path = os.path.join(out_dir, f"{name}.log")
    print(f"\n==> report: running {' '.join(command)} (log: {os.path.relpath(log_path, ROOT)})", flush=True)
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = started + timeout_s
        timed_out = False
        for line in iter(proc.stdout.readline, b""):
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            log.write(line)
            if time.monotonic() > deadline:
                timed_out = True
                break
        if timed_out:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait()
    minutes = (time.monotonic() - started) / 60
    if timed_out:
        return f"stopped after the {timeout_s / 60:.0f}-minute limit; no figures"
    if code != 0:
        present = [f for f in files if os.path.exists(os.path.join(out_dir, f))]
        return (f"exited {code} after {minutes:.1f} min (see build/bench/{name}.log)"
                + ("; its figures are shown with the failure" if present else "; no figures"))
    return f"ran, {minutes:.1f} min"


def load_json(out_dir, name):
    path = os.path.join(out_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def sh(*cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    dirty = " (with uncommitted changes)" if sh("git", "status", "--porcelain", "--untracked-files=no") else ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": sh("git", "rev-parse", "--short=12", "HEAD") + dirty,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "rustc": sh("rustc", "--version"),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }


# --- formatting ---------------------------------------------------------------------------------

def num(x, digits=0):
    return f"{x:,.{digits}f}"


def ms(x):
    return f"{x:.3f} ms" if x < 10 else f"{x:.1f} ms"


def ratio(a, b, digits=2):
    return f"{a / b:.{digits}f}" if b else "n/a"


def size(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB" if n >= 1 << 10 else f"{n} B"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --- plots --------------------------------------------------------------------------------------

def plot_latency(load, path):
    """Latency by percentile (HdrHistogram style: the x axis in 'nines') for each server's route
    and its peer."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter

    servers = load["servers"]
    fig, axes = plt.subplots(1, len(servers), figsize=(6.2 * len(servers), 4.2), squeeze=False)
    for ax, (name, s) in zip(axes[0], servers.items()):
        for row, style in ((s["headline"], "-o"), (s["peer"], "--s")):
            pct = sorted((float(p), v) for p, v in row["run"]["percentiles_ms"].items())
            xs = [1 / (1 - p / 100) for p, _ in pct]
            ax.plot(xs, [v for _, v in pct], style, markersize=4,
                    label=f"{row['name']} ({num(row['run']['rps'])} req/s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [p for p in (10, 50, 90, 99, 99.9, 99.99) if p <= pct[-1][0]]
        ax.xaxis.set_major_locator(FixedLocator([1 / (1 - p / 100) for p in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{100 * (1 - 1 / x):.4g}"))
        ax.xaxis.set_minor_locator(FixedLocator([]))
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(f"{s['binary']}, {load['config']['connections']} connections, {load['config']['seconds']} s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, path), dpi=110)
    plt.close(fig)


def plot_sweep(crypto, config, path):
    import matplotlib.pyplot as plt

    sweep = crypto["sweep"]
    labels = [size(x["plaintext_bytes"]) for x in sweep["sizes"]]
    rps = [x["run"]["rps"] for x in sweep["sizes"]]
    mibs = [x["run"]["rps"] * x["plaintext_bytes"] / 2**20 for x in sweep["sizes"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    bars = a.bar(labels, rps, color="tab:blue", label="POST /v1/encrypt")
    a.bar_label(bars, labels=[num(v) for v in rps], fontsize=8)
    a.axhline(sweep["peer"]["run"]["rps"], color="tab:gray", linestyle="--",
              label=f"peer: GET /version ({num(sweep['peer']['run']['rps'])} req/s)")
    a.set_ylabel("requests / s")
    a.set_xlabel("plaintext per request")
    a.set_title("requests per second")
    a.legend(fontsize=8, loc="center right")
    bars = b.bar(labels, mibs, color="tab:green")
    b.bar_label(bars, labels=[num(v, 1) for v in mibs], fontsize=8)
    b.set_ylabel("plaintext MiB / s")
    b.set_xlabel("plaintext per request")
    b.set_title("plaintext encrypted per second")
    fig.suptitle(f"ssm-crypto-local encrypt throughput by payload size "
                 f"({config['connections']} connections, {config['sweep_seconds']} s each)")
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, path), dpi=110)
    plt.close(fig)


def plot_rss(load, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, s in load["servers"].items():
        series = s["memory"]["series"]
        if series:
            ax.plot([t for t, _ in series], [k / 1024 for _, k in series], label=s["binary"])
    ax.set_xlabel("seconds since the server started (warm-up, peer, headline route"
                  + (", payload sweep" if "crypto" in load["servers"] else "") + ")")
    ax.set_ylabel("VmRSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("resident memory under load, sampled every second")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, path), dpi=110)
    plt.close(fig)


def plot_envelope(crypto, path):
    import matplotlib.pyplot as plt

    rows = crypto["envelope"]
    sizes = [r["bytes"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for key, label, style in (("seal_ns", "envelope seal", "-o"), ("ring_seal_ns", "ring AES-256-GCM seal", "--o"),
                              ("open_ns", "envelope open", "-s"), ("ring_open_ns", "ring AES-256-GCM open", "--s")):
        ax.plot(sizes, [r["bytes"] / r[key] * 1e9 / 2**20 for r in rows], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [size(s) for s in sizes])
    ax.set_xlabel("plaintext size")
    ax.set_ylabel("MiB / s (one core)")
    ax.set_title("envelope vs ring, in-process")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, path), dpi=110)
    plt.close(fig)


# --- sections -----------------------------------------------------------------------------------

def section_load(load):
    cfg = load["config"]
    out = [f"## Load and soak (`bench/load.sh`)\n",
           f"oha {cfg['oha']}, {cfg['connections']} connections, keep-alive, closed loop, plain HTTP on "
           f"127.0.0.1; {cfg['seconds']} s per route after a {cfg['warmup_seconds']} s warm-up. The peer is a "
           f"trivial route of the same server, measured right before in the same run, so the ratio isolates "
           f"the route's own work from the HTTP stack. Load generator and server share the machine's cores. "
           + (f"Servers log as in production: `RUST_LOG={cfg['server_rust_log']}`, JSON lines (every request's "
            f"access or event line written), to a file.\n" if cfg['server_rust_log'] == "info" else
            f"Servers log at `RUST_LOG={cfg['server_rust_log']}` (no per-request log lines, unlike production).\n")]
    if load["failures"]:
        out.append("**The run failed:** " + "; ".join(load["failures"]) + "\n")
    rows = []
    for s in load["servers"].values():
        h, p = s["headline"]["run"], s["peer"]["run"]
        what = f"`{s['binary']}` {s['headline']['name']}"
        peer = s["peer"]["name"]
        rows += [
            [what + ": throughput", f"{num(h['rps'])} req/s", f"{peer}: {num(p['rps'])} req/s", ratio(h["rps"], p["rps"])],
            [what + ": p50", ms(h["p50_ms"]), f"{peer}: {ms(p['p50_ms'])}", ratio(h["p50_ms"], p["p50_ms"])],
            [what + ": p99", ms(h["p99_ms"]), f"{peer}: {ms(p['p99_ms'])}", ratio(h["p99_ms"], p["p99_ms"])],
            [what + ": p99.9 / max", f"{ms(h['p99_9_ms'])} / {ms(h['max_ms'])}",
             f"{peer}: {ms(p['p99_9_ms'])} / {ms(p['max_ms'])}", ratio(h["p99_9_ms"], p["p99_9_ms"])],
            [what + ": errors + non-2xx", f"{h['errors'] + h['non_2xx']} of {num(h['requests'])}",
             f"{peer}: {p['errors'] + p['non_2xx']} of {num(p['requests'])}", "must be 0"],
        ]
    out.append(table(["what", "ours", "same-run peer", "ratio (ours / peer)"], rows))
    out.append("\nResident memory of each server (`/proc/PID/status`), KiB. The check: RSS after the "
               f"headline runs vs after the warm-up may grow by at most {cfg['rss_growth_limit']['percent']:g} % "
               f"or {cfg['rss_growth_limit']['kib']} KiB, whichever is larger.\n")
    rows = []
    for s in load["servers"].values():
        m = s["memory"]
        after_sweep = f"; after the payload sweep {num(m['after-sweep']['rss_kib'])}" if "after-sweep" in m else ""
        rows.append([f"`{s['binary']}`", num(m["start"]["rss_kib"]), num(m["warm"]["rss_kib"]),
                     num(m["final"]["rss_kib"]) + after_sweep,
                     f"{m['growth_kib']:+,} ({m['growth_pct']:+.1f} %)",
                     ratio(m["final"]["rss_kib"], m["warm"]["rss_kib"], 3),
                     num(m["final"]["hwm_kib"]), "grew" if m["grew"] else "no growth"])
    out.append(table(["server", "at start", "after warm-up (peer)", "final (ours)", "growth",
                      "ratio", "high-water", "verdict"], rows))
    out.append("\n![latency by percentile](docs/bench/load-latency.png)\n")
    crypto = load["servers"].get("crypto")
    if crypto:
        peer = crypto["sweep"]["peer"]["run"]
        out.append(f"Encrypt throughput by payload size, {cfg['sweep_seconds']} s each; the peer is "
                   f"`GET /version` measured in the same sweep ({num(peer['rps'])} req/s, p99 {ms(peer['p99_ms'])}).\n")
        rows = [[size(x["plaintext_bytes"]), num(x["run"]["rps"]),
                 num(x["run"]["rps"] * x["plaintext_bytes"] / 2**20, 1),
                 ms(x["run"]["p50_ms"]), ms(x["run"]["p99_ms"]),
                 x["run"]["errors"] + x["run"]["non_2xx"], ratio(x["run"]["rps"], peer["rps"], 3)]
                for x in crypto["sweep"]["sizes"]]
        out.append(table(["plaintext", "req/s", "plaintext MiB/s", "p50", "p99", "errors", "req/s ratio to /version"], rows))
        out.append("\n![encrypt throughput by payload size](docs/bench/encrypt-throughput-by-size.png)\n")
    out.append("![resident memory under load](docs/bench/load-rss.png)\n")
    loads = [f"{s['binary']} {s['headline']['name']}: {s['headline']['run']['loadavg_before_after'][0]:.2f} → "
             f"{s['headline']['run']['loadavg_before_after'][1]:.2f}" for s in load["servers"].values()]
    out.append("1-minute load average before → after each headline run (the cores are shared): "
               + "; ".join(loads) + ".\n")
    return "\n".join(out)


def section_crypto(crypto, cold):
    out = ["## Crypto API in process and cold start (`bench/crypto.sh`)\n"]
    if crypto and "envelope" in crypto:
        rows = [[size(r["bytes"]), num(r["seal_ns"]), num(r["ring_seal_ns"]), ratio(r["seal_ns"], r["ring_seal_ns"]),
                 num(r["open_ns"]), num(r["ring_open_ns"]), ratio(r["open_ns"], r["ring_open_ns"])]
                for r in crypto["envelope"]]
        out.append("Envelope seal / open (median ns per operation) vs `ring`'s AES-256-GCM doing the same "
                   "work (random nonce, base64), one core:\n")
        out.append(table(["size", "seal", "ring seal (peer)", "ratio", "open", "ring open (peer)", "ratio"], rows))
        out.append("\n![envelope vs ring](docs/bench/envelope-vs-ring.png)\n")
    if crypto and "handler_1kib" in crypto:
        h = crypto["handler_1kib"]
        out.append(table(["what", "ours", "same-run peer", "ratio"], [
            ["Lambda handler, 1 KiB encrypt, event bytes in → response bytes out", f"{h['handler_ns'] / 1e3:.1f} µs",
             f"bare envelope seal {h['bare_seal_ns'] / 1e3:.1f} µs", ratio(h["handler_ns"], h["bare_seal_ns"])],
            ["of which the service (body in → JSON out)", f"{h['service_ns'] / 1e3:.1f} µs",
             f"bare envelope seal {h['bare_seal_ns'] / 1e3:.1f} µs", ratio(h["service_ns"], h["bare_seal_ns"])],
            ["of which API Gateway event parsing", f"{h['event_parse_ns'] / 1e3:.1f} µs", "", ""],
        ]))
        out.append("")
    if cold:
        med = {n: sorted(v)[len(v) // 2] for n, v in cold["runs_ms"].items()}
        ours = med["ssm-crypto (Rust)"]
        rows = [["crypto Lambda cold start to first response (keyring from moto)",
                 f"{ours:.1f} ms (median of {cold['spawns']})",
                 f"Python + boto3, same job: {med['python+boto3 peer']:.1f} ms", ratio(ours, med["python+boto3 peer"], 3)]]
        if "bare Rust function" in med:
            rows.append(["", "", f"bare `lambda_runtime` function: {med['bare Rust function']:.1f} ms",
                         ratio(ours, med["bare Rust function"])])
        out.append(table(["what", "ours", "same-run peer", "ratio"], rows))
        out.append(f"\nbootstrap {cold['bootstrap_bytes']:,} bytes"
                   + (f", bootstrap.zip {cold['zip_bytes']:,} bytes" if cold.get("zip_bytes") else "") + ".\n")
    return "\n".join(out)


def section_tokens(t):
    rows = [
        ["`POST /v1/tokens`, cached token, identity remembered", f"{num(t['tokens_cached']['rps'])} req/s, "
         f"p50 {ms(t['tokens_cached']['p50_ms'])}, p99 {ms(t['tokens_cached']['p99_ms'])}",
         f"`GET /healthz` {num(t['healthz']['rps'])} req/s, p99 {ms(t['healthz']['p99_ms'])}",
         ratio(t["tokens_cached"]["rps"], t["healthz"]["rps"])],
        ["`POST /v1/tokens`, cached token, fresh identity (STS round trip to moto)",
         f"{num(t['tokens_fresh_identity']['rps'])} req/s, p99 {ms(t['tokens_fresh_identity']['p99_ms'])}",
         f"identity remembered: {num(t['tokens_cached']['rps'])} req/s",
         ratio(t["tokens_fresh_identity"]["rps"], t["tokens_cached"]["rps"], 3)],
        ["ssm-app resident memory", f"{t['rss_kib']['after'] / 1024:.1f} MiB after load",
         f"at rest: {t['rss_kib']['rest'] / 1024:.1f} MiB", ratio(t["rss_kib"]["after"], t["rss_kib"]["rest"])],
    ]
    return "\n".join([f"## GitHub App token broker (`bench/app-tokens.sh`)\n",
                      f"{t['concurrency']} concurrent clients, {t['seconds']} s per scenario; "
                      f"GitHub access-token mints during the run: {t['github_mints']}. "
                      + (f"ssm-app logged as in production (`RUST_LOG={t['log']['rust_log']}`, "
                         f"{t['log']['format']} lines, to a file): {t['log']['audit_lines']:,} audit lines, "
                         "one per token issued.\n" if t.get("log") else
                         "ssm-app logged at `RUST_LOG=warn` (no audit lines): an older record.\n"),
                      table(["what", "ours", "same-run peer", "ratio (throughput / memory)"], rows), ""])


def section_action(a):
    rows = [
        ["no-change deploy against moto, median wall", f"ssm-action {num(a['ssm_action']['median_ms'])} ms",
         f"`aws cloudformation deploy` {num(a['aws_cli']['median_ms'])} ms",
         ratio(a["ssm_action"]["median_ms"], a["aws_cli"]["median_ms"], 3)],
        ["peak RSS of the command", f"{a['ssm_action']['peak_kib'] / 1024:.1f} MiB",
         f"{a['aws_cli']['peak_kib'] / 1024:.1f} MiB", ratio(a["ssm_action"]["peak_kib"], a["aws_cli"]["peak_kib"], 3)],
    ]
    return "\n".join(["## Deploy action (`bench/action-deploy.sh`)\n",
                      f"{a['runs']} runs each; ssm-action binary {a['binary_bytes']:,} bytes.\n",
                      table(["what", "ours", "same-run peer", "ratio"], rows), ""])


def section_integrity(i):
    c, b = i["classify"], i["batch10"]
    rows = [
        ["CloudTrail event classification", f"{num(c['events'] / c['ours_ns'] * 1e9)} events/s",
         f"parsing into `serde_json::Value` alone: {num(c['events'] / c['peer_ns'] * 1e9)} events/s",
         ratio(c["ours_ns"], c["peer_ns"])],
        ["integrity handler, 10-event SQS batch, no network (its one DescribeStackEvents answered by aws-smithy-mocks through the SDK's request path)", f"{b['ours_ns'] / 1e3:.1f} µs",
         f"parsing the batch into Values alone: {b['peer_ns'] / 1e3:.1f} µs", ratio(b["ours_ns"], b["peer_ns"])],
    ]
    return "\n".join(["## Integrity Lambda (`bench/integrity-bench.sh`)\n",
                      table(["what", "ours", "same-run peer", "ratio (time)"], rows), ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benches", default=",".join(BENCHES),
                    help=f"comma-separated, of: {', '.join(BENCHES)} (default: all)")
    ap.add_argument("--from", dest="from_dir", help="run nothing; reuse the JSON in this directory")
    ap.add_argument("--timeout-minutes", type=float, default=40, help="per bench (default 40)")
    args = ap.parse_args()
    ensure_venv(sys.argv[1:])
    started = time.monotonic()
    os.chdir(ROOT)
    selected = [b.strip() for b in args.benches.split(",") if b.strip()]
    unknown = set(selected) - set(BENCHES)
    if unknown:
        sys.exit(f"unknown bench(es): {', '.join(sorted(unknown))}; choose from {', '.join(BENCHES)}")
    info = machine()
    out_dir = os.path.abspath(args.from_dir or "build/bench")
    os.makedirs(out_dir, exist_ok=True)

    status = {}
    for name in BENCHES:
        if name not in selected:
            status[name] = "not run for this report (not selected with --benches)"
        elif args.from_dir:
            files = [os.path.join(out_dir, f) for f in BENCHES[name][1]]
            present = [f for f in files if os.path.exists(f)]
            if present:
                when = datetime.datetime.fromtimestamp(max(os.path.getmtime(f) for f in present), datetime.timezone.utc)
                status[name] = f"reused from {os.path.relpath(out_dir, ROOT)}, written {when:%Y-%m-%d %H:%M UTC}"
            else:
                status[name] = f"no figures in {os.path.relpath(out_dir, ROOT)}"
        else:
            status[name] = run_bench(name, out_dir, args.timeout_minutes * 60)

    data = {f: load_json(out_dir, f) if n in selected else None
            for n, (_, files, _) in BENCHES.items() for f in files}
    os.makedirs(PLOTS, exist_ok=True)
    sections = []
    load = data["load.json"]
    if load and load["servers"]:
        plot_latency(load, f"{PLOTS}/load-latency.png")
        plot_rss(load, f"{PLOTS}/load-rss.png")
        if "crypto" in load["servers"]:
            plot_sweep(load["servers"]["crypto"], load["config"], f"{PLOTS}/encrypt-throughput-by-size.png")
        sections.append(section_load(load))
    if data["crypto.json"] or data["cold-start.json"]:
        if data["crypto.json"] and "envelope" in data["crypto.json"]:
            plot_envelope(data["crypto.json"], f"{PLOTS}/envelope-vs-ring.png")
        sections.append(section_crypto(data["crypto.json"], data["cold-start.json"]))
    if data["app-tokens.json"]:
        sections.append(section_tokens(data["app-tokens.json"]))
    if data["action-deploy.json"]:
        sections.append(section_action(data["action-deploy.json"]))
    if data["integrity.json"]:
        sections.append(section_integrity(data["integrity.json"]))

    elapsed = (time.monotonic() - started) / 60
    head = [
        "# Benchmarks\n",
        "Generated by `python bench/report.py` (do not edit by hand). Every figure sits beside a peer "
        "measured in the same run on the same machine, and the ratio is ours / peer: below 1 is faster "
        "for times and latencies, above 1 is more for throughputs.\n",
        table(["machine", ""], [
            ["date", info["date"]], ["commit", f"`{info['commit']}`"], ["nproc", info["nproc"]],
            ["CPU", info["cpu"]], ["kernel", info["kernel"]], ["rustc", info["rustc"]],
            ["load average at start (1/5/15 min)", " / ".join(info["loadavg"])],
            ["report.py wall time", f"{elapsed:.1f} min"],
        ]),
        "\n" + table(["bench", "measures", "in this report"],
                     [[f"`{' '.join(BENCHES[n][0][1:])}`", BENCHES[n][2], status[n]] for n in BENCHES]),
        "\n`bench/fuzz.sh` (coverage-guided fuzzing) is a correctness run with no same-run peer, so it has no "
        "figures here.\n",
    ]
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(head + sections).rstrip() + "\n")
    print(f"\nwrote BENCHMARKS.md and {PLOTS}/*.png in {elapsed:.1f} min")
    for name in BENCHES:
        print(f"  {name}: {status[name]}")


if __name__ == "__main__":
    main()
