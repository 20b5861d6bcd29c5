#!/usr/bin/env bash
# Load and soak of the two long-running servers with oha (closed loop, keep-alive, plain HTTP on
# loopback), each figure against a peer route of the same server measured in the same run:
#  - ssm-crypto-local: POST /v1/encrypt of 1 KiB vs GET /version (the same HTTP stack, router and
#    access-log path: the ratio isolates the JSON, base64 and AES-GCM cost), and the named key's
#    POST /v1/keys/payments/encrypt of 1 KiB vs POST /v1/encrypt (the cost of the key lookup and
#    the format 2 envelope), in LOAD_NAMED_ROUNDS interleaved pairs of LOAD_NAMED_SECS each, the
#    order alternating (one pair swung by ±15 % with the order on 2 shared cores); the ratio is the
#    named route's summed requests over /v1/encrypt's, and the run fails below LOAD_NAMED_MIN_RATIO;
#  - ssm-app: POST /webhooks with a signed workflow_run delivery (read the body, HMAC-SHA256 check,
#    parse into our event enum, act on it) vs GET /healthz. No X-GitHub-Delivery header, so every
#    request is parsed and applied rather than answered as a duplicate; nothing calls GitHub;
#  - a throughput-by-payload sweep of /v1/encrypt (LOAD_SWEEP_SIZES) with GET /version as its peer.
# Each server's resident memory (VmRSS, and the high-water mark VmHWM) is read from /proc at start,
# after a warm-up and after the headline runs, and sampled every second throughout.
#
# Fails if any request got a transport error or a non-2xx status, or if a server's RSS grew between
# the post-warm-up and the final sample by more than LOAD_RSS_GROWTH_PCT % *and* more than
# LOAD_RSS_GROWTH_KIB (both must be exceeded: small heaps legitimately move by a few pages).
#
#   bash bench/load.sh     knobs: LOAD_SECS (60), LOAD_CONNECTIONS (64), LOAD_WARMUP_SECS (5),
#                          LOAD_SWEEP_SECS (10), LOAD_SWEEP_SIZES ("64 1024 16384 262144"),
#                          LOAD_SERVERS ("crypto app"), LOAD_RUST_LOG (info),
#                          LOAD_NAMED_MIN_RATIO (0.95), LOAD_NAMED_ROUNDS (4), LOAD_NAMED_SECS (10)
# Writes build/bench/load.json (read by bench/report.py) and oha's raw JSON under build/bench/load/.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$SSM_ROOT"
trap stop_all EXIT

OHA_VERSION=1.16.0
secs="${LOAD_SECS:-60}"
conns="${LOAD_CONNECTIONS:-64}"
warmup="${LOAD_WARMUP_SECS:-5}"
sweep_secs="${LOAD_SWEEP_SECS:-10}"
read -r -a sweep_sizes <<<"${LOAD_SWEEP_SIZES:-64 1024 16384 262144}"
read -r -a servers <<<"${LOAD_SERVERS:-crypto app}"
growth_pct="${LOAD_RSS_GROWTH_PCT:-10}"
growth_kib="${LOAD_RSS_GROWTH_KIB:-4096}"
named_min_ratio="${LOAD_NAMED_MIN_RATIO:-0.95}"
named_rounds="${LOAD_NAMED_ROUNDS:-4}"
named_secs="${LOAD_NAMED_SECS:-10}"
# Per-request logs off: at tens of thousands of requests a second they would measure the log sink.
# Production's logging by default: `info` (every request's access or event line, every audit line)
# as JSON lines, as on Lambda; LOAD_RUST_LOG=warn measures with those lines off.
server_log="${LOAD_RUST_LOG:-info}"

# oha, pinned, cached beside the other tools. TLS through rustls only (oha does not build without a
# TLS feature; no native-tls/OpenSSL, no HTTP/3): only http://127.0.0.1 is loaded.
tools="$HOME/.cache/serverless-ssm/tools"
export PATH="$tools/bin:$PATH"
if [[ "$(oha --version 2>/dev/null)" != "oha $OHA_VERSION" ]]; then
  log "installing oha $OHA_VERSION (rustls)"
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/oha-install" nice -n 10 \
    cargo install --locked --quiet oha --version "$OHA_VERSION" --no-default-features --features rustls --root "$tools"
