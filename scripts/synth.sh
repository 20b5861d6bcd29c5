#!/usr/bin/env bash
# Synthesizes the CDK app (its three stacks) into cdk/cdk.out, the cloud assembly the deploy Action
# consumes. Needs the Lambda zips from `bash scripts/build-lambdas.sh` (fails naming any missing
# one) and cdk/node_modules from `bash scripts/setup.sh`. Fails on any unacknowledged cdk-nag
# finding. Extra arguments are CDK context settings, e.g.:
#   bash scripts/synth.sh -c githubOwner=acme -c githubRepo=serverless-ssm -c brokerUrl=https://broker.example.com
# (githubOwner/githubRepo default to $GITHUB_REPOSITORY; every setting is listed in cdk/README.md).
# SSM_CDK_OUT overrides the output directory.
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"

[[ -x cdk/node_modules/.bin/tsx ]] || die "cdk/node_modules is missing: run bash scripts/setup.sh"
out="${SSM_CDK_OUT:-$SSM_ROOT/cdk/cdk.out}"
rm -rf "$out"
log "cdk synth -> $out"
start=$(date +%s%N)
(cd cdk && CDK_OUTDIR="$out" node --import tsx bin/app.ts "$@")
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
log "synthesized in ${elapsed_ms} ms"
