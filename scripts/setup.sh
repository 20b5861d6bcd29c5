#!/usr/bin/env bash
# Installs what a fresh machine lacks (Rust, Python 3.11, Node 20 and git are assumed), pinned:
# a Python venv with moto, cfn-lint, cargo-lambda, ziglang, hadolint, check-jsonschema, schemathesis,
# awscli; rustfmt and clippy; and the CDK app's node modules. Idempotent and quick when done already.
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"

req="scripts/requirements.txt"
stamp="$SSM_VENV/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$SSM_VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "creating the Python venv ($SSM_VENV)"
  python3 -m venv "$SSM_VENV"
  "$SSM_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
fi

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  log "adding rustfmt and clippy"
  rustup component add rustfmt clippy
fi

if [[ -f cdk/package-lock.json ]]; then
  lock_sum="$(sha256sum cdk/package-lock.json | cut -d' ' -f1)"
  if [[ "$(cat cdk/node_modules/.lock.sha256 2>/dev/null)" != "$lock_sum" ]]; then
    log "npm ci in cdk/"
    (cd cdk && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >cdk/node_modules/.lock.sha256
  fi
fi
