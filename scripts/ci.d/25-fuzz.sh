#!/usr/bin/env bash
# A bounded AFL++ run of every fuzz target (about a minute in all): fails on any crash, that is on
# any input breaking a target's properties. Long runs: bash bench/fuzz.sh [seconds-per-target].
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"
bash bench/fuzz.sh "${SSM_FUZZ_SECONDS:-8}"
