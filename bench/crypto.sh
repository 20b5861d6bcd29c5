#!/usr/bin/env bash
# Crypto API benchmarks, each printing ratios against a peer measured in the same run:
#  1. envelope seal/open at 64 B, 1 KiB, 64 KiB, 1 MiB vs ring's AES-256-GCM;
#  2. the Lambda handler end to end (API Gateway v2 event -> response) for a 1 KiB encrypt vs the
#     bare envelope;
#  3. cold start of the release bootstrap under a local Runtime API with the keyring from moto,
#     vs a Python/boto3 peer doing the same job; plus binary and zip sizes.
# Also writes build/bench/crypto.json and build/bench/cold-start.json (for bench/report.py).
source "$(dirname "$0")/../scripts/lib.sh"
cd "$SSM_ROOT"
trap stop_all EXIT
bash scripts/setup.sh
export SSM_BENCH_OUT="$SSM_ROOT/build/bench"

log "envelope and handler (cargo bench)"
cargo bench --locked -p ssm-crypto --bench crypto

log "cold start"
bash scripts/build-lambdas.sh >/dev/null
cargo build --release --locked -p ssm-rotation --bin ssm-keyring
# The floor: a bare lambda_runtime function, same profile as the Lambda zips.
cargo build --profile lambda-release --locked -p ssm-crypto --example bare-lambda
start_moto
python -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
  "$SSM_ROOT/build/lambda/ssm-crypto/bootstrap.zip" "$SSM_ROOT/build/cold-start"
chmod +x "$SSM_ROOT/build/cold-start/bootstrap"
python bench/cold_start.py --bootstrap "$SSM_ROOT/build/cold-start/bootstrap" \
  --keyring-cli "$CARGO_TARGET_DIR/release/ssm-keyring" \
  --floor "$CARGO_TARGET_DIR/lambda-release/examples/bare-lambda" \
  --zip "$SSM_ROOT/build/lambda/ssm-crypto/bootstrap.zip" --spawns "${SPAWNS:-15}" \
  --json "$SSM_BENCH_OUT/cold-start.json"
