#!/usr/bin/env bash
# The Lambda zips (release, cargo-lambda + zig): proves they build for Lambda, reports sizes, and
# proves the packaging is byte-reproducible: it packages twice and compares every zip's bytes.
# The second run reuses cargo's compiled binaries (nothing changed, so cargo compiles nothing; a
# second fat-LTO build would double this step's time), but first gives every binary a new mtime,
# as a relink at another time or in another clone does, and runs under another umask. cargo-lambda's
# own zip took the binary's mtime, so the old packaging fails this (its zips differ); ours must
# give the same bytes, which proves the zips depend on the binaries' bytes only. That the binaries
# themselves are reproducible (two clones, one toolchain: identical) is rustc's part.
# The CDK step after this one synthesizes from these zips.
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"

sums() { (cd build/lambda && sha256sum ./*/*.zip); }
arch="$(python3 scripts/lambda-arch.py)" # what build-lambdas.sh builds for

bash scripts/build-lambdas.sh
first="$(sums)"
log "packaging again (cargo reuses the binaries, now with a new mtime; umask 077)"
sleep 2 # zip times have a 2-second resolution
for bin in "${LAMBDAS[@]}"; do
  for f in "$CARGO_TARGET_DIR/lambda/$bin/bootstrap" "$CARGO_TARGET_DIR"/*/lambda-release/"$bin"; do
    if [[ -f "$f" ]]; then touch "$f"; fi
  done
done
rm -f build/lambda/*/*.zip
(umask 077 && bash scripts/build-lambdas.sh >/dev/null)
second="$(sums)"
if [[ "$first" != "$second" ]]; then
  diff <(echo "$first") <(echo "$second") >&2 || true
  die "two packagings of the same binaries gave different zips"
fi
log "zips byte-identical across two packagings:"
echo "$first"
log "zip sizes against their budgets"
check_zip_budgets build/lambda "$arch"
# The cache key deploy.yml builds them under: equal keys, these bytes.
log "lambda source key: $(python3 scripts/lambda-source-key.py "$(rustc --version | cut -d' ' -f2)" "$arch")"
