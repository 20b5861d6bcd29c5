#!/usr/bin/env bash
# The GitHub App's Lambda layer: the AWS Lambda Web Adapter (crate lambda_web_adapter, binary
# lambda-adapter, pinned below) built from crates.io and zipped as build/lambda/lambda-adapter/layer.zip
# holding extensions/lambda-adapter. Lambda starts external extensions from /opt/extensions only,
# which layers fill (a function zip lands in /var/task), so the adapter ships as a layer; the App's
# own zip (bootstrap = ssm-app) comes from scripts/build-lambdas.sh. Both are CDK file assets.
#
# The architecture is build-lambdas.sh's (scripts/lambda-arch.py: ARCH, else cdk.json's setting).
#   x86_64: `cargo install --locked` of the pinned version for the host (an x86_64 Linux host).
#   arm64:  the pinned version's .crate from crates.io, checked against the SHA-256 below (the
#           registry index's checksum), built with its own Cargo.lock by cargo-lambda's zig.
# The binary is built once per version and architecture, cached under
# ~/.cache/serverless-ssm/lwa-<version>[-arm64] (each architecture compiles in its own target
# directory, so the two builds can run at once). Its glibc symbol versions are checked against
# Amazon Linux 2023's glibc (2.34): a newer symbol fails the build instead of the function's init.
#   LWA_PRINT_BIN=1 bash scripts/build-app-lambda.sh   also prints the binary's path (for tests).
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"

LWA_VERSION=0.9.1
LWA_CRATE_SHA256=93ef06e3cfac461e882db7e9f1c3b793df076f2ac8ca8da9384acd9b259b413b

ARCH="$(python3 scripts/lambda-arch.py)" || die "no valid architecture (ARCH or cdk.json's 'architecture')"
cache="$HOME/.cache/serverless-ssm"
case "$ARCH" in
  x86_64)
    [[ "$(uname -m)" == x86_64 ]] || die "build the x86_64 Web Adapter layer on an x86_64 Linux host"
    root="$cache/lwa-$LWA_VERSION"
    bin="$root/bin/lambda-adapter"
    if [[ ! -x "$bin" ]]; then
      log "cargo install lambda_web_adapter $LWA_VERSION -> $root"
      cargo install --locked --version "$LWA_VERSION" lambda_web_adapter \
        --target x86_64-unknown-linux-gnu --root "$root" --target-dir "$cache/lwa-build"
    fi
    ;;
  arm64)
    root="$cache/lwa-$LWA_VERSION-arm64"
    bin="$root/bin/lambda-adapter"
    if [[ ! -x "$bin" ]]; then
      ensure_rust_target aarch64-unknown-linux-gnu
      src="$root/src"
      rm -rf "$src" && mkdir -p "$src"
      log "lambda_web_adapter $LWA_VERSION from crates.io (sha256 $LWA_CRATE_SHA256)"
      python3 - "$LWA_VERSION" "$LWA_CRATE_SHA256" "$src" <<'PY'
import hashlib, io, sys, tarfile, urllib.request
version, want, dest = sys.argv[1:4]
base = "https://static.crates.io/crates/lambda_web_adapter"
data = urllib.request.urlopen(f"{base}/lambda_web_adapter-{version}.crate", timeout=120).read()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"lambda_web_adapter-{version}.crate has sha256 {got}, expected {want}")
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    tar.extractall(dest, filter="data")
PY
      log "cargo lambda build --arm64 lambda-adapter $LWA_VERSION"
      (cd "$src/lambda_web_adapter-$LWA_VERSION" &&
        CARGO_TARGET_DIR="$cache/lwa-build-arm64" cargo lambda build --release --locked --arm64 --bin lambda-adapter)
      mkdir -p "$root/bin"
      # cargo-lambda writes the binary as lambda/<bin>/bootstrap under the target directory.
      cp "$cache/lwa-build-arm64/lambda/lambda-adapter/bootstrap" "$bin"
      rm -rf "$src"
    fi
    ;;
esac

check_elf "$bin" "$ARCH"
[[ "$CHECKED_GLIBC" != none ]] || die "no glibc symbol versions found in $bin"
log "lambda-adapter $LWA_VERSION ($ARCH): newest glibc symbol GLIBC_$CHECKED_GLIBC (Amazon Linux 2023: $AL2023_GLIBC)"

out="${SSM_LAMBDA_OUT:-build/lambda}/lambda-adapter"
mkdir -p "$out"
# Deterministic (fixed time, mode, order), so an unchanged adapter is an unchanged asset.
python3 scripts/deterministic-zip.py "$out/layer.zip" "extensions/lambda-adapter=$bin"
printf '%-16s %12s %12s\n' layer "binary (B)" "zip (B)"
printf '%-16s %12s %12s\n' lambda-adapter "$(stat -c %s "$bin")" "$(stat -c %s "$out/layer.zip")"
if [[ "${LWA_PRINT_BIN:-}" == 1 ]]; then echo "$bin"; fi
