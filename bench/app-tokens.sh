#!/usr/bin/env bash
# Benchmark of the App's token broker: requests per second and p50/p99 of POST /v1/tokens on cache
# hits (against GET /healthz as the peer measured in the same run), and ssm-app's memory at rest.
# Starts moto for STS; the GitHub emulator runs inside the load generator (app/benches/tokens.rs).
# Also writes build/bench/app-tokens.json (for bench/report.py).
source "$(dirname "$0")/../scripts/lib.sh"
cd "$SSM_ROOT"
trap stop_all EXIT
[[ -n "${AWS_ENDPOINT_URL:-}" ]] || start_moto
export SSM_REQUIRE_EMULATORS=1
export SSM_BENCH_OUT="$SSM_ROOT/build/bench"
cargo bench -p ssm-app --bench tokens
