#!/usr/bin/env bash
# Docs that cannot drift (scripts/check_docs.py): environment variables read by the binaries and
# set by the stacks vs those the docs name, docs/openapi.yaml and README's error table vs the
# Crypto API's statuses and codes, quoted figures vs BENCHMARKS.md. The self-test first plants one
# drift of each kind in memory and expects each check to catch it. Runs in about a second.
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"

python3 scripts/check_docs.py --self-test
python3 scripts/check_docs.py
