#!/usr/bin/env bash
# Points action.yml at a pushed image, for a release commit:
#   bash scripts/release-action-yml.sh ghcr.io/<owner>/<repo>/ssm-action@sha256:<64 hex> [action.yml]
# rewrites `runs.image: Dockerfile` to `docker://<that reference>` in place, so `uses: <repo>@<release commit>`
# pulls the image instead of compiling it. Only an image pinned by digest is accepted (a tag can
# move under a release), and only an action.yml that still builds the Dockerfile (not one that is
# released already). The release workflow runs it; CI checks it (scripts/ci.d/50-action.sh).
source "$(dirname "$0")/lib.sh"

(( $# >= 1 && $# <= 2 )) || die "usage: $0 <registry>/<path>@sha256:<digest> [action.yml]"
ref="$1"
file="${2:-$SSM_ROOT/action.yml}"

# A lower-case repository path (as registries require), no tag, a full SHA-256 digest.
component='[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*'
pattern="^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]+)?(/${component})+@sha256:[0-9a-f]{64}\$"
[[ "$ref" =~ $pattern ]] \
  || die "not an image reference pinned by digest (<registry>/<path>@sha256:<64 lower-case hex>): $ref"

[[ -f "$file" ]] || die "no such file: $file"
# The runs block as this repository writes it: a docker action building its Dockerfile.
grep -qx '  using: docker' "$file" || die "$file: runs.using is not docker"
count="$(grep -cx '  image: Dockerfile' "$file" || true)"
[[ "$count" == 1 ]] || die "$file: expected one \`  image: Dockerfile\` line under runs, found ${count} (released already?)"

sed -i "s|^  image: Dockerfile\$|  image: docker://${ref}|" "$file"
log "$file: runs.image is docker://${ref}"