fi

# Only the servers this run loads.
build=()
for server in "${servers[@]}"; do
  case "$server" in
    crypto) build+=(-p ssm-crypto --bin ssm-crypto-local) ;;
    app) build+=(-p ssm-app --bin ssm-app) ;;
    *) die "unknown server $server (LOAD_SERVERS: crypto, app)" ;;
  esac
done
log "building ${servers[*]} (release)"
nice -n 10 cargo build --release --locked "${build[@]}"
bin="$CARGO_TARGET_DIR/release"

out="$SSM_ROOT/build/bench/load"
rm -rf "$out"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'stop_all; rm -rf "$work"' EXIT

# rss_sample PID LABEL SERVER: appends "SERVER LABEL VmRSS VmHWM" (KiB) to $out/rss.txt.
rss_sample() {
  awk -v s="$3" -v l="$2" '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print s, l, r, h }' \
    "/proc/$1/status" >>"$out/rss.txt"
}

# rss_series PID SERVER: VmRSS every second until PID exits, to $out/SERVER.rss.tsv.
rss_series() {
  local pid="$1" file="$out/$2.rss.tsv" t0=$SECONDS
  while [[ -r "/proc/$pid/status" ]]; do
    awk -v t=$((SECONDS - t0)) '/^VmRSS:/ { print t "\t" $2 }' "/proc/$pid/status" >>"$file" 2>/dev/null || true
    sleep 1
  done
}

# start_server NAME READY_URL CMD...: starts CMD in the background; sets $server_pid.
start_server() {
  local name="$1" url="$2"
  shift 2
  RUST_LOG="$server_log" AWS_LAMBDA_LOG_FORMAT=JSON SSM_LOG_FORMAT=json "$@" >"$out/$name.log" 2>&1 &
  server_pid=$!
  SSM_PIDS+=("$server_pid")
  wait_http "$url" 30 || die "$name did not start (see $out/$name.log)"
  rss_series "$server_pid" "$name" &
  SSM_PIDS+=("$!")
  log "$name listening (pid $server_pid)"
}

# load TAG SECONDS URL [oha args...]: one oha run, raw JSON to $out/TAG.json; the load average
# before and after goes beside it (the cores are shared, so a reader can judge the noise).
load() {
  local tag="$1" duration="$2" url="$3"
  shift 3
  cut -d' ' -f1 /proc/loadavg >"$out/$tag.loadavg"
  oha --no-tui --output-format json -o "$out/$tag.json" -c "$conns" -z "${duration}s" -w "$@" "$url"
  cut -d' ' -f1 /proc/loadavg >>"$out/$tag.loadavg"
  python3 - "$out/$tag.json" "$tag" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
p = r["latencyPercentiles"]
codes = r["statusCodeDistribution"]
errors = sum(r["errorDistribution"].values())
print(f"{sys.argv[2]:<28} {r['summary']['requestsPerSec']:>10,.0f} req/s  p50 {p['p50'] * 1e3:7.3f} ms"
      f"  p99 {p['p99'] * 1e3:7.3f} ms  statuses {codes}  errors {errors}")
PY
}

plain() { head -c "$1" /dev/zero | tr '\0' 'x'; }
encrypt_body() { # SIZE FILE: {"plaintext": base64 of SIZE bytes}
  printf '{"plaintext":"%s"}' "$(plain "$1" | base64 -w0)" >"$2"
}

