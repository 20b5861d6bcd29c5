#!/usr/bin/env bash
# Builds the Lambda zips with cargo-lambda (release, zig-linked for Amazon Linux 2023) and zips each
# binary into build/lambda/<bin>/bootstrap.zip, where the CDK app picks them up. Prints their sizes
# and SHA-256. The zips are byte-reproducible (scripts/deterministic-zip.py: fixed entry time, mode
# and order): the same binary always gives the same zip, so the same commit gives the same CDK
# assets and a push that changes no Lambda source changes no function. (cargo-lambda's own zip
# carries the binary's mtime, so every build was a new asset.)
# ssm-app (the GitHub App) also needs the Web Adapter layer: scripts/build-app-lambda.sh, run last.
# SSM_LAMBDA_OUT=DIR writes the zips (and the layer) under DIR instead of build/lambda.
# The architecture is cdk.json's `architecture` setting, the one the stacks deploy (synth refuses a
# zip whose executable is for another); ARCH=x86_64|arm64 overrides it for one build. arm64 (Graviton)
# cross-compiles with cargo-lambda's zig and adds the aarch64 rust-std if it is missing.
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"
bash scripts/setup.sh

ARCH="$(python3 scripts/lambda-arch.py)" || die "no valid architecture (ARCH or cdk.json's 'architecture')"
export ARCH
arch_flag=()
if [[ "$ARCH" == arm64 ]]; then
  arch_flag=(--arm64)
  ensure_rust_target aarch64-unknown-linux-gnu
fi
log "building the Lambda zips for $ARCH"

bins=()
for bin in "${LAMBDAS[@]}"; do bins+=(--bin "$bin"); done
# The lambda-release profile (Cargo.toml): size-optimised, fat LTO, crypto crates at full speed.
# Binaries only (target/lambda/<bin>/bootstrap): the zips are ours.
log "cargo lambda build --profile lambda-release ${bins[*]}"
cargo lambda build --profile lambda-release --locked --output-format binary "${arch_flag[@]}" "${bins[@]}"

out="${SSM_LAMBDA_OUT:-build/lambda}"
mkdir -p "$out"
printf '%-16s %12s %12s  %s\n' lambda "binary (B)" "zip (B)" "zip sha256"
for bin in "${LAMBDAS[@]}"; do
  # cargo-lambda copies each build's binary here, whatever its architecture: check it is this one's.
  src="$CARGO_TARGET_DIR/lambda/$bin/bootstrap"
  [[ -f "$src" ]] || die "cargo lambda did not produce $src"
  check_elf "$src" "$ARCH"
  zip="$out/$bin/bootstrap.zip"
  mkdir -p "$out/$bin"
  python3 scripts/deterministic-zip.py "$zip" "bootstrap=$src"
  printf '%-16s %12s %12s  %s\n' "$bin" "$(stat -c %s "$src")" "$(stat -c %s "$zip")" "$(sha256sum "$zip" | cut -c1-16)"
done

bash scripts/build-app-lambda.sh
