#!/usr/bin/env python3
"""Call the Serverless SSM Crypto API from Python, signed with botocore's SigV4 signer.

The credentials are botocore's default chain (environment, ~/.aws, SSO, instance roles), the
same as the AWS CLI's. Binary values are base64 on the wire; these functions take and return
bytes. Requests that are throttled (429) or find the service briefly unavailable (502/503/504)
are retried with exponential backoff and full jitter; every route is free of side effects, so a
retry is safe.

    from ssm_call import CryptoApi
    api = CryptoApi("https://a1b2c3.execute-api.eu-west-1.amazonaws.com", "eu-west-1")
    envelope = api.encrypt("payments", b"4111 1111 1111 1111", context=b"order=42")
    assert api.decrypt("payments", envelope, context=b"order=42") == b"4111 1111 1111 1111"

As a command: python3 ssm_call.py --endpoint URL --region REGION encrypt --key payments < file
(needs only botocore: pip install botocore).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
import urllib.error
import urllib.request

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

RETRYABLE = {429, 502, 503, 504}


class ApiError(Exception):
    """A refused request: `status` and, when the Crypto API answered, its `code`.

    403 comes from API Gateway's IAM authorization (its body is {"message": ...}); 404 means no
    such key in this deployment; our own errors are {"error": {"code", "message"}}."""

    def __init__(self, status: int, body: bytes):
        self.status = status
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict):
            self.code, message = error.get("code"), error.get("message", "")
        else:
            self.code, message = None, (parsed or {}).get("message", body[:200].decode(errors="replace"))
        super().__init__(f"{status} {self.code or ''}: {message}".replace("  ", " "))


class CryptoApi:
    def __init__(self, endpoint: str, region: str, max_attempts: int = 4, timeout: float = 30.0):
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.session = botocore.session.get_session()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(1, self.max_attempts + 1):
            credentials = self.session.get_credentials()
            if credentials is None:
                raise RuntimeError("no AWS credentials found by botocore's default chain")
            headers = {} if data is None else {"content-type": "application/json"}
            request = AWSRequest(method=method, url=self.endpoint + path, data=data, headers=headers)
            # Signed afresh on each attempt: the signature covers the time and the body.
            SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(request)
            prepared = request.prepare()
            sending = urllib.request.Request(
                prepared.url, data=prepared.body, headers=dict(prepared.headers), method=method
            )
            try:
                with urllib.request.urlopen(sending, timeout=self.timeout) as response:
                    return json.load(response)
            except urllib.error.HTTPError as e:
                error = ApiError(e.code, e.read())
                if e.code not in RETRYABLE or attempt == self.max_attempts:
                    raise error from None
            except urllib.error.URLError:
                if attempt == self.max_attempts:
                    raise
            time.sleep(random.uniform(0, min(5.0, 0.1 * 2 ** (attempt - 1))))
        raise AssertionError("unreachable")

    @staticmethod
    def _item(field: str, value: bytes, context: bytes) -> dict:
        item = {field: base64.b64encode(value).decode()}
        if context:
            item["context"] = base64.b64encode(context).decode()
        return item

    def encrypt(self, key: str, plaintext: bytes, context: bytes = b"") -> str:
        return self.call("POST", f"/v1/keys/{key}/encrypt", self._item("plaintext", plaintext, context))["ciphertext"]

    def decrypt(self, key: str, envelope: str, context: bytes = b"") -> bytes:
        body = {"ciphertext": envelope}
        if context:
            body["context"] = base64.b64encode(context).decode()
        return base64.b64decode(self.call("POST", f"/v1/keys/{key}/decrypt", body)["plaintext"])

    def hmac(self, key: str, data: bytes) -> str:
        return self.call("POST", f"/v1/keys/{key}/hmac", {"input": base64.b64encode(data).decode()})["mac"]

    def verify(self, key: str, data: bytes, mac: str) -> bool:
        body = {"input": base64.b64encode(data).decode(), "mac": mac}
        return bool(self.call("POST", f"/v1/keys/{key}/verify", body)["valid"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the stack's ApiUrl output")
    parser.add_argument("--region", required=True)
    parser.add_argument("command", choices=["encrypt", "decrypt", "hmac", "verify"])
    parser.add_argument("--key", default="default")
    parser.add_argument("--context", default="", help="context (AAD) as text")
    parser.add_argument("--mac", help="for verify")
    args = parser.parse_args()
    api = CryptoApi(args.endpoint, args.region)
    data = sys.stdin.buffer.read()
    context = args.context.encode()
    try:
        if args.command == "encrypt":
            print(api.encrypt(args.key, data, context))
        elif args.command == "decrypt":
            sys.stdout.buffer.write(api.decrypt(args.key, data.decode().strip(), context))
        elif args.command == "hmac":
            print(api.hmac(args.key, data))
        else:
            valid = api.verify(args.key, data, args.mac or "")
            print("valid" if valid else "invalid")
            return 0 if valid else 1
    except ApiError as e:
        print(f"ssm_call: {e}", file=sys.stderr)
        return 3 if e.status == 403 else 4 if e.status == 404 else 5
    return 0


if __name__ == "__main__":
    sys.exit(main())
