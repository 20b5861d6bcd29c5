#!/usr/bin/env bash
# The Lambda zips (release, cargo-lambda + zig): proves they build for Lambda and reports sizes.
# The CDK step after this one synthesizes from them.
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"
bash scripts/build-lambdas.sh
