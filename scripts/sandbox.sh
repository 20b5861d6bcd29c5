#!/usr/bin/env bash
# The whole system on one machine (README: "The whole system on one machine").
#   bash scripts/sandbox.sh                 bring it up: moto, deploy by the Action, the Lambdas under
#                                           local Runtime APIs, the HTTP API on 127.0.0.1:8787, the
#                                           GitHub App and the GitHub emulator; Ctrl-C stops it
#   bash scripts/sandbox.sh drift KIND      in another terminal: lambda-code | lambda-config | secret-policy |
#                                           keyring-policy | asset-overwrite
#   bash scripts/sandbox.sh e2e             up, checks, every drift kind, down (what CI runs)
# Builds what is missing first: the venv and node modules (setup.sh), the Lambda zips
# (build-lambdas.sh; SSM_SANDBOX_REBUILD=1 forces it), the synth into build/sandbox/cdk.out, and
# the binaries (debug).
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"

cmd="${1:-up}"
if [[ "$cmd" != "drift" ]]; then
  bash scripts/setup.sh
  missing=0
  for bin in "${LAMBDAS[@]}"; do
    [[ -f "build/lambda/$bin/bootstrap.zip" ]] || missing=1
  done
  [[ -f build/lambda/lambda-adapter/layer.zip ]] || missing=1
  if [[ "$missing" == 1 || "${SSM_SANDBOX_REBUILD:-0}" == 1 ]]; then
    bash scripts/build-lambdas.sh
  fi
  # The three stacks as a user synthesizes them (the repository is the only setting); the
  # sandbox installs them with ssm-install and serves the App's broker on loopback.
  SSM_CDK_OUT="$SSM_ROOT/build/sandbox/cdk.out" bash scripts/synth.sh \
    -c githubOwner=octo -c githubRepo=serverless-ssm \
    -c 'keys={"default":{},"payments":{},"orders":{}}'
fi
log "cargo build (ssm-sandbox, ssm-action, ssm-install, ssm-github-emulator, the ssm CLI)"
build_workspace_bins --features ssm-testkit/github
exec "$CARGO_TARGET_DIR/debug/ssm-sandbox" "${@:-up}"
