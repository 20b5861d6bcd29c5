#!/usr/bin/env bash
# Benchmark: a no-change deploy of the same cloud assembly against moto, ssm-action (built as the
# image builds it: the `action` profile) vs `aws cloudformation deploy` (awscli from the venv),
# measured in the same run: median wall time and peak RSS over N runs each, and their ratio. Also
# prints the binary's size (the image cannot be built without a docker engine; the binary is what
# the distroless image adds). Also writes build/bench/action-deploy.json (for bench/report.py).
#   bash bench/action-deploy.sh [RUNS]   (default 5)
# SSM_ACTION_BIN=path measures that binary instead of building one (e.g. a release or debug build,
# to compare; the figures of record are the `action` profile's).
source "$(dirname "$0")/../scripts/lib.sh"
cd "$SSM_ROOT"
trap stop_all EXIT
runs="${1:-5}"
[[ -x /usr/bin/time ]] || die "needs GNU time for peak RSS (apt-get install time)"

bash scripts/setup.sh
bin="${SSM_ACTION_BIN:-}"
if [[ -z "$bin" ]]; then
  log "cargo build --profile action -p ssm-action"
  cargo build --profile action --locked -p ssm-action
  bin="$CARGO_TARGET_DIR/action/ssm-action"
fi
start_moto

work="$(mktemp -d)"
trap 'stop_all; rm -rf "$work"' EXIT
asm="$work/cdk.out"
stack="BenchStack"
bucket="cdk-hnb659fds-assets-123456789012-us-east-1"
aws s3api create-bucket --bucket "$bucket" >/dev/null

# The assembly: an IAM role and a Lambda function whose code is a zip asset, as CDK writes it.
python3 - "$asm" "$stack" <<'PY'
import json, os, sys, hashlib
asm, stack = sys.argv[1], sys.argv[2]
h = "b" * 64
os.makedirs(f"{asm}/asset.{h}", exist_ok=True)
with open(f"{asm}/asset.{h}/bootstrap", "w") as f:
    f.write("#!/bin/sh\necho bench\n")
template = {
    "Parameters": {"Timeout": {"Type": "Number", "Default": 10}},
    "Resources": {
        "FnRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
        "Fn": {"Type": "AWS::Lambda::Function", "DependsOn": ["FnRole"], "Properties": {
            "Code": {"S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"}, "S3Key": f"{h}.zip"},
            "Handler": "bootstrap", "Runtime": "provided.al2023", "Timeout": {"Ref": "Timeout"},
            "Role": {"Fn::GetAtt": ["FnRole", "Arn"]}}},
    },
}
body = json.dumps(template, indent=1)
open(f"{asm}/{stack}.template.json", "w").write(body)
th = hashlib.sha256(body.encode()).hexdigest()
dest = lambda key: {"current_account-current_region": {
    "bucketName": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}", "objectKey": key}}
assets = {"version": "36.0.0", "files": {
    h: {"source": {"path": f"asset.{h}", "packaging": "zip"}, "destinations": dest(f"{h}.zip")},
    th: {"source": {"path": f"{stack}.template.json", "packaging": "file"}, "destinations": dest(f"{th}.json")}},
    "dockerImages": {}}
json.dump(assets, open(f"{asm}/{stack}.assets.json", "w"), indent=1)
manifest = {"version": "36.0.0", "artifacts": {
    f"{stack}.assets": {"type": "cdk:asset-manifest", "properties": {"file": f"{stack}.assets.json"}},
    stack: {"type": "aws:cloudformation:stack", "properties": {"templateFile": f"{stack}.template.json"},
            "dependencies": [f"{stack}.assets"]}}}
json.dump(manifest, open(f"{asm}/manifest.json", "w"), indent=1)
PY

action_env=(env "INPUT_MODE=apply" "INPUT_AWS-REGION=$AWS_REGION" "INPUT_CLOUD-ASSEMBLY=$asm" "SSM_ACTION_LOG=warn")
log "first deploy (creates the stack)"
"${action_env[@]}" "$bin" >/dev/null

# measure NAME CMD...: runs CMD $runs times; prints "NAME median_ms peak_kb".
# The peak is GNU time's %M: the max RSS of CMD alone, from wait4 on a child forked by a process of
# 1 MB. Not the RUSAGE_CHILDREN of a Python parent: a child exec'd from a vfork (how subprocess
# starts it) inherits its parent's high-water mark, so every figure would be at least Python's own
# 11-14 MB.
measure() {
  local name="$1"; shift
  python3 - "$runs" "$name" "$@" <<'PY'
import os, statistics, subprocess, sys, tempfile, time
runs, name, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
walls, peaks = [], []
with tempfile.TemporaryDirectory() as tmp:
    report = os.path.join(tmp, "maxrss")
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report, *cmd],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        walls.append((time.perf_counter() - t) * 1000)
        # moto answers an unchanged template with CreateChangeSet's ValidationError form of "no
        # changes", which `aws cloudformation deploy` does not treat as empty (AWS itself returns
        # a FAILED change set, which it does): that is still a completed no-change deploy.
        if out.returncode != 0 and "No updates are to be performed" not in out.stderr:
            sys.exit(f"{name} failed: {out.stderr[-2000:]}")
        # The last line: with a non-zero exit, time writes "Command exited with..." first.
        peaks.append(int(open(report).read().split()[-1]))
print(name, round(statistics.median(walls)), max(peaks))
PY
}

log "no-change deploys, $runs runs each"
read -r _ a_ms a_kb < <(measure ssm-action "${action_env[@]}" "$bin")
read -r _ c_ms c_kb < <(measure aws-cli aws cloudformation deploy --stack-name "$stack" \
  --template-file "$asm/$stack.template.json" --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM \
  --no-fail-on-empty-changeset)

size=$(stat -c %s "$bin")
printf '\n%-28s %12s %14s\n' "no-change deploy (moto)" "median wall" "peak RSS"
printf '%-28s %9d ms %11d KiB\n' "ssm-action" "$a_ms" "$a_kb"
printf '%-28s %9d ms %11d KiB\n' "aws cloudformation deploy" "$c_ms" "$c_kb"
python3 -c "import sys; a,b,c,d=map(int,sys.argv[1:]); print(f'ratio (aws-cli / ssm-action): wall {b/a:.2f}x, peak memory {d/c:.2f}x')" "$a_ms" "$c_ms" "$a_kb" "$c_kb"
printf 'ssm-action binary: %d bytes (%.1f MiB)\n' "$size" "$(python3 -c "print($size/1048576)")"
mkdir -p build/bench
printf '{"runs": %d, "ssm_action": {"median_ms": %d, "peak_kib": %d}, "aws_cli": {"median_ms": %d, "peak_kib": %d}, "binary_bytes": %d}\n' \
  "$runs" "$a_ms" "$a_kb" "$c_ms" "$c_kb" "$size" >build/bench/action-deploy.json
