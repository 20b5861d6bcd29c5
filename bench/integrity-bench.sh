#!/usr/bin/env bash
# Integrity Lambda figures: classification throughput (events/s) and the handler's latency for a
# 10-event SQS batch with the network excluded (stack cached, dispatch discarded), each printed as
# a ratio to its peer measured in the same criterion run (parsing the same JSON into
# serde_json::Value). Also writes build/bench/integrity.json (for bench/report.py).
source "$(dirname "$0")/../scripts/lib.sh"
cd "$SSM_ROOT"

cargo bench -p ssm-integrity --bench integrity -- "$@"

python3 - "$CARGO_TARGET_DIR/criterion" "$SSM_ROOT/build/bench/integrity.json" <<'PY'
import json, os, sys
root = sys.argv[1]
record = {}
def mean_ns(group, name):
    with open(os.path.join(root, group, name, "new", "estimates.json")) as f:
        return json.load(f)["mean"]["point_estimate"]
events = len(os.listdir(os.path.join(os.environ["SSM_ROOT"], "lambdas/integrity/tests/fixtures/cloudtrail")))
ours, peer = mean_ns("classify", "parse_and_classify"), mean_ns("classify", "peer_serde_json_value")
record["classify"] = {"events": events, "ours_ns": ours, "peer_ns": peer}
print(f"classification: {events / (ours / 1e9):,.0f} events/s ({ours / events:,.0f} ns/event); "
      f"serde_json::Value parse alone: {events / (peer / 1e9):,.0f} events/s; ratio ours/peer time = {ours / peer:.2f}")
ours, peer = mean_ns("batch10", "handler"), mean_ns("batch10", "peer_serde_json_value")
print(f"handler, 10-event batch, no network: {ours / 1e3:,.1f} us; "
      f"parsing the batch into Values alone: {peer / 1e3:,.1f} us; ratio = {ours / peer:.2f}")
record["batch10"] = {"ours_ns": ours, "peer_ns": peer}
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
json.dump(record, open(sys.argv[2], "w"), indent=1)
PY
