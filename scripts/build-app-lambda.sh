#!/usr/bin/env bash
# The GitHub App's Lambda layer: the AWS Lambda Web Adapter (crate lambda_web_adapter, binary
# lambda-adapter, pinned below) built from crates.io and zipped as build/lambda/lambda-adapter/layer.zip
# holding extensions/lambda-adapter. Lambda starts external extensions from /opt/extensions only,
# which layers fill (a function zip lands in /var/task), so the adapter ships as a layer; the App's
# own zip (bootstrap = ssm-app) comes from scripts/build-lambdas.sh. Both are CDK file assets.
#
# The binary is built once per version and cached under ~/.cache/serverless-ssm/lwa-<version>.
# It is linked against the host's glibc, so its symbol versions are checked against Amazon Linux
# 2023's glibc (2.34): a newer host glibc symbol fails the build instead of the function's init.
#   LWA_PRINT_BIN=1 bash scripts/build-app-lambda.sh   also prints the binary's path (for tests).
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"

LWA_VERSION=0.9.1
AL2023_GLIBC=2.34

[[ "${ARCH:-x86_64}" == x86_64 ]] || die "the Web Adapter layer is built for x86_64 only (ARCH=${ARCH})"
[[ "$(uname -m)" == x86_64 ]] || die "build the Web Adapter layer on an x86_64 Linux host"

cache="$HOME/.cache/serverless-ssm"
root="$cache/lwa-$LWA_VERSION"
bin="$root/bin/lambda-adapter"
if [[ ! -x "$bin" ]]; then
  log "cargo install lambda_web_adapter $LWA_VERSION -> $root"
  cargo install --locked --version "$LWA_VERSION" lambda_web_adapter \
    --target x86_64-unknown-linux-gnu --root "$root" --target-dir "$cache/lwa-build"
fi

newest="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
[[ -n "$newest" ]] || die "no glibc symbol versions found in $bin"
[[ "$(printf '%s\n%s\n' "$newest" "$AL2023_GLIBC" | sort -V | tail -1)" == "$AL2023_GLIBC" ]] ||
  die "lambda-adapter needs GLIBC_$newest; Amazon Linux 2023 has $AL2023_GLIBC"
log "lambda-adapter $LWA_VERSION: newest glibc symbol GLIBC_$newest (Amazon Linux 2023: $AL2023_GLIBC)"

out="build/lambda/lambda-adapter"
mkdir -p "$out"
# Deterministic (fixed time, mode, order), so an unchanged adapter is an unchanged asset.
python3 scripts/deterministic-zip.py "$out/layer.zip" "extensions/lambda-adapter=$bin"
printf '%-16s %12s %12s\n' layer "binary (B)" "zip (B)"
printf '%-16s %12s %12s\n' lambda-adapter "$(stat -c %s "$bin")" "$(stat -c %s "$out/layer.zip")"
if [[ "${LWA_PRINT_BIN:-}" == 1 ]]; then echo "$bin"; fi