# --- ssm-crypto-local -------------------------------------------------------------------------
run_crypto() {
  local port base
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  # Development keyrings in a scratch directory (never one from the environment): `default` and
  # the named key `payments`.
  start_server crypto "$base/version" env -u SSM_KEYRING_FILE -u SSM_KEY_SECRET_ID \
    -u SSM_KEYRINGS -u SSM_KEYRING_FILES -u SSM_DEV_KEYS \
    "$bin/ssm-crypto-local" --listen "127.0.0.1:$port" --dev-keyring "$work/keyring.json" \
    --dev-key payments
  local pid="$server_pid"
  encrypt_body 1024 "$work/encrypt-1024.json"
  local post=(-m POST -T application/json -D "$work/encrypt-1024.json")
  rss_sample "$pid" start crypto
  load crypto-warmup "$warmup" "$base/v1/encrypt" "${post[@]}"
  rss_sample "$pid" warm crypto
  load crypto-peer-version "$secs" "$base/version"
  load crypto-encrypt-1024 "$secs" "$base/v1/encrypt" "${post[@]}"
  load crypto-named-encrypt-1024 "$secs" "$base/v1/keys/payments/encrypt" "${post[@]}"
  log "named key vs /v1/encrypt: $named_rounds interleaved pairs of ${named_secs}s, order alternating"
  local round
  for ((round = 0; round < named_rounds; round++)); do
    if ((round % 2 == 0)); then
      load "pair-$round-encrypt" "$named_secs" "$base/v1/encrypt" "${post[@]}"
      load "pair-$round-named" "$named_secs" "$base/v1/keys/payments/encrypt" "${post[@]}"
    else
      load "pair-$round-named" "$named_secs" "$base/v1/keys/payments/encrypt" "${post[@]}"
      load "pair-$round-encrypt" "$named_secs" "$base/v1/encrypt" "${post[@]}"
    fi
  done
  rss_sample "$pid" final crypto

  log "encrypt throughput by payload size, ${sweep_secs}s each"
  load sweep-peer-version "$sweep_secs" "$base/version"
  local size
  for size in "${sweep_sizes[@]}"; do
    encrypt_body "$size" "$work/encrypt-$size.json"
    load "sweep-encrypt-$size" "$sweep_secs" "$base/v1/encrypt" -m POST -T application/json \
      -D "$work/encrypt-$size.json"
  done
  rss_sample "$pid" after-sweep crypto
}

# --- ssm-app ----------------------------------------------------------------------------------
run_app() {
  local port base secret=load-test-secret metrics_port
  port="$(free_port)"
  metrics_port="$(free_port)"
  base="http://127.0.0.1:$port"
  local body="testkit/fixtures/webhooks/workflow_run.json"
  local signature
  signature="sha256=$(openssl dgst -sha256 -hmac "$secret" -r "$body" | cut -d' ' -f1)"
  printf '{"rules": []}' >"$work/policy.json"
  # GITHUB_API_URL and SSM_STS_ENDPOINT point at a closed port: the webhook path must not need them.
  start_server app "$base/healthz" env -u GITHUB_APP_PRIVATE_KEY_SECRET_ID -u GITHUB_WEBHOOK_SECRET_ID \
    -u GITHUB_APP_PRIVATE_KEY -u SSM_BROKER_POLICY -u SSM_STS_ALLOWED_REGIONS \
    SSM_APP_LISTEN="127.0.0.1:$port" SSM_METRICS_LISTEN="127.0.0.1:$metrics_port" GITHUB_APP_ID=1 \
    GITHUB_APP_PRIVATE_KEY_FILE=testkit/fixtures/test-only-github-app-key.pem \
    GITHUB_WEBHOOK_SECRETS="$secret" GITHUB_API_URL=http://127.0.0.1:9 \
    SSM_STS_ENDPOINT=http://127.0.0.1:9 SSM_BROKER_AUDIENCE=ssm-broker.load \
    SSM_BROKER_POLICY_FILE="$work/policy.json" "$bin/ssm-app"
  local pid="$server_pid"
  local post=(-m POST -T application/json -D "$body" -H "X-GitHub-Event: workflow_run"
    -H "X-Hub-Signature-256: $signature")
  rss_sample "$pid" start app
  load app-warmup "$warmup" "$base/webhooks" "${post[@]}"
  rss_sample "$pid" warm app
  load app-peer-healthz "$secs" "$base/healthz"
  load app-webhook-workflow-run "$secs" "$base/webhooks" "${post[@]}"
  rss_sample "$pid" final app
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
    "http://127.0.0.1:$metrics_port/metrics" >"$out/app.metrics"
}

for server in "${servers[@]}"; do
  log "load: $server, $conns connections, ${secs}s per route (warm-up ${warmup}s)"
  "run_$server"
  stop_all
  # At `info` a server writes an access or audit line per request: gigabytes in a 60 s run. Keep
  # the count and the last lines, not the file.
  lines="$(wc -l <"$out/$server.log")"
  tail -n 50 "$out/$server.log" >"$out/$server.log.tail"
  rm -f "$out/$server.log"
  log "$server wrote $lines log lines (the last 50 are in $out/$server.log.tail)"
