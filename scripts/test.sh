#!/usr/bin/env bash
# Runs every test: the README's test command and what CI (.ci/run) calls.
# Formatting, clippy, the workspace tests against moto (emulators required), then each step in
# scripts/ci.d/ in order (Lambda builds, schemathesis, CDK, linters). Stops at the first failure.
#
# A step named *.bg.sh (the arm64 zips: a second release build, minutes of CPU that nothing else
# waits for) starts in the background right after setup, at the lowest priority (nice 19) and in a
# process group of its own, and is joined at the end: it uses the cores while the rest waits on
# moto, Python or single-threaded links, and yields them otherwise. Its output is printed when it
# is joined; it fails the suite like any other step, and is stopped if the suite stops first.
source "$(dirname "$0")/lib.sh"
cd "$SSM_ROOT"

bg_pids=()
bg_steps=()
stop_background() {
  local pid
  for pid in "${bg_pids[@]:-}"; do
    [[ -n "$pid" ]] && kill -- "-$pid" 2>/dev/null || true
  done
}
trap 'stop_background; stop_all' EXIT

bash scripts/setup.sh

bg_logs="$SSM_ROOT/build/ci-background"
rm -rf "$bg_logs" && mkdir -p "$bg_logs"
for step in scripts/ci.d/*.bg.sh; do
  [[ -e "$step" ]] || continue
  log "step $(basename "$step") started in the background (log: ${bg_logs#"$SSM_ROOT"/}/$(basename "$step").log)"
  # Job control on for this one job: its own process group (stopped with kill -- -PGID), in the
  # same session. Not setsid: a new session is a new scheduler autogroup, which gets its fair
  # share of the cores whatever its nice value (the niceness only ranks tasks within a group).
  set -m
  nice -n 19 bash "$step" >"$bg_logs/$(basename "$step").log" 2>&1 &
  bg_pids+=("$!")
  set +m
  bg_steps+=("$step")
done

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

start_moto
export SSM_REQUIRE_EMULATORS=1

log "cargo test --workspace"
cargo test --workspace --locked

for step in scripts/ci.d/*.sh; do
  [[ -e "$step" && "$step" != *.bg.sh ]] || continue
  log "step $(basename "$step")"
  bash "$step"
done

for i in "${!bg_pids[@]}"; do
  name="$(basename "${bg_steps[$i]}")"
  log "step $name (joining the background run)"
  status=0
  wait "${bg_pids[$i]}" || status=$?
  bg_pids[i]=""
  cat "$bg_logs/$name.log" >&2
  (( status == 0 )) || die "step $name failed (exit $status)"
done
log "all checks passed"
