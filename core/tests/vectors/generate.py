#!/usr/bin/env python3
"""Known-answer vectors for the envelope (formats 1 and 2) and MACs, from pyca/cryptography.

An implementation independent of the Rust code (AESGCM, HKDF and HMAC from pyca/cryptography,
the text formats written out here from docs/envelope.md), so the Rust tests in
core/tests/vectors.rs check the specification, not the code against itself.

    python core/tests/vectors/generate.py           # rewrite envelope2.json and mac.json
    python core/tests/vectors/generate.py --check   # fail if any committed file differs

envelope.json (format 1) predates this script and is never rewritten: the script checks that it
still reproduces every format 1 vector in it, byte for byte.
"""

import base64
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = Path(__file__).resolve().parent
HKDF_INFO = b"serverless-ssm/hmac-sha256/v1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def seal(key: bytes, header: str, nonce: bytes, plaintext: bytes, context: bytes) -> str:
    aad = header.encode() + context
    return header + b64(nonce + AESGCM(key).encrypt(nonce, plaintext, aad))


def mac_key(material: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(material)


def mac(material: bytes, name: str, version: int, data: bytes) -> str:
    header = f"ssm-mac:{name}:v{version}:"
    h = hmac.HMAC(mac_key(material), hashes.SHA256())
    h.update(header.encode() + data)
    return header + b64(h.finalize())


def key(start: int) -> bytes:
    return bytes((start + i) % 256 for i in range(32))


ENVELOPE2 = [
    # (name, key name, key, nonce, version, plaintext, context)
    ("default key, empty plaintext", "default", bytes(32), bytes(12), 1, b"", b""),
    ("named key, short text", "payments", key(0), bytes(range(12)), 1, b"hello, world", b""),
    ("named key, context", "orders-eu-1", key(32), b"\xff" * 12, 1048577, b"attack at dawn", b"tenant=acme"),
    ("longest name, highest version", "k" * 32, b"Z" * 32, b"defghijklmno", 4294967295, bytes(range(256)), b"\x00\x01\x02\xff"),
    ("one-letter name, utf-8 text", "a", key(64), bytes(range(200, 212)), 10, "Grüße, 世界".encode(), b"ctx"),
    # Same key, nonce, plaintext and context as "named key, short text" under another name:
    # the ciphertexts differ (the name is in the associated data), the bodies' tags too.
    ("same material, other name", "orders", key(0), bytes(range(12)), 1, b"hello, world", b""),
]

MACS = [
    # (name, key name, key, version, input)
    ("default key, empty input", "default", bytes(32), 1, b""),
    ("named key, short input", "payments", key(0), 1, b"hello, world"),
    ("same input, other key name", "orders", key(0), 1, b"hello, world"),
    ("same input, other version", "payments", key(0), 2, b"hello, world"),
    ("longest name, highest version, binary", "k" * 32, b"Z" * 32, 4294967295, bytes(range(256)) * 4),
    ("lineage-numbered version", "orders-eu-1", key(32), 1048577, "Grüße".encode()),
]


def envelope2_doc() -> dict:
    vectors = []
    for name, key_name, k, nonce, version, plaintext, context in ENVELOPE2:
        header = f"ssm2:{key_name}:v{version}:"
        vectors.append(
            {
                "name": name,
                "key_name": key_name,
                "key": b64(k),
                "nonce": b64(nonce),
                "version": version,
                "plaintext": b64(plaintext),
                "context": b64(context),
                "ciphertext": seal(k, header, nonce, plaintext, context),
            }
        )
    return {
        "generator": "pyca/cryptography AESGCM (core/tests/vectors/generate.py), independent of the Rust implementation",
        "vectors": vectors,
    }


def mac_doc() -> dict:
    vectors = []
    for name, key_name, k, version, data in MACS:
        vectors.append(
            {
                "name": name,
                "key_name": key_name,
                "key": b64(k),
                "version": version,
                "mac_key": b64(mac_key(k)),
                "input": b64(data),
                "mac": mac(k, key_name, version, data),
            }
        )
    return {
        "generator": "pyca/cryptography HKDF and HMAC (core/tests/vectors/generate.py), independent of the Rust implementation",
        "vectors": vectors,
    }


def check_format1() -> None:
    doc = json.loads((HERE / "envelope.json").read_text())
    for v in doc["vectors"]:
        d = lambda field: base64.b64decode(v[field])  # noqa: E731
        again = seal(d("key"), f"ssm:v{v['version']}:", d("nonce"), d("plaintext"), d("context"))
        if again != v["ciphertext"]:
            sys.exit(f"envelope.json: {v['name']!r} does not reproduce")


def main() -> None:
    check = "--check" in sys.argv[1:]
    check_format1()
    for file, doc in (("envelope2.json", envelope2_doc()), ("mac.json", mac_doc())):
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        path = HERE / file
        if check:
            if path.read_text() != text:
                sys.exit(f"{file} differs from what generate.py produces")
        else:
            path.write_text(text)
    print("vectors", "match" if check else "written")


if __name__ == "__main__":
    main()