done

python3 - "$out" "$SSM_ROOT/build/bench/load.json" "$growth_pct" "$growth_kib" "$named_min_ratio" <<PY
import json, os, sys
out, dest, growth_pct, growth_kib = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
named_min_ratio = float(sys.argv[5])
config = {"connections": $conns, "seconds": $secs, "warmup_seconds": $warmup, "sweep_seconds": $sweep_secs,
          "oha": "$OHA_VERSION", "server_rust_log": "$server_log",
          "rss_growth_limit": {"percent": growth_pct, "kib": growth_kib},
          "named_min_ratio": named_min_ratio, "named_rounds": $named_rounds, "named_seconds": $named_secs}

def run(tag):
    r = json.load(open(os.path.join(out, tag + ".json")))
    p = r["latencyPercentiles"]
    codes = {int(k): v for k, v in r["statusCodeDistribution"].items()}
    load = [float(x) for x in open(os.path.join(out, tag + ".loadavg")).read().split()]
    return {
        "requests": sum(codes.values()) + sum(r["errorDistribution"].values()),
        "seconds": r["summary"]["total"],
        "rps": r["summary"]["requestsPerSec"],
        "p50_ms": p["p50"] * 1e3, "p90_ms": p["p90"] * 1e3, "p99_ms": p["p99"] * 1e3,
        "p99_9_ms": p["p99.9"] * 1e3, "max_ms": r["summary"]["slowest"] * 1e3,
        "mean_ms": r["summary"]["average"] * 1e3,
        "percentiles_ms": {k[1:]: v * 1e3 for k, v in p.items()},
        "histogram_ms": {str(float(k) * 1e3): v for k, v in r["responseTimeHistogram"].items()},
        "status": codes,
        "non_2xx": sum(v for k, v in codes.items() if not 200 <= k < 300),
        "errors": sum(r["errorDistribution"].values()),
        "error_kinds": r["errorDistribution"],
        "response_bytes": r["summary"]["sizePerRequest"],
        "loadavg_before_after": load,
    }

rss = {}
for line in open(os.path.join(out, "rss.txt")):
    server, label, vm_rss, vm_hwm = line.split()
    rss.setdefault(server, {})[label] = {"rss_kib": int(vm_rss), "hwm_kib": int(vm_hwm)}

def series(server):
    path = os.path.join(out, server + ".rss.tsv")
    return [[int(t), int(k)] for t, k in (l.split() for l in open(path))] if os.path.exists(path) else []

def memory(server):
    m = rss[server]
    growth = m["final"]["rss_kib"] - m["warm"]["rss_kib"]
    pct = 100.0 * growth / m["warm"]["rss_kib"]
    return dict(m, growth_kib=growth, growth_pct=pct,
                grew=growth > growth_kib and pct > growth_pct, series=series(server))

result = {"config": config, "servers": {}}
if "crypto" in rss:
    sizes = [int(s) for s in "${sweep_sizes[*]}".split()]
    result["servers"]["crypto"] = {
        "binary": "ssm-crypto-local",
        "headline": {"name": "POST /v1/encrypt, 1 KiB", "run": run("crypto-encrypt-1024")},
        "peer": {"name": "GET /version", "run": run("crypto-peer-version")},
        "named": {"name": "POST /v1/keys/payments/encrypt, 1 KiB", "run": run("crypto-named-encrypt-1024"),
                  "pairs": [{"first": "encrypt" if i % 2 == 0 else "named",
                             "encrypt": run(f"pair-{i}-encrypt"), "named": run(f"pair-{i}-named")}
                            for i in range($named_rounds)]},
        "warmup": run("crypto-warmup"),
        "memory": memory("crypto"),
        "sweep": {
            "peer": {"name": "GET /version", "run": run("sweep-peer-version")},
            "sizes": [{"plaintext_bytes": s, "run": run(f"sweep-encrypt-{s}")} for s in sizes],
        },
    }
if "app" in rss:
    result["servers"]["app"] = {
        "binary": "ssm-app",
        "headline": {"name": "POST /webhooks, signed workflow_run (5 KB)", "run": run("app-webhook-workflow-run")},
        "peer": {"name": "GET /healthz", "run": run("app-peer-healthz")},
        "warmup": run("app-warmup"),
        "memory": memory("app"),
    }

