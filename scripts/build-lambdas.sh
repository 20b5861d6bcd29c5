#!/usr/bin/env bash
# Builds the Lambda zips with cargo-lambda (release, zig-linked for Amazon Linux 2023) and zips each
# binary into build/lambda/<bin>/bootstrap.zip, where the CDK app picks them up. Prints their sizes
# and SHA-256. The zips are byte-reproducible (scripts/deterministic-zip.py: fixed entry time, mode
# and order): the same binary always gives the same zip, so the same commit gives the same CDK
# assets and a push that changes no Lambda source changes no function. (cargo-lambda's own zip
# carries the binary's mtime, so every build was a new asset.)
# ssm-app (the GitHub App) also needs the Web Adapter layer: scripts/build-app-lambda.sh, run last.
#   ARCH=arm64 bash scripts/build-lambdas.sh   builds for Graviton (needs the aarch64 target).
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"
bash scripts/setup.sh

LAMBDAS=(ssm-crypto ssm-rotation ssm-integrity ssm-app)
arch_flag=()
case "${ARCH:-x86_64}" in
  x86_64) ;;
  arm64) arch_flag=(--arm64) ;;
  *) die "ARCH must be x86_64 or arm64" ;;
esac

bins=()
for bin in "${LAMBDAS[@]}"; do bins+=(--bin "$bin"); done
# The lambda-release profile (Cargo.toml): size-optimised, fat LTO, crypto crates at full speed.
# Binaries only (target/lambda/<bin>/bootstrap): the zips are ours.
log "cargo lambda build --profile lambda-release ${bins[*]}"
cargo lambda build --profile lambda-release --locked --output-format binary "${arch_flag[@]}" "${bins[@]}"

mkdir -p build/lambda
printf '%-16s %12s %12s  %s\n' lambda "binary (B)" "zip (B)" "zip sha256"
for bin in "${LAMBDAS[@]}"; do
  src="$CARGO_TARGET_DIR/lambda/$bin/bootstrap"
  [[ -f "$src" ]] || die "cargo lambda did not produce $src"
  zip="build/lambda/$bin/bootstrap.zip"
  mkdir -p "build/lambda/$bin"
  python3 scripts/deterministic-zip.py "$zip" "bootstrap=$src"
  printf '%-16s %12s %12s  %s\n' "$bin" "$(stat -c %s "$src")" "$(stat -c %s "$zip")" "$(sha256sum "$zip" | cut -c1-16)"
done

bash scripts/build-app-lambda.sh
