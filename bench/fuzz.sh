#!/usr/bin/env bash
# Coverage-guided fuzzing of ssm-core on the stable toolchain: AFL++ through cargo-afl (rustc's own
# SanitizerCoverage passes; AFL++'s runtime built with gcc, no clang or nightly needed).
#
#   bash bench/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]      # default 60 s, every target
#   SSM_FUZZ_MERGE=1 bash bench/fuzz.sh 600 envelope         # then add new coverage to fuzz/corpus
#
# Each target starts from fuzz/corpus/<target>/ and writes build/fuzz/<target>/. Prints executions
# and exec/s per target; exits non-zero if any target crashed (a failed property is a crash), with
# the crashing inputs named and the command that reproduces each. CI runs it briefly
# (scripts/ci.d/25-fuzz.sh). The targets and their properties: fuzz/src/*.rs.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$SSM_ROOT"

seconds="${1:-60}"
shift || true
AFL_RS_VERSION=0.18.2 # cargo-afl and the afl crate (fuzz/Cargo.toml) must be the same version

# cargo-afl, and the AFL++ it builds from its bundled source (with NO_BUILD: afl-fuzz and the
# runtime only), cached per tool version under ~/.cache/serverless-ssm/tools.
tools="$HOME/.cache/serverless-ssm/tools"
export PATH="$tools/bin:$PATH"
export XDG_DATA_HOME="$tools/share"
read -r _ installed _ < <(cargo afl --version 2>/dev/null) || true
if [[ "${installed:-}" != "$AFL_RS_VERSION" ]]; then
  log "installing cargo-afl $AFL_RS_VERSION (builds AFL++ once)"
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/cargo-afl-install" \
    cargo install --locked --quiet cargo-afl --version "$AFL_RS_VERSION" --root "$tools"
fi
rustc_id="rustc-$(rustc -vV | sed -n 's/^release: //p')-$(rustc -vV | sed -n 's/^commit-hash: //p' | cut -c1-7)"
afl="$XDG_DATA_HOME/afl.rs/$rustc_id/afl.rs-$AFL_RS_VERSION/afl/bin"
if [[ ! -x "$afl/afl-fuzz" ]]; then
  log "building AFL++"
  cargo afl config --build --force
fi

# Instrumented build in its own target directory: its RUSTFLAGS differ from every other build's.
log "building the fuzz targets (cargo afl build)"
afl_target="$CARGO_TARGET_DIR/afl"
CARGO_TARGET_DIR="$afl_target" cargo afl build --locked --quiet -p ssm-fuzz --features afl --bin ssm-fuzz-afl
bin="$afl_target/debug/ssm-fuzz-afl"

if (($# == 0)); then
  mapfile -t targets < <(find fuzz/corpus -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
else
  targets=("$@")
fi

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1

stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$2"; }

failed=0
summary=()
for target in "${targets[@]}"; do
  [[ -d "fuzz/corpus/$target" ]] || die "no corpus for target $target (fuzz/corpus/$target)"
  out="build/fuzz/$target"
  rm -rf "$out"
  mkdir -p "$out"
  log "fuzzing $target for ${seconds}s"
  # afl-fuzz itself, not `cargo afl fuzz`, which adds -c0: a second (CmpLog) fork server that only
  # pays off with the LLVM plugins (nightly only). -t: a generous per-input timeout, since the
  # machine's cores are shared with other jobs.
  if ! "$afl/afl-fuzz" -i "fuzz/corpus/$target" -o "$out" -V "$seconds" -t 2000 -- "$bin" "$target" \
    >"$out/afl.log" 2>&1; then
    tail -n 30 "$out/afl.log" >&2
    summary+=("$target: afl-fuzz failed (see $out/afl.log)")
    failed=1
    continue
  fi
  stats="$out/default/fuzzer_stats"
  crashes=$(find "$out/default/crashes" -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$out/default/hangs" -name 'id:*' 2>/dev/null | wc -l)
  line=$(printf '%-20s %12s execs  %9s exec/s  corpus %5s  edges %7s  crashes %s  hangs %s' \
    "$target" "$(stat execs_done "$stats")" "$(stat execs_per_sec "$stats")" \
    "$(stat corpus_count "$stats")" "$(stat bitmap_cvg "$stats")" "$crashes" "$hangs")
  summary+=("$line")
  echo "$line" >&2
  if ((crashes > 0)); then
    failed=1
    for crash in "$out"/default/crashes/id:*; do
      printf '  crash: %s\n  reproduce: %s %s < %q\n' "$crash" "$bin" "$target" "$crash" >&2
      RUST_BACKTRACE=0 "$bin" "$target" <"$crash" 2>&1 | grep -A 2 -m 1 panicked >&2 || true
    done
  fi
  if [[ "${SSM_FUZZ_MERGE:-}" == 1 ]]; then
    # Keep the smallest set of inputs that covers what the queue covers, seeds included.
    rm -rf "$out/cmin"
    # (afl-cmin.bash: the Python afl-cmin records no coverage from afl.rs's persistent loop here.)
    "$afl/afl-cmin.bash" -i "$out/default/queue" -o "$out/cmin" -- "$bin" "$target" >"$out/cmin.log" 2>&1 &&
      for f in "$out"/cmin/*; do
        cp "$f" "fuzz/corpus/$target/cmin-$(sha256sum "$f" | cut -c1-16)"
      done
  fi
done

log "fuzzing summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