failures = []
for name, s in result["servers"].items():
    runs = [("headline", s["headline"]["run"]), ("peer", s["peer"]["run"]), ("warm-up", s["warmup"])]
    runs += [(f"sweep {x['plaintext_bytes']} B", x["run"]) for x in s.get("sweep", {}).get("sizes", [])]
    if "sweep" in s:
        runs.append(("sweep peer", s["sweep"]["peer"]["run"]))
    if "named" in s:
        runs.append(("named key", s["named"]["run"]))
        pairs = s["named"]["pairs"]
        for i, pair in enumerate(pairs):
            runs += [(f"pair {i} encrypt", pair["encrypt"]), (f"pair {i} named", pair["named"])]
            pair["ratio"] = pair["named"]["rps"] / pair["encrypt"]["rps"]
        # Summed requests over summed time: each pair weighs by what it served, and the order
        # effect cancels across the alternating rounds.
        def rate(key):
            return sum(p[key]["requests"] for p in pairs) / sum(p[key]["seconds"] for p in pairs)
        s["named"]["ratio_vs_headline"] = (rate("named") / rate("encrypt") if pairs
                                           else s["named"]["run"]["rps"] / s["headline"]["run"]["rps"])
        if s["named"]["ratio_vs_headline"] < named_min_ratio:
            failures.append(f"{name}: the named key's encrypt ran at {s['named']['ratio_vs_headline']:.3f} "
                            f"of /v1/encrypt's throughput (limit {named_min_ratio})")
    for label, r in runs:
        if r["errors"] or r["non_2xx"]:
            failures.append(f"{name} {label}: {r['errors']} errors {r['error_kinds']}, {r['non_2xx']} non-2xx {r['status']}")
    m = s["memory"]
    if m["grew"]:
        failures.append(f"{name}: RSS grew {m['growth_kib']} KiB ({m['growth_pct']:.1f} %) after the warm-up")
result["failures"] = failures
os.makedirs(os.path.dirname(dest), exist_ok=True)
json.dump(result, open(dest, "w"), indent=1)

print(f"\nload: {config['connections']} connections, {config['seconds']} s per route, oha {config['oha']}")
print(f"{'':44} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  ratio (req/s vs peer)")
for name, s in result["servers"].items():
    h, p = s["headline"], s["peer"]
    for row in (h, p):
        r = row["run"]
        ratio = f"{h['run']['rps'] / p['run']['rps']:.3f}" if row is h else "(peer)"
        print(f"{s['binary'] + ' ' + row['name']:44} {r['rps']:>10,.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
              f"{r['errors'] + r['non_2xx']:>7}  {ratio}")
    if "named" in s:
        r = s["named"]["run"]
        print(f"{s['binary'] + ' ' + s['named']['name']:44} {r['rps']:>10,.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
              f"{r['errors'] + r['non_2xx']:>7}  {r['rps'] / h['run']['rps']:.3f} vs /v1/encrypt (one run)")
        pairs = s["named"]["pairs"]
        print(f"  named key vs /v1/encrypt in {len(pairs)} interleaved pairs: "
              + ", ".join(f"{p['ratio']:.3f} ({p['first']} first)" for p in pairs)
              + f"; summed ratio {s['named']['ratio_vs_headline']:.3f}")
    m = s["memory"]
    print(f"  RSS KiB: start {m['start']['rss_kib']}, after warm-up {m['warm']['rss_kib']}, final {m['final']['rss_kib']} "
          f"(growth {m['growth_kib']:+} KiB, {m['growth_pct']:+.1f} %; high-water {m['final']['hwm_kib']})")
    if "sweep" in s:
        peer = s["sweep"]["peer"]["run"]
        print(f"  sweep ({config['sweep_seconds']} s each; peer GET /version {peer['rps']:,.0f} req/s):")
        for x in s["sweep"]["sizes"]:
            r = x["run"]
            print(f"    {x['plaintext_bytes']:>7} B  {r['rps']:>10,.0f} req/s  {r['rps'] * x['plaintext_bytes'] / 2**20:>8.1f} MiB/s"
                  f"  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  ratio {r['rps'] / peer['rps']:.3f}")
for f in failures:
    print("FAIL:", f)
print(f"wrote {dest}")
sys.exit(1 if failures else 0)
PY
