#!/usr/bin/env bash
# Only main's code runs with the deploy role (issue 19): scripts/check-workflows.py on the workflows
# (the Action at a pinned commit or the deployed one, no input picking a ref, every action pinned by
# commit, one Rust toolchain, releases from main only, no forced tag), then on copies each broken in
# one way, every one of which it must refuse. The schema check is 50-action.sh's.
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"

wf=.github/workflows
log "check-workflows.py: $wf"
python3 scripts/check-workflows.py "$wf/deploy.yml" "$wf/release.yml" "$wf/ci.yml"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# refuse NAME FILE SED-EXPRESSION: the checker must fail on FILE edited by the expression.
refuse() {
  local name="$1" file="$2" expr="$3"
  cp "$wf/deploy.yml" "$work/deploy.yml"
  cp "$wf/release.yml" "$work/release.yml"
  sed -i -e "$expr" "$work/$file"
  cmp -s "$work/$file" "$wf/$file" && die "mutation '$name' changed nothing in $file"
  if python3 scripts/check-workflows.py "$work/deploy.yml" "$work/release.yml" "$wf/ci.yml" 2>/dev/null; then
    die "check-workflows.py accepted $name"
  fi
}
refuse "a tag as the pinned Action" deploy.yml 's/^  SSM_ACTION_COMMIT: .*/  SSM_ACTION_COMMIT: v1/'
refuse "a short commit id" deploy.yml 's/^  SSM_ACTION_COMMIT: .*/  SSM_ACTION_COMMIT: "11d5960a"/'
refuse "the Action at a branch" deploy.yml 's/ref: ${{ env.SSM_ACTION_COMMIT || steps.commit.outputs.sha }}/ref: main/'
refuse "the Action at an input" deploy.yml 's/ref: ${{ env.SSM_ACTION_COMMIT || steps.commit.outputs.sha }}/ref: ${{ inputs.action-ref }}/'
refuse "the Action at a tag by uses" deploy.yml 's|uses: ./.ssm-action|uses: acme/serverless-ssm@v1|'
refuse "an input selecting the ref" deploy.yml 's/^        default: plan$/        default: plan\n      action-ref:\n        type: string\n        default: v1/'
refuse "a third-party action by tag" deploy.yml 's|actions/setup-node@[0-9a-f]*|actions/setup-node@v4|'
refuse "another toolchain than ci.yml" deploy.yml 's/rustup toolchain install 1[.0-9]*/rustup toolchain install 1.90.0/'
refuse "a release without the main guard" release.yml "/if: github.ref != 'refs\/heads\/main'/d"
refuse "a forced tag" release.yml 's/git push origin "refs\/tags\/v$VERSION"/git push --force origin "refs\/tags\/v$VERSION"/'
log "check-workflows.py: refuses each of 10 broken copies"
