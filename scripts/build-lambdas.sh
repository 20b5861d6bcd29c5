#!/usr/bin/env bash
# Builds the Lambda zips with cargo-lambda (release, zig-linked for Amazon Linux 2023) and copies
# each to build/lambda/<bin>/bootstrap.zip, where the CDK app picks them up. Prints their sizes.
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
log "cargo lambda build --profile lambda-release ${bins[*]}"
cargo lambda build --profile lambda-release --locked --output-format zip "${arch_flag[@]}" "${bins[@]}"

mkdir -p build/lambda
printf '%-16s %12s %12s\n' lambda "binary (B)" "zip (B)"
for bin in "${LAMBDAS[@]}"; do
  src="$CARGO_TARGET_DIR/lambda/$bin/bootstrap.zip"
  [[ -f "$src" ]] || die "cargo lambda did not produce $src"
  mkdir -p "build/lambda/$bin"
  cp "$src" "build/lambda/$bin/bootstrap.zip"
  size_bin=$(python3 -c 'import sys,zipfile; print(zipfile.ZipFile(sys.argv[1]).getinfo("bootstrap").file_size)' "$src")
  printf '%-16s %12s %12s\n' "$bin" "$size_bin" "$(stat -c %s "$src")"
done

bash scripts/build-app-lambda.sh
