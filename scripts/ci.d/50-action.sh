#!/usr/bin/env bash
# The deploy Action's packaging: hadolint on the Dockerfile, and action.yml plus every workflow
# against check-jsonschema's built-in GitHub schemas (no docker engine needed).
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"

log "hadolint Dockerfile"
hadolint --failure-threshold warning Dockerfile

log "check-jsonschema: action.yml (github-actions schema)"
check-jsonschema --builtin-schema vendor.github-actions action.yml

log "check-jsonschema: .github/workflows (github-workflows schema)"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
