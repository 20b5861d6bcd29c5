#!/usr/bin/env bash
# The whole system on one machine. First every synthesized stack (cdk/cdk.out from 40-cdk.sh)
# deploys into moto through the Action, matches its template, and routes an out-of-band change
# through EventBridge (sandbox/moto/check.sh). Then the sandbox's end-to-end loop: deploy,
# encrypt/decrypt through the emulated HTTP API, Lambda code drift restored, configuration and
# secret-policy drift detected and dispatched exactly once (scripts/sandbox.sh e2e).
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"
# A moto started by test.sh must not be reused: the sandbox starts its own (with the launcher's
# extra resource types) and the stacks' names would collide with earlier steps'.
unset AWS_ENDPOINT_URL
bash sandbox/moto/check.sh
start=$(date +%s)
# Emulation speed-up: the event source's batching window is 2 s instead of the stack's 30 s, which
# would add 30 s to each of the six single-change checks (sandbox/tests/poller.rs tests the window).
SSM_SANDBOX_SQS_BATCHING_WINDOW_SECS=2 bash scripts/sandbox.sh e2e
log "sandbox e2e: $(( $(date +%s) - start )) s including its build and synth"
