#!/usr/bin/env bash
# Only main's code runs with the deploy role (issue 19): scripts/check-workflows.py on the workflows
# (the Action at a pinned commit or the deployed one, no input picking a ref, every action pinned by
# commit, one Rust toolchain, releases from main only, no forced tag), then on copies each broken in
# one way, every one of which it must refuse; and the key deploy.yml caches the Lambda zips under
# (scripts/lambda-source-key.py), on a copy of the tree: it must change with any file the zips are
# built from and not with others. The schema check is 50-action.sh's.
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
refuse "another toolchain than ci.yml" deploy.yml 's/^  SSM_RUST_TOOLCHAIN: .*/  SSM_RUST_TOOLCHAIN: 1.90.0/'
refuse "a cache saved from any ref" deploy.yml "s/ \&\& github.ref == 'refs\/heads\/main'$//"
refuse "a release without the main guard" release.yml "/if: github.ref != 'refs\/heads\/main'/d"
refuse "a release action by tag" release.yml 's|docker/login-action@[0-9a-f]*|docker/login-action@v3|'
refuse "a forced tag" release.yml 's/git push origin "refs\/tags\/v$VERSION"/git push --force origin "refs\/tags\/v$VERSION"/'
log "check-workflows.py: refuses each of 12 broken copies"

log "lambda-source-key.py: changes with what the zips are built from, only"
tree="$work/tree"
mkdir -p "$tree"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree"
git -C "$tree" init -q && git -C "$tree" add -A
lkey() { python3 "$tree/scripts/lambda-source-key.py" "${1:-1.95.0}" "${2:-x86_64}"; }
base="$(lkey)"
[[ "$base" =~ ^[0-9a-f]{64}$ ]] || die "not a key: $base"
[[ "$(lkey)" == "$base" ]] || die "the key is not stable"
[[ "$(lkey 1.95.1)" != "$base" && "$(lkey 1.95.0 arm64)" != "$base" ]] || die "the key ignores the toolchain or the architecture"
# changed FILE: appending a line to FILE must change the key; same FILE: must not.
probe() {
  local want="$1" file="$2"
  cp "$tree/$file" "$work/saved"
  if [[ "$file" == *.rs ]]; then echo "// probe" >>"$tree/$file"; else echo "# probe" >>"$tree/$file"; fi
  local got; got="$(lkey)"
  cp "$work/saved" "$tree/$file"
  if [[ "$want" == changed && "$got" == "$base" ]]; then die "the key ignores $file"; fi
  if [[ "$want" == same && "$got" != "$base" ]]; then die "the key depends on $file, which no zip is built from"; fi
}
probe changed Cargo.lock
probe changed Cargo.toml
probe changed core/src/lib.rs                 # a path dependency of every Lambda
probe changed clients/broker/Cargo.toml       # ssm-integrity's, through ssm-app
probe changed lambdas/keystore/src/lib.rs
probe changed app/src/main.rs
probe changed scripts/build-lambdas.sh
probe changed scripts/lib.sh                  # LAMBDAS, the binaries built
probe changed scripts/requirements.txt        # cargo-lambda and zig
probe same action/src/main.rs                 # the deploy Action is not a Lambda
probe same sandbox/src/main.rs
probe same README.md
log "lambda-source-key.py: follows its inputs"
