#!/usr/bin/env bash
# Runs every test: the README's test command and what CI (.ci/run) calls.
# Formatting, clippy, the workspace tests against moto (emulators required), then each step in
# scripts/ci.d/ in order (Lambda builds, schemathesis, CDK, linters). Stops at the first failure.
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"
trap stop_all EXIT

bash scripts/setup.sh

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

start_moto
export SSM_REQUIRE_EMULATORS=1

log "cargo test --workspace"
cargo test --workspace --locked

for step in scripts/ci.d/*.sh; do
  [[ -e "$step" ]] || continue
  log "step $(basename "$step")"
  bash "$step"
done
log "all checks passed"
