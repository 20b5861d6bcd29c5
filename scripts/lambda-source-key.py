#!/usr/bin/env python3
"""Prints the key of the Lambda zips' inputs: equal keys, byte-identical zips.

    python3 scripts/lambda-source-key.py TOOLCHAIN ARCH

A SHA-256 over the Rust toolchain and architecture named, the lockfile and workspace manifest
(dependency versions, the lambda-release profile), the scripts and pinned tools that build and
zip (cargo-lambda and zig come from scripts/requirements.txt), and every git-tracked file of the
workspace packages the four Lambda binaries are built from: their packages and, transitively,
the path dependencies they compile (normal and build, not dev: tests are not in the binary).
deploy.yml keys its zip cache by it, so a commit that changes none of these reuses the zips built
for the first commit that had them, and compiles nothing. Reads manifests with tomllib: no cargo.
"""
import hashlib
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The packages of ssm-crypto, ssm-rotation, ssm-integrity and ssm-app (LAMBDAS in scripts/lib.sh).
LAMBDA_PACKAGES = ["lambdas/crypto", "lambdas/rotation", "lambdas/integrity", "app"]
BUILD_INPUTS = [
    "Cargo.lock",
    "Cargo.toml",
    "scripts/build-lambdas.sh",
    "scripts/lib.sh",  # LAMBDAS: which binaries are built and zipped
    "scripts/build-app-lambda.sh",
    "scripts/deterministic-zip.py",
    "scripts/lambda-source-key.py",
    "scripts/requirements.txt",
]
OPTIONAL_INPUTS = [".cargo/config.toml", ".cargo/config", "rust-toolchain", "rust-toolchain.toml"]


def load(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def path_dependencies(package_dir: str, workspace_paths: dict[str, str]) -> set[str]:
    """The directories (relative to the root) of a package's normal and build path dependencies."""
    manifest = load(ROOT / package_dir / "Cargo.toml")
    tables = [manifest.get("dependencies", {}), manifest.get("build-dependencies", {})]
    for target in manifest.get("target", {}).values():
        tables += [target.get("dependencies", {}), target.get("build-dependencies", {})]
    out = set()
    for table in tables:
        for name, spec in table.items():
            if not isinstance(spec, dict):
                continue
            if "path" in spec:
                out.add((Path(package_dir) / spec["path"]).as_posix())
            elif spec.get("workspace") and name in workspace_paths:
                out.add(workspace_paths[name])
    return {str(Path(p)) for p in out}


def closure() -> list[str]:
    ws = load(ROOT / "Cargo.toml").get("workspace", {})
    workspace_paths = {n: s["path"] for n, s in ws.get("dependencies", {}).items() if isinstance(s, dict) and "path" in s}
    seen: set[str] = set()
    todo = list(LAMBDA_PACKAGES)
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo += sorted(path_dependencies(d, workspace_paths) - seen)
    return sorted(seen)


def key(toolchain: str, arch: str) -> str:
    packages = closure()
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--", *packages],
        check=True, capture_output=True,
    ).stdout.decode().split("\0")
    files = sorted({f for f in tracked if f} | set(BUILD_INPUTS) | {f for f in OPTIONAL_INPUTS if (ROOT / f).exists()})
    h = hashlib.sha256()
    h.update(f"toolchain={toolchain}\0arch={arch}\0packages={','.join(packages)}\0".encode())
    for f in files:
        h.update(f.encode() + b"\0" + hashlib.sha256((ROOT / f).read_bytes()).digest())
    return h.hexdigest()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: lambda-source-key.py TOOLCHAIN ARCH", file=sys.stderr)
        return 2
    print(key(argv[1], argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
