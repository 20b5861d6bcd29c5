#!/usr/bin/env python3
"""Cold start of the Crypto API Lambda, measured like Lambda's init + first invoke.

A local Lambda Runtime API (this script) serves one API Gateway v2 `POST /v1/encrypt` event;
each spawn of the `bootstrap` is timed from exec until its response arrives, with the keyring
fetched from the Secrets Manager emulator (AWS_ENDPOINT_URL). The peer, measured in the same
run, is the same job done the original sample's way: a Python runtime-API loop with boto3 and
pyca/cryptography. The floor, also measured in the same run, is a bare `lambda_runtime` function
(`lambdas/crypto/examples/bare-lambda.rs`) answering the same event with a fixed 200: what any
Rust function pays before its own work. Prints medians of N spawns, both ratios, and the binary
and zip sizes.

usage: cold_start.py --bootstrap PATH --keyring-cli PATH [--floor PATH] [--zip PATH] [--spawns 15]
                     [--json PATH]   (also write the figures there, for bench/report.py)
"""
import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

EVENT_BODY = json.dumps({"plaintext": base64.b64encode(b"x" * 1024).decode()})

PY_PEER = r'''
import json, os, base64, urllib.request
import boto3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
sm = boto3.client("secretsmanager")
ring = json.loads(sm.get_secret_value(SecretId=os.environ["SSM_KEY_SECRET_ID"])["SecretString"])
primary = ring["primary_version"]
key = base64.b64decode(next(k["material"] for k in ring["keys"] if k["version"] == primary))
while True:
    with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    plaintext = base64.b64decode(json.loads(event["body"])["plaintext"])
    nonce = os.urandom(12)
    header = f"ssm:v{primary}:"
    ct = AESGCM(key).encrypt(nonce, plaintext, header.encode())
    body = json.dumps({"ciphertext": header + base64.b64encode(nonce + ct).decode(), "key_version": primary})
    resp = json.dumps({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": body}).encode()
    urllib.request.urlopen(urllib.request.Request(f"http://{api}/2018-06-01/runtime/invocation/{rid}/response", data=resp, method="POST"))
'''


def event() -> bytes:
    return json.dumps({
        "version": "2.0", "routeKey": "POST /v1/encrypt", "rawPath": "/v1/encrypt", "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.local", "domainPrefix": "bench",
            "http": {"method": "POST", "path": "/v1/encrypt", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "r", "routeKey": "POST /v1/encrypt", "stage": "$default", "time": "28/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
        },
        "body": EVENT_BODY, "isBase64Encoded": False,
    }).encode()


class RuntimeApi(BaseHTTPRequestHandler):
    served = threading.Event()
    done = threading.Event()
    response = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        if type(self).served.is_set():
            # Only one invocation per spawn: park the poller until the process is killed. By then
            # the connection is usually gone, which is the expected end, not an error to print.
            type(self).done.wait(30)
            try:
                self.send_error(503)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        type(self).served.set()
        body = event()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-0-0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        type(self).response = (self.path, payload)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        type(self).done.set()


def spawn(cmd, env, check=True) -> float:
    # A fresh Runtime API per spawn: a request the previous (killed) process left in the old
    # server's queue must not take this spawn's one event.
    class Api(RuntimeApi):
        served = threading.Event()
        done = threading.Event()
        response = None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not Api.done.wait(30):
            raise SystemExit(f"no response from {cmd[0]}: {proc.stderr.read1().decode(errors='replace') if proc.poll() is not None else 'timeout'}")
        elapsed = time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()
        Api.done.set()  # release a parked poller
        server.shutdown()
        server.server_close()
    path, payload = Api.response
    if not path.endswith("/response"):
        raise SystemExit(f"{cmd[0]} reported an error: {payload[:300]!r}")
    reply = json.loads(payload)
    assert reply["statusCode"] == 200, reply
    if check:
        assert json.loads(reply["body"])["ciphertext"].startswith("ssm:v"), reply
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--zip")
    ap.add_argument("--keyring-cli", required=True, help="the ssm-keyring binary, to create the keyring")
    ap.add_argument("--floor", help="a bare lambda_runtime function (the floor)")
    ap.add_argument("--spawns", type=int, default=15)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise SystemExit("AWS_ENDPOINT_URL must point at the emulator (scripts/lib.sh start_moto)")

    # A keyring secret in the emulator, made by the project's own CLI.
    with tempfile.TemporaryDirectory() as tmp:
        ring_path = os.path.join(tmp, "ring.json")
        subprocess.run([args.keyring_cli, "new", "--file", ring_path], check=True, stdout=subprocess.DEVNULL)
        ring = open(ring_path).read()
    secret_id = f"bench-keyring-{uuid.uuid4()}"
    boto3.client("secretsmanager", endpoint_url=endpoint).create_secret(Name=secret_id, SecretString=ring)

    env = dict(os.environ)
    # Trust roots as Lambda's AL2023 image has them: one CA bundle. rustls-native-certs also reads
    # every file of SSL_CERT_DIR (or, on Debian, /etc/ssl/certs: ~150 hashed links), which would
    # add ~3 ms that Lambda does not pay.
    env.pop("SSL_CERT_DIR", None)
    env["SSL_CERT_FILE"] = next(
        (p for p in ("/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt") if os.path.exists(p)),
        env.get("SSL_CERT_FILE", ""),
    )
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "SSM_KEY_SECRET_ID": secret_id, "RUST_LOG": "warn",
    })
    jobs = [("ssm-crypto (Rust)", [args.bootstrap], True),
            ("python+boto3 peer", [sys.executable, "-c", PY_PEER], True)]
    if args.floor:
        jobs.append(("bare Rust function", [args.floor], False))
    runs = {}
    for name, cmd, check in jobs:
        spawn(cmd, env, check)  # warm the page cache and the emulator
        runs[name] = [spawn(cmd, env, check) for _ in range(args.spawns)]

    print(f"cold start to first response (init + 1 KiB encrypt, keyring from the emulator), {args.spawns} spawns each")
    print(f"{'':22} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, times in runs.items():
        print(f"{name:22} {statistics.median(times)*1e3:10.1f} {min(times)*1e3:8.1f} {max(times)*1e3:8.1f}")
    medians = {name: statistics.median(times) for name, times in runs.items()}
    rust, peer = medians["ssm-crypto (Rust)"], medians["python+boto3 peer"]
    print(f"ratio (Rust / Python peer): {rust / peer:.3f}  ({peer / rust:.1f}x faster)")
    if args.floor:
        floor = medians["bare Rust function"]
        print(f"ratio (Rust / bare function floor): {rust / floor:.2f}  ({(rust - floor) * 1e3:.1f} ms above the floor)")
    size = os.path.getsize(args.bootstrap)
    print(f"bootstrap binary: {size} bytes ({size / 2**20:.2f} MiB)")
    if args.zip:
        print(f"bootstrap.zip: {os.path.getsize(args.zip)} bytes ({os.path.getsize(args.zip) / 2**20:.2f} MiB)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"spawns": args.spawns, "runs_ms": {n: [t * 1e3 for t in ts] for n, ts in runs.items()},
                       "bootstrap_bytes": size, "zip_bytes": os.path.getsize(args.zip) if args.zip else None},
                      f, indent=1)


if __name__ == "__main__":
    main()
