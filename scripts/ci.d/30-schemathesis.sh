#!/usr/bin/env bash
# Property-based API tests: schemathesis drives the local Crypto API from docs/openapi.yaml and
# checks that no request gets a 5xx, that every response matches the documented status codes,
# content type and schema, and that a method the document does not list gets the documented 405
# with `Allow` (unsupported_method). The keyring is made with the ssm-keyring CLI.
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"
trap stop_all EXIT

cargo build --locked -p ssm-crypto --bin ssm-crypto-local -p ssm-rotation --bin ssm-keyring
work="$(mktemp -d)"
"$CARGO_TARGET_DIR/debug/ssm-keyring" new --file "$work/keyring.json"

port="$(free_port)"
SSM_KEYRING_FILE="$work/keyring.json" RUST_LOG=warn \
  "$CARGO_TARGET_DIR/debug/ssm-crypto-local" --listen "127.0.0.1:$port" &
SSM_PIDS+=("$!")
wait_http "http://127.0.0.1:$port/version" 30 || die "ssm-crypto-local did not start"

st run docs/openapi.yaml \
  --url "http://127.0.0.1:$port" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method \
  --phases examples,coverage,fuzzing \
  --max-examples "${SSM_SCHEMATHESIS_EXAMPLES:-60}" \
  --seed 20261128 \
  --request-timeout 10 \
  --generation-database none \
  --workers 2
