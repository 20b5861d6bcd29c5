#!/usr/bin/env bash
# Deploys the synthesized cloud assembly into moto through the deploy Action and checks the result:
# starts sandbox/moto/ssm_moto.py on a free port, bootstraps what the Action expects (the CDK asset
# bucket, the bootstrap version parameter), runs ssm-action `apply` (every stack, in dependency
# order), `apply` again (no changes) and `reconcile`, then sandbox/moto/check_stacks.py compares
# every resource with its template and routes an out-of-band change through EventBridge.
# Needs cdk/cdk.out (bash scripts/synth.sh; SSM_CDK_OUT overrides) and the Action binary
# (cargo build -p ssm-action). moto's log: build/ssm-moto.log.
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$SSM_ROOT"

assembly="${SSM_CDK_OUT:-$SSM_ROOT/cdk/cdk.out}"
action="$CARGO_TARGET_DIR/debug/ssm-action"
[[ -f "$assembly/manifest.json" ]] || die "no cloud assembly in $assembly: run bash scripts/synth.sh"
[[ -x "$action" ]] || die "no $action: run cargo build -p ssm-action"

work="$(mktemp -d)"
trap 'stop_all; rm -rf "$work"' EXIT
mkdir -p build
port="$(free_port)"
"$SSM_VENV/bin/python" sandbox/moto/ssm_moto.py -H 127.0.0.1 -p "$port" >build/ssm-moto.log 2>&1 &
SSM_PIDS+=("$!")
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
wait_http "$AWS_ENDPOINT_URL/moto-api/" 60 || die "moto did not start (see build/ssm-moto.log)"
log "ssm_moto listening on $AWS_ENDPOINT_URL"

python3 - <<'PY'
import boto3
boto3.client("s3").create_bucket(Bucket="cdk-hnb659fds-assets-123456789012-us-east-1")
boto3.client("ssm").put_parameter(
    Name="/cdk-bootstrap/hnb659fds/version", Value="21", Type="String"
)
PY

# ssm_action MODE: the Action as a workflow step runs it, on every stack of the assembly.
ssm_action() {
  local start
  start=$(date +%s%N)
  log "ssm-action $1"
  : >"$work/output"
  env INPUT_MODE="$1" INPUT_AWS-REGION="$AWS_REGION" INPUT_CLOUD-ASSEMBLY="$assembly" \
    GITHUB_OUTPUT="$work/output" GITHUB_STEP_SUMMARY="$work/summary" \
    "$action" >"$work/action.log" 2>&1 || { cat "$work/action.log" >&2; die "ssm-action $1 failed"; }
  grep -E 'status=[A-Z_]+_COMPLETE|no changes' "$work/action.log" | sed 's/.*INFO //' >&2 || true
  log "ssm-action $1 took $((($(date +%s%N) - start) / 1000000)) ms"
}

ssm_action apply
ssm_action apply
if grep -qx 'true' <(sed -n '/^has-changes<</{n;p}' "$work/output"); then
  die "a second apply of the same assembly changed something"
fi
ssm_action reconcile

log "resources against their templates"
python3 sandbox/moto/check_stacks.py "$assembly"
