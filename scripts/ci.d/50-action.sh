#!/usr/bin/env bash
# The deploy Action's packaging, as far as a machine without a docker engine can check it: hadolint
# on the Dockerfile; action.yml plus every workflow against check-jsonschema's built-in GitHub
# schemas; the release rewrite of action.yml (scripts/release-action-yml.sh). The Dockerfile's
# stages (root Action, non-root App, build commands naming real workspace binaries) are checked by
# `cargo test -p ssm-action --test image`; the image itself is built only by GitHub.
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"

log "hadolint Dockerfile"
hadolint --failure-threshold warning Dockerfile

log "check-jsonschema: action.yml (github-actions schema)"
check-jsonschema --builtin-schema vendor.github-actions action.yml

log "check-jsonschema: .github/workflows (github-workflows schema)"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

log "release rewrite of action.yml"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
grep -qx '  image: Dockerfile' action.yml || die "action.yml on a branch must build the Dockerfile (uses: ./ tests the checked-out source)"
released="$work/action.yml"
cp action.yml "$released"
# Any well-formed digest will do: this one is the file's own hash.
digest="sha256:$(sha256sum action.yml | cut -c1-64)"
image="ghcr.io/example-owner/example-repo/ssm-action"
bash scripts/release-action-yml.sh "$image@$digest" "$released" 2>/dev/null
check-jsonschema --builtin-schema vendor.github-actions "$released"
python3 - action.yml "$released" "docker://$image@$digest" <<'PY'
import sys
before, after, want = open(sys.argv[1]).read().splitlines(), open(sys.argv[2]).read().splitlines(), sys.argv[3]
changed = [(a, b) for a, b in zip(before, after) if a != b]
assert len(before) == len(after) and changed == [("  image: Dockerfile", f"  image: {want}")], changed
PY
refuse() {
  local why="$1"; shift
  if bash scripts/release-action-yml.sh "$@" 2>/dev/null; then die "release-action-yml.sh accepted $why"; fi
}
cp action.yml "$work/fresh.yml"
refuse "a tag instead of a digest" "$image:1" "$work/fresh.yml"
refuse "a tag and a digest" "$image:1@$digest" "$work/fresh.yml"
refuse "a short digest" "$image@${digest%?}" "$work/fresh.yml"
refuse "an upper-case digest" "$image@sha256:$(sha256sum action.yml | cut -c1-64 | tr a-f A-F)" "$work/fresh.yml"
refuse "an upper-case repository" "ghcr.io/Example/repo/ssm-action@$digest" "$work/fresh.yml"
refuse "a reference without a registry path" "@$digest" "$work/fresh.yml"
refuse "shell metacharacters" "ghcr.io/o/r|x@$digest" "$work/fresh.yml"
cmp -s action.yml "$work/fresh.yml" || die "a refused rewrite changed the file"
refuse "an action.yml released already" "$image@$digest" "$released"
