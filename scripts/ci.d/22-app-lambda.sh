#!/usr/bin/env bash
# The GitHub App as Lambda runs it: the files of the zips 20-lambdas.sh built (the Web Adapter
# layer's extensions/lambda-adapter and ssm-app's bootstrap) under a local Lambda Runtime API
# (app/tests/lambda_adapter.rs): /healthz, webhooks and token requests as Function URL events,
# moto as STS, the GitHub emulator as GitHub. Prints the cold start (median of SSM_COLD_STARTS).
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"
trap stop_all EXIT

app_zip=build/lambda/ssm-app/bootstrap.zip
layer_zip=build/lambda/lambda-adapter/layer.zip
[[ -f "$app_zip" && -f "$layer_zip" ]] || die "missing $app_zip or $layer_zip: run bash scripts/build-lambdas.sh"
work="$(mktemp -d)"
python3 - "$app_zip" "$work/task" "$layer_zip" "$work/opt" <<'PY'
import os, sys, zipfile
for zip_path, dest in zip(sys.argv[1::2], sys.argv[2::2]):
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            path = z.extract(info, dest)
            os.chmod(path, (info.external_attr >> 16) & 0o777 or 0o644)
PY
[[ -x "$work/task/bootstrap" && -x "$work/opt/extensions/lambda-adapter" ]] ||
  die "the zips do not hold an executable bootstrap and extensions/lambda-adapter"

[[ -n "${AWS_ENDPOINT_URL:-}" ]] || start_moto
log "ssm-app behind the Web Adapter, under a local Runtime API"
SSM_LAMBDA_ADAPTER="$work/opt/extensions/lambda-adapter" \
SSM_APP_BOOTSTRAP="$work/task/bootstrap" \
SSM_REQUIRE_LAMBDA_ADAPTER=1 SSM_REQUIRE_EMULATORS=1 \
SSM_COLD_STARTS="${SSM_COLD_STARTS:-10}" \
  cargo test --locked --workspace --test lambda_adapter -- --nocapture # --workspace: the tests' features (lib.sh)
rm -rf "$work"
