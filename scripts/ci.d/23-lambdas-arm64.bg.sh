#!/usr/bin/env bash
# arm64 (Graviton) as far as an x86_64 machine takes it. The script deploy.yml runs builds the four
# zips and the Web Adapter layer for aarch64 (ARCH=arm64: cargo-lambda's zig; the layer from its
# checksummed crate), checking each executable is AArch64 and needs no glibc newer than Amazon Linux
# 2023's. The app then synthesizes from them with architecture=arm64 (cdk-nag included), every
# function and the layer on arm64; and synth must refuse these zips for the default x86_64 (it reads
# each zip's executable: content, not presence). Running arm64 code needs an arm64 host, which this
# machine is not: the sandbox and 22-app-lambda.sh run the x86_64 zips of 20-lambdas.sh.
# test.sh runs this step in the background (*.bg.sh), beside the others: hence its own cargo target
# directory (cargo locks a target directory for the whole of a build, which would stall every
# other step's cargo behind this one) and nothing written where another step reads or writes.
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"
export CARGO_TARGET_DIR="$CARGO_TARGET_DIR-arm64"

out="$SSM_ROOT/build/lambda-arm64"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ARCH=arm64 SSM_LAMBDA_OUT="$out" bash scripts/build-lambdas.sh
log "arm64 zip sizes against their budgets"
check_zip_budgets "$out" arm64

ctx=(-c githubOwner=serverless-ssm-ci -c githubRepo=serverless-ssm -c architecture=arm64)
SSM_CDK_OUT="$work/arm64.out" bash scripts/synth.sh "${ctx[@]}" -c lambdaAssetDir="$out"
python3 - "$work/arm64.out" <<'PY'
import json, pathlib, sys
functions = layers = 0
for template in pathlib.Path(sys.argv[1]).glob("*.template.json"):
    for rid, res in json.loads(template.read_text())["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Lambda::Function":
            functions += 1
            if props.get("Architectures") != ["arm64"]:
                sys.exit(f"{template.name}: {rid} runs on {props.get('Architectures')}, not arm64")
        if res["Type"] == "AWS::Lambda::LayerVersion":
            layers += 1
            if props.get("CompatibleArchitectures") != ["arm64"]:
                sys.exit(f"{template.name}: layer {rid} is for {props.get('CompatibleArchitectures')}")
if functions < 4 or layers < 1:
    sys.exit(f"expected the four functions and the adapter layer, found {functions} and {layers}")
print(f"arm64: {functions} functions and {layers} layer on arm64")
PY

# The mistake a user makes: zips built for arm64, the setting left at its default (x86_64).
log "synth must refuse the arm64 zips with the default architecture"
if SSM_CDK_OUT="$work/mixed.out" bash scripts/synth.sh "${ctx[@]:0:4}" -c lambdaAssetDir="$out" 2>"$work/err"; then
  die "synth accepted arm64 zips for architecture=x86_64"
fi
grep -q "is built for arm64, but the setting 'architecture' is x86_64" "$work/err" ||
  { cat "$work/err" >&2; die "synth failed, but not on the architecture"; }
log "arm64: zips built, checked and synthesized; refused for an x86_64 stack"
